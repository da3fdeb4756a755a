package ops

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
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
		regenerate(t)
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
		dir, err := os.MkdirTemp("", "resdet-ops-fixtures-")
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

func regenerate(t testing.TB) {
	t.Helper()
	testutil.Regenerate(t, "testdata/gen_fixtures.py", "ops", "testdata")
}

// roiTensor wraps RoI rows (batch index, x1, y1, x2, y2) as a [K, 5] tensor.
func roiTensor(rows []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(len(rows)/5, 5), tensor.WithBacking(rows))
}
