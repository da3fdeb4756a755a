package nn

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// opsFixtures holds the tensors written by testdata/gen_ops_fixtures.py.
type opsFixtures struct{ dir string }

// genOpsFixtures runs testdata/gen_ops_fixtures.py into a temporary directory.
// It skips the test when /usr/bin/python3 cannot import torch, unless
// RESDET_REQUIRE_TORCH=1 (then it fails).
func genOpsFixtures(t *testing.T) opsFixtures {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		if os.Getenv("RESDET_REQUIRE_TORCH") == "1" {
			t.Fatalf("%s cannot import torch (%v) and RESDET_REQUIRE_TORCH=1", py, err)
		}
		t.Skipf("skipping torch parity: %s cannot import torch (%v); set RESDET_REQUIRE_TORCH=1 to fail instead", py, err)
	}
	dir := t.TempDir()
	out, err := exec.Command(py, filepath.Join("testdata", "gen_ops_fixtures.py"), dir).CombinedOutput()
	if err != nil {
		t.Fatalf("gen_ops_fixtures.py: %v\n%s", err, out)
	}
	return opsFixtures{dir: dir}
}

// fixtureCase is one case: tensor name -> values and shape.
type fixtureCase struct {
	name   string
	shapes map[string][]int
	data   map[string][]float32
}

func (f opsFixtures) load(t *testing.T, name string) fixtureCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, name+".json"))
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	c := fixtureCase{name: name, data: map[string][]float32{}}
	if err := json.Unmarshal(b, &c.shapes); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	for k, shape := range c.shapes {
		path := filepath.Join(f.dir, name+"."+k+".bin")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("fixture %s: %v", name, err)
		}
		n := 1
		for _, d := range shape {
			n *= d
		}
		if len(raw) != 4*n {
			t.Fatalf("fixture %s: %d bytes, shape %v needs %d", path, len(raw), shape, 4*n)
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		c.data[k] = v
	}
	return c
}

// get returns a tensor of the case, failing the test if it is missing.
func (c fixtureCase) get(t *testing.T, k string) []float32 {
	t.Helper()
	v, ok := c.data[k]
	if !ok {
		t.Fatalf("fixture %s: no tensor %q", c.name, k)
	}
	return v
}

// closeTo reports the first mismatch between got and want (|d| <= atol +
// rtol*|want|) and the largest absolute difference.
func closeTo(got, want []float32, rtol, atol float64) (maxDiff float64, err error) {
	if len(got) != len(want) {
		return math.Inf(1), fmt.Errorf("length %d, want %d", len(got), len(want))
	}
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > maxDiff || math.IsNaN(d) {
			maxDiff = d
		}
		if !(d <= atol+rtol*math.Abs(float64(want[i]))) && err == nil {
			err = fmt.Errorf("element %d: got %g, want %g", i, got[i], want[i])
		}
	}
	return maxDiff, err
}

// expectClose fails the test if got and want differ beyond the tolerance.
func expectClose(t *testing.T, what string, got, want []float32, rtol, atol float64) {
	t.Helper()
	if d, err := closeTo(got, want, rtol, atol); err != nil {
		t.Errorf("%s: %v (max abs diff %g)", what, err, d)
	}
}
