package ops

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/testutil"
	"resdet/internal/testutil/gradtest"
)

func TestLossOpsMatchTorch(t *testing.T) {
	cases := fixtures.Load(t, "losses.json")
	build := map[string]func(t *testing.T, c testutil.FixtureCase, x *G.Node) (*G.Node, error){
		"bce": func(t *testing.T, c testutil.FixtureCase, x *G.Node) (*G.Node, error) {
			y, _ := c.F32(t, "target")
			return BCEWithLogitsLoss(x, c.Ints(t, "idx"), y)
		},
		"cross_entropy": func(t *testing.T, c testutil.FixtureCase, x *G.Node) (*G.Node, error) {
			return CrossEntropyLoss(x, c.Ints(t, "labels"))
		},
	}
	smooth := func(t *testing.T, c testutil.FixtureCase, x *G.Node) (*G.Node, error) {
		y, _ := c.F32(t, "target")
		return SmoothL1Loss(x, c.Ints(t, "idx"), y, float32(c.Num(t, "beta")), float32(c.Num(t, "norm")))
	}
	for _, name := range []string{"smooth_l1_ninth", "smooth_l1_one", "smooth_l1_zero"} {
		build[name] = smooth
	}
	for _, name := range []string{"bce", "smooth_l1_ninth", "smooth_l1_one", "smooth_l1_zero", "cross_entropy"} {
		t.Run(name, func(t *testing.T) {
			c, ok := cases[name]
			if !ok {
				t.Fatalf("no case %s in losses.json", name)
			}
			x, shape := c.F32(t, "x")
			lg := gradtest.NewGraph([][]int{shape}, [][]float32{x})
			loss, err := build[name](t, c, lg.Inputs[0])
			if err != nil {
				t.Fatal(err)
			}
			vals, grads := lg.Run(t, loss)
			testutil.ExpectScalarRel(t, "loss", vals[0], c.Num(t, "value"), 1e-6)
			want, _ := c.F32(t, "grad")
			d := testutil.ExpectClose(t, "grad", grads[0], want, 1e-5, 1e-7)
			t.Logf("grad: max abs diff %g (bound 1e-7 + 1e-5*|torch|)", d)
		})
	}
}

// TestLossGradFiniteDifference checks the analytic gradients of the loss
// builders against central differences of their forward values, run
// through the graph.
func TestLossGradFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	gradtest.CheckFiniteDifferences(t, r, []gradtest.Case{
		{Name: "bce", Shapes: [][]int{{4, 5}}, Scale: 2, Build: func(in []*G.Node) ([]*G.Node, error) {
			n, err := BCEWithLogitsLoss(in[0], []int{0, 3, 3, 7, 19, 11}, []float32{1, 0, 1, 0.25, 0, 1})
			return []*G.Node{n}, err
		}},
		{Name: "smooth_l1", Shapes: [][]int{{3, 4}}, Scale: 1, Build: func(in []*G.Node) ([]*G.Node, error) {
			n, err := SmoothL1Loss(in[0], []int{1, 2, 5, 8, 8, 11}, []float32{0.5, -1, 0, 2, 0.1, -0.3}, 0.5, 3)
			return []*G.Node{n}, err
		}},
		{Name: "cross_entropy", Shapes: [][]int{{5, 4}}, Scale: 2, Build: func(in []*G.Node) ([]*G.Node, error) {
			n, err := CrossEntropyLoss(in[0], []int{0, 3, 1, 1, 2})
			return []*G.Node{n}, err
		}},
	})
}

func TestLossRejectsBadInput(t *testing.T) {
	g := G.NewGraph()
	mk := func(name string, s ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(s), G.WithShape(s...), G.WithName(name))
	}
	x := mk("x", 2, 3)
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"bce_empty", func() error { _, err := BCEWithLogitsLoss(x, nil, nil); return err }, "no elements"},
		{"bce_range", func() error { _, err := BCEWithLogitsLoss(x, []int{6}, []float32{1}); return err }, "offset 6"},
		{"bce_lengths", func() error { _, err := BCEWithLogitsLoss(x, []int{1, 2}, []float32{1}); return err }, "2 offsets but 1"},
		{"smooth_l1_norm", func() error { _, err := SmoothL1Loss(x, []int{1}, []float32{1}, 0.1, 0); return err }, "norm"},
		{"ce_label", func() error { _, err := CrossEntropyLoss(x, []int{0, 3}); return err }, "label 3 of row 1"},
		{"ce_rows", func() error { _, err := CrossEntropyLoss(x, []int{0}); return err }, "1 labels"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestLossNodesNotMerged checks that two losses of the same input with
// different targets stay two nodes (gorgonia merges equal op hashes).
func TestLossNodesNotMerged(t *testing.T) {
	lg := gradtest.NewGraph([][]int{{4}}, [][]float32{{0.5, -1, 2, 0}})
	a, err := BCEWithLogitsLoss(lg.Inputs[0], []int{0, 1}, []float32{1, 0})
	if err != nil {
		t.Fatal(err)
	}
	b, err := BCEWithLogitsLoss(lg.Inputs[0], []int{0, 1}, []float32{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	vals, _ := lg.Run(t, a, b)
	if vals[0] == vals[1] {
		t.Errorf("both losses are %v: nodes merged", vals[0])
	}
}

// TestReselect checks that a loss node pointed at another selection by
// Reselect computes what a node built with that selection computes (value
// and gradient), and that a cross-entropy row labelled IgnoreLabel is left
// out of the mean as if it were not there.
func TestReselect(t *testing.T) {
	x := []float32{0.5, -1, 2, 0, 1.5, -0.25, 0.75, -2, 0.1, 0.3, -0.7, 1.1}
	tests := []struct {
		name  string
		shape []int
		build func(x *G.Node) (*G.Node, error) // the first selection
		sel   func(l *G.Node) error            // Reselect to the second
		want  func(x *G.Node) (*G.Node, error) // built with the second
	}{
		{"bce", []int{12},
			func(x *G.Node) (*G.Node, error) { return BCEWithLogitsLoss(x, []int{0, 1}, []float32{1, 0}) },
			func(l *G.Node) error { return Reselect(l, []int{3, 5, 5, 11}, []float32{0, 1, 0.5, 1}, 0) },
			func(x *G.Node) (*G.Node, error) {
				return BCEWithLogitsLoss(x, []int{3, 5, 5, 11}, []float32{0, 1, 0.5, 1})
			}},
		{"smooth_l1", []int{3, 4},
			func(x *G.Node) (*G.Node, error) { return SmoothL1Loss(x, nil, nil, 0.5, 1) },
			func(l *G.Node) error { return Reselect(l, []int{1, 7, 8}, []float32{0.5, -1, 2}, 4) },
			func(x *G.Node) (*G.Node, error) {
				return SmoothL1Loss(x, []int{1, 7, 8}, []float32{0.5, -1, 2}, 0.5, 4)
			}},
		{"cross_entropy_ignore", []int{4, 3},
			func(x *G.Node) (*G.Node, error) { return CrossEntropyLoss(x, []int{0, 0, 0, 0}) },
			func(l *G.Node) error { return Reselect(l, []int{2, IgnoreLabel, 1, IgnoreLabel}, nil, 0) },
			// Rows 1 and 3 ignored: the mean over rows 0 and 2, i.e. the
			// loss of those rows alone (a selection of the flat input).
			func(x *G.Node) (*G.Node, error) {
				rows := G.Must(G.Slice(x, G.S(0, 4, 2)))
				return CrossEntropyLoss(rows, []int{2, 1})
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lg := gradtest.NewGraph([][]int{tc.shape}, [][]float32{x})
			l, err := tc.build(lg.Inputs[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.sel(l); err != nil {
				t.Fatal(err)
			}
			got, gotGrad := lg.Run(t, l)
			wg := gradtest.NewGraph([][]int{tc.shape}, [][]float32{x})
			w, err := tc.want(wg.Inputs[0])
			if err != nil {
				t.Fatal(err)
			}
			want, wantGrad := wg.Run(t, w)
			if math.Abs(got[0]-want[0]) > 1e-6*math.Abs(want[0]) {
				t.Errorf("loss %v after Reselect, %v built with that selection", got[0], want[0])
			}
			d := testutil.ExpectClose(t, "grad", gotGrad[0], wantGrad[0], 1e-6, 1e-7)
			t.Logf("loss %v, want %v; grad max abs diff %g", got[0], want[0], d)
		})
	}
}

func TestReselectRejectsBadSelection(t *testing.T) {
	lg := gradtest.NewGraph([][]int{{2, 3}}, [][]float32{make([]float32, 6)})
	bce, err := BCEWithLogitsLoss(lg.Inputs[0], []int{0}, []float32{1})
	if err != nil {
		t.Fatal(err)
	}
	ce, err := CrossEntropyLoss(lg.Inputs[0], []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	sl1, err := SmoothL1Loss(lg.Inputs[0], nil, nil, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"not a loss", Reselect(lg.Inputs[0], []int{0}, []float32{1}, 1), "not a loss"},
		{"bce empty", Reselect(bce, nil, nil, 0), "no elements"},
		{"bce range", Reselect(bce, []int{6}, []float32{1}, 0), "offset 6"},
		{"bce lengths", Reselect(bce, []int{1, 2}, []float32{1}, 0), "2 offsets but 1"},
		{"smooth_l1 norm", Reselect(sl1, []int{1}, []float32{1}, 0), "norm"},
		{"ce all ignored", Reselect(ce, []int{IgnoreLabel, IgnoreLabel}, nil, 0), "every row is ignored"},
		{"ce label", Reselect(ce, []int{0, 3}, nil, 0), "label 3 of row 1"},
		{"ce targets", Reselect(ce, []int{0, 1}, []float32{1, 1}, 0), "want none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", tc.err, tc.want)
			}
		})
	}
	// The failed calls left the selections as built.
	vals, _ := lg.Run(t, bce, ce)
	if want := math.Log1p(1); math.Abs(vals[0]-want) > 1e-6 {
		t.Errorf("BCE after failed Reselects = %v, want %v", vals[0], want)
	}
	if want := math.Log(3); math.Abs(vals[1]-want) > 1e-6 {
		t.Errorf("cross entropy after failed Reselects = %v, want %v", vals[1], want)
	}
}
