package nn

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	G "gorgonia.org/gorgonia"

	"resdet/internal/testutil"
)

// opsFixtures holds the tensors written by testdata/gen_ops_fixtures.py (or a
// script writing its format, such as gen_resize_fixtures.py).
type opsFixtures struct{ dir string }

// genOpsFixtures runs testdata/<script> OUTDIR into a temporary directory.
// Without torch it skips the test, or fails it with RESDET_REQUIRE_TORCH=1
// (testutil.Python).
func genOpsFixtures(t *testing.T, script string) opsFixtures {
	t.Helper()
	dir := t.TempDir()
	testutil.RunScript(t, filepath.Join("testdata", script), dir)
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

// expectClose fails the test if got and want differ beyond the tolerance,
// and logs the largest difference with the bound.
func expectClose(t *testing.T, what string, got, want []float32, rtol, atol float64) {
	t.Helper()
	d, err := closeTo(got, want, rtol, atol)
	if err != nil {
		t.Errorf("%s: %v (max abs diff %g)", what, err, d)
		return
	}
	t.Logf("%s: max abs diff %.2e (bound %g + %g*|want|)", what, d, atol, rtol)
}

// TestTorchParity compares every op with torch on the inputs written by
// testdata/gen_ops_fixtures.py: outputs, gradients of Σ out·w, and the
// running statistics of BatchNorm.
func TestTorchParity(t *testing.T) {
	fx := genOpsFixtures(t, "gen_ops_fixtures.py")
	const rtol, atol = 1e-5, 1e-5
	t.Run("affine", func(t *testing.T) {
		for _, relu := range []int{0, 1} {
			for _, res := range []int{0, 1} {
				c := fx.load(t, fmt.Sprintf("affine_relu%d_res%d", relu, res))
				inputs := []gradInput{
					{name: "x", shape: c.shapes["x"], data: c.get(t, "x")},
					{name: "scale", shape: c.shapes["scale"], data: c.get(t, "scale")},
					{name: "shift", shape: c.shapes["shift"], data: c.get(t, "shift")},
				}
				if res == 1 {
					inputs = append(inputs, gradInput{name: "residual", shape: c.shapes["residual"], data: c.get(t, "residual")})
				}
				r := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
					var rn *G.Node
					if res == 1 {
						rn = in[3]
					}
					return Affine(in[0], in[1], in[2], rn, relu == 1)
				}, inputs, gradCheckOpts{w: c.get(t, "w"), skipNumeric: true})
				expectClose(t, c.name+" y", r.out, c.get(t, "y"), rtol, atol)
				expectClose(t, c.name+" dx", r.grads[0], c.get(t, "dx"), rtol, atol)
				expectClose(t, c.name+" dscale", r.grads[1], c.get(t, "dscale"), 1e-4, 1e-4)
				expectClose(t, c.name+" dshift", r.grads[2], c.get(t, "dshift"), 1e-4, 1e-4)
				if res == 1 {
					expectClose(t, c.name+" dresidual", r.grads[3], c.get(t, "dresidual"), rtol, atol)
				}
			}
		}
	})
	t.Run("batchnorm", func(t *testing.T) {
		for _, training := range []int{1, 0} {
			c := fx.load(t, fmt.Sprintf("batchnorm_train%d", training))
			st := NewBNStats(c.shapes["gamma"][0])
			copy(st.Mean, c.get(t, "mean0"))
			copy(st.Var, c.get(t, "var0"))
			r := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return BatchNorm(in[0], in[1], in[2], st, training == 1)
			}, []gradInput{
				{name: "x", shape: c.shapes["x"], data: c.get(t, "x")},
				{name: "gamma", shape: c.shapes["gamma"], data: c.get(t, "gamma")},
				{name: "beta", shape: c.shapes["beta"], data: c.get(t, "beta")},
			}, gradCheckOpts{w: c.get(t, "w"), skipNumeric: true})
			expectClose(t, c.name+" y", r.out, c.get(t, "y"), 1e-4, 1e-4)
			expectClose(t, c.name+" dx", r.grads[0], c.get(t, "dx"), 1e-4, 1e-4)
			expectClose(t, c.name+" dgamma", r.grads[1], c.get(t, "dgamma"), 1e-4, 1e-4)
			expectClose(t, c.name+" dbeta", r.grads[2], c.get(t, "dbeta"), 1e-4, 1e-4)
			expectClose(t, c.name+" running mean", st.Mean, c.get(t, "mean1"), 1e-6, 1e-6)
			expectClose(t, c.name+" running var", st.Var, c.get(t, "var1"), 1e-6, 1e-6)
		}
	})
	torchParityPool(t, fx)
	torchParityLinear(t, fx)
	t.Run("relu", func(t *testing.T) {
		c := fx.load(t, "relu")
		r := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			return ReLU(in[0])
		}, []gradInput{{name: "x", shape: c.shapes["x"], data: c.get(t, "x")}},
			gradCheckOpts{w: c.get(t, "w"), skipNumeric: true})
		expectClose(t, "y", r.out, c.get(t, "y"), 0, 0)
		expectClose(t, "dx", r.grads[0], c.get(t, "dx"), 0, 0)
	})
}

func torchParityPool(t *testing.T, fx opsFixtures) {
	for _, name := range []string{"stem", "k2", "k3s1"} {
		t.Run("maxpool_"+name, func(t *testing.T) {
			c := fx.load(t, "maxpool_"+name)
			kp := c.get(t, "params")
			r := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return MaxPool2d(in[0], int(kp[0]), int(kp[1]), int(kp[2]))
			}, []gradInput{{name: "x", shape: c.shapes["x"], data: c.get(t, "x")}},
				gradCheckOpts{w: c.get(t, "w"), skipNumeric: true})
			expectClose(t, "y", r.out, c.get(t, "y"), 0, 0)
			expectClose(t, "dx", r.grads[0], c.get(t, "dx"), 1e-6, 1e-6)
		})
	}
	t.Run("gap", func(t *testing.T) {
		c := fx.load(t, "gap")
		r := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			return GlobalAvgPool(in[0])
		}, []gradInput{{name: "x", shape: c.shapes["x"], data: c.get(t, "x")}},
			gradCheckOpts{w: c.get(t, "w"), skipNumeric: true})
		expectClose(t, "y", r.out, c.get(t, "y"), 1e-6, 1e-6)
		expectClose(t, "dx", r.grads[0], c.get(t, "dx"), 0, 0)
	})
}

func torchParityLinear(t *testing.T, fx opsFixtures) {
	for _, bias := range []int{1, 0} {
		t.Run(fmt.Sprintf("linear_bias%d", bias), func(t *testing.T) {
			c := fx.load(t, fmt.Sprintf("linear_bias%d", bias))
			inputs := []gradInput{
				{name: "x", shape: c.shapes["x"], data: c.get(t, "x")},
				{name: "w", shape: c.shapes["weight"], data: c.get(t, "weight")},
			}
			if bias == 1 {
				inputs = append(inputs, gradInput{name: "b", shape: c.shapes["bias"], data: c.get(t, "bias")})
			}
			r := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				var bn *G.Node
				if bias == 1 {
					bn = in[2]
				}
				return Linear(in[0], in[1], bn)
			}, inputs, gradCheckOpts{w: c.get(t, "w"), skipNumeric: true})
			expectClose(t, "y", r.out, c.get(t, "y"), 1e-5, 1e-5)
			expectClose(t, "dx", r.grads[0], c.get(t, "dx"), 1e-5, 1e-5)
			expectClose(t, "dw", r.grads[1], c.get(t, "dweight"), 1e-5, 1e-5)
			if bias == 1 {
				expectClose(t, "db", r.grads[2], c.get(t, "dbias"), 1e-5, 1e-5)
			}
		})
	}
}
