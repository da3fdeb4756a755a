package ops

import (
	"flag"
	"os"
	"testing"

	"gorgonia.org/tensor"

	"resdet/internal/testutil"
)

var update = flag.Bool("update", false, "regenerate the torchvision fixtures in testdata/ with testdata/gen_fixtures.py ops")

// loadFixture reads testdata/name (regenerating the whole directory first
// when -update is set) and returns its cases.
func loadFixture(t testing.TB, name string) map[string]testutil.FixtureCase {
	t.Helper()
	if *update {
		testutil.Regenerate(t, "testdata/gen_fixtures.py", "ops", "testdata")
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

// roiTensor wraps RoI rows (batch index, x1, y1, x2, y2) as a [K, 5] tensor.
func roiTensor(rows []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(len(rows)/5, 5), tensor.WithBacking(rows))
}
