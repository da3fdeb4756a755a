package detection

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
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

// largeFixtures runs `gen_fixtures.py large` into a temporary directory
// once per test binary and returns it. It skips the test when
// /usr/bin/python3 cannot import torch, unless RESDET_REQUIRE_TORCH=1.
func largeFixtures(t *testing.T) string {
	t.Helper()
	py := testutil.Python(t)
	largeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "resdet-detection-fixtures-")
		if err != nil {
			largeErr = err
			return
		}
		largeDir = dir
		out, err := exec.Command(py, "testdata/gen_fixtures.py", "large", dir).CombinedOutput()
		if err != nil {
			largeErr = fmt.Errorf("gen_fixtures.py large: %v\n%s", err, out)
		}
	})
	if largeErr != nil {
		t.Fatal(largeErr)
	}
	return largeDir
}

var (
	largeOnce sync.Once
	largeDir  string
	largeErr  error
)

// TestMain removes the large fixtures after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if largeDir != "" {
		os.RemoveAll(largeDir)
	}
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
