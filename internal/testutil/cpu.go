package testutil

import (
	"os"
	"testing"
)

// RequireBF16Env is the variable that turns the skip of a bf16 test on a
// CPU without bf16 into a failure when set to 1 (on machines known to have
// AVX-512, so that a broken bf16 check cannot skip the tests unseen).
const RequireBF16Env = "RESDET_REQUIRE_BF16"

// BF16 skips a bf16 test when why is not nil (the caller passes
// nn.BF16Error(): why this CPU cannot run bf16), or fails it when
// RESDET_REQUIRE_BF16=1.
func BF16(t testing.TB, why error) {
	t.Helper()
	if why == nil {
		return
	}
	if os.Getenv(RequireBF16Env) == "1" {
		t.Fatalf("%v\n(%s=1: the bf16 tests must run)", why, RequireBF16Env)
	}
	t.Skipf("skipping bf16: %v\n(set %s=1 to fail instead)", why, RequireBF16Env)
}
