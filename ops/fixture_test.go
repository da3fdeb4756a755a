package ops

import (
	"flag"
	"testing"

	"gorgonia.org/tensor"

	"resdet/internal/testutil"
)

var update = flag.Bool("update", false, "regenerate the torchvision fixtures in testdata/ with testdata/gen_fixtures.py ops")

// fixtures are the torchvision fixtures of testdata/gen_fixtures.py.
var fixtures = testutil.Fixtures{Script: "testdata/gen_fixtures.py", Args: []string{"ops"}, Dir: "testdata", Update: update}

// TestMain removes the large fixtures after the tests.
func TestMain(m *testing.M) { testutil.Main(m) }

// roiTensor wraps RoI rows (batch index, x1, y1, x2, y2) as a [K, 5] tensor.
func roiTensor(rows []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(len(rows)/5, 5), tensor.WithBacking(rows))
}
