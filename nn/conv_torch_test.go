package nn

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/testutil"
)

// convFixture is one case written by testdata/gen_conv_fixtures.py.
type convFixture struct {
	Stride, Pad, Dilation [2]int
	Groups                int
	ReLU                  bool `json:"relu"`
	Tensors               map[string]struct {
		Shape []int
		Data  []float32
	}
}

// genConvFixtures runs the torch fixture script into a temporary directory
// and returns the paths of the cases. Without torch it skips the test, or
// fails it with RESDET_REQUIRE_TORCH=1 (testutil.Python).
func genConvFixtures(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	testutil.RunScript(t, filepath.Join("testdata", "gen_conv_fixtures.py"), dir)
	paths, err := filepath.Glob(filepath.Join(dir, "conv*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("gen_conv_fixtures.py wrote no cases in %s (%v)", dir, err)
	}
	sort.Strings(paths)
	return paths
}

// TestConv2dMatchesTorch checks the output and the gradients of
// sum(Conv2dFused(x, w, b, res) * r) and sum(Conv2dBN(x, w, scale, shift,
// res) * r) against torch.
func TestConv2dMatchesTorch(t *testing.T) {
	for _, path := range genConvFixtures(t) {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var f convFixture
			if err := json.Unmarshal(raw, &f); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			g := G.NewGraph()
			node := func(k string) *G.Node {
				tt, ok := f.Tensors[k]
				if !ok {
					return nil
				}
				return G.NewTensor(g, tensor.Float32, len(tt.Shape), G.WithShape(tt.Shape...), G.WithName(k),
					G.WithValue(convDense(tt.Shape, tt.Data)))
			}
			x, w, b, res := node("x"), node("w"), node("b"), node("res")
			scale, shift := node("scale"), node("shift")
			o := ConvOpts{Stride: f.Stride, Pad: f.Pad, Dilation: f.Dilation, Groups: f.Groups}
			var y *G.Node
			if scale != nil {
				y, err = Conv2dBN(x, w, scale, shift, res, o, f.ReLU)
				b = shift
			} else {
				y, err = Conv2dFused(x, w, b, res, o, f.ReLU)
			}
			if err != nil {
				t.Fatal(err)
			}
			r := G.NewConstant(convDense(f.Tensors["r"].Shape, f.Tensors["r"].Data), G.WithName("r"))
			wrt := G.Nodes{x, w}
			keys := []string{"dx", "dw"}
			if b != nil {
				wrt, keys = append(wrt, b), append(keys, "db")
				if scale != nil {
					keys[len(keys)-1] = "dshift"
				}
			}
			if res != nil {
				wrt, keys = append(wrt, res), append(keys, "dres")
			}
			grads, err := G.Backpropagate(G.Nodes{y}, G.Nodes{r}, wrt)
			if err != nil {
				t.Fatal(err)
			}
			m := G.NewTapeMachine(g)
			defer m.Close()
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			check := func(k string, got G.Value) {
				if !got.Shape().Eq(tensor.Shape(f.Tensors[k].Shape)) {
					t.Errorf("%s: shape %v, torch %v", k, got.Shape(), f.Tensors[k].Shape)
					return
				}
				e := convMaxRelErr(got.Data().([]float32), f.Tensors[k].Data)
				t.Logf("%s %v: max error relative to max(1, max|torch|) %.2e (bound 1e-5)", k, got.Shape(), e)
				if !(e <= 1e-5) {
					t.Errorf("%s: max error relative to max(1, max|torch|) = %g > 1e-5", k, e)
				}
			}
			check("y", y.Value())
			for i, k := range keys {
				check(k, grads[i].Value())
			}
		})
	}
}
