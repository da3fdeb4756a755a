package detection

import (
	"flag"
	"os"
	"testing"

	"resdet/box"
	"resdet/internal/testutil"
)

var update = flag.Bool("update", false, "regenerate the torchvision fixtures in testdata/ with testdata/gen_fixtures.py")

// loadFixture reads testdata/name (regenerating the whole directory first
// when -update is set) and returns its cases.
func loadFixture(t testing.TB, name string) map[string]testutil.FixtureCase {
	t.Helper()
	if *update {
		testutil.Regenerate(t, "testdata/gen_fixtures.py", "detection", "testdata")
	}
	return testutil.LoadFixture(t, "testdata", name)
}

// largeFixtures returns the folder where `gen_fixtures.py large` wrote the
// fixtures too large to commit (run once per test binary; removed by
// TestMain). It skips the test when /usr/bin/python3 cannot import torch,
// unless RESDET_REQUIRE_TORCH=1.
func largeFixtures(t *testing.T) string {
	t.Helper()
	return testutil.ScriptDir(t, "testdata/gen_fixtures.py", "large")
}

// TestMain removes the large fixtures after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveScriptDirs()
	os.Exit(code)
}

// fixtureBoxes returns the [N, 4] float32 field of c as boxes (nil when
// it is empty).
func fixtureBoxes(t testing.TB, c testutil.FixtureCase, field string) []box.Box {
	t.Helper()
	v, shape := c.F32(t, field)
	if len(v) == 0 {
		return nil
	}
	if len(shape) != 2 || shape[1] != 4 {
		t.Fatalf("fixture field %q has shape %v, want [N, 4]", field, shape)
	}
	out := make([]box.Box, shape[0])
	for i := range out {
		out[i] = box.Box{X1: v[4*i], Y1: v[4*i+1], X2: v[4*i+2], Y2: v[4*i+3]}
	}
	return out
}
