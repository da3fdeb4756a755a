package detection

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/box"

	"resdet/internal/testutil"
	"resdet/internal/testutil/gradtest"
)

// TestLossGradFiniteDifference checks the analytic gradients of the two
// stages' losses against central differences of their forward values, run
// through the graph.
func TestLossGradFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	// RPN: 2 images, A=3 anchors per cell on a 2x3 map.
	const a, h, w = 3, 2, 3
	l := a * h * w
	rpnBatch := make([]RPNSample, 2)
	for n := range rpnBatch {
		s := RPNSample{Targets: AnchorTargets{Labels: make([]int, l), Deltas: make([]box.Delta, l)}}
		for i := range l {
			s.Targets.Labels[i] = r.Intn(3) - 1
			for j := range 4 {
				s.Targets.Deltas[i][j] = float32(r.NormFloat64() * 0.5)
			}
			switch s.Targets.Labels[i] {
			case LabelObject:
				s.Pos = append(s.Pos, i)
			case LabelBackground:
				s.Neg = append(s.Neg, i)
			}
		}
		rpnBatch[n] = s
	}
	// Box head: 7 RoIs in two images, 4 classes.
	boxBatch := []ProposalTargets{
		{Labels: []int{0, 2, 3, 0}, Deltas: make([]box.Delta, 4)},
		{Labels: []int{1, 0, 3}, Deltas: make([]box.Delta, 3)},
	}
	for _, b := range boxBatch {
		for i := range b.Deltas {
			for j := range 4 {
				b.Deltas[i][j] = float32(r.NormFloat64() * 0.5)
			}
		}
	}
	gradtest.CheckFiniteDifferences(t, r, []gradtest.Case{
		{Name: "rpn_loss", Shapes: [][]int{{2, a, h, w}, {2, 4 * a, h, w}}, Scale: 1, Build: func(in []*G.Node) ([]*G.Node, error) {
			rl, err := NewRPNLoss(in[0], in[1], rpnBatch)
			o, b := rpnNodes(rl)
			return []*G.Node{o, b}, err
		}},
		{Name: "fastrcnn_loss", Shapes: [][]int{{7, 4}, {7, 16}}, Scale: 1, Build: func(in []*G.Node) ([]*G.Node, error) {
			fl, err := NewFastRCNNLoss(in[0], in[1], boxBatch)
			c, b := fastRCNNNodes(fl)
			return []*G.Node{c, b}, err
		}},
	})
}

// TestRPNLossMatchesTorchvision feeds torchvision's sampled anchors to
// RPNLoss with targets from AssignAnchorTargets and compares both loss
// values and the gradients w.r.t. the head outputs with
// RegionProposalNetwork.compute_loss.
func TestRPNLossMatchesTorchvision(t *testing.T) {
	c := lossFixtures.Load(t, "losses.json")["rpn_loss"]
	obj, oshape := c.F32(t, "objectness")
	dl, dshape := c.F32(t, "deltas")
	anchors := fixtureBoxes(t, c, "anchors")
	img := Size{W: int(c.Num(t, "img_w")), H: int(c.Num(t, "img_h"))}
	cfg := DefaultRPNConfig()
	batch := make([]RPNSample, oshape[0])
	var npos, nall int
	for n := range batch {
		tg, err := cfg.AssignAnchorTargets(anchors, fixtureBoxes(t, c, fmt.Sprintf("gt%d", n)), img, TargetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := c.F32(t, fmt.Sprintf("labels%d", n))
		for i, l := range want {
			if tg.Labels[i] != int(l) {
				t.Fatalf("image %d anchor %d: label %d, torchvision %v", n, i, tg.Labels[i], l)
			}
		}
		batch[n] = RPNSample{Targets: tg, Pos: c.Ints(t, fmt.Sprintf("pos%d", n)), Neg: c.Ints(t, fmt.Sprintf("neg%d", n))}
		npos += len(batch[n].Pos)
		nall += len(batch[n].Pos) + len(batch[n].Neg)
	}
	t.Logf("%d sampled anchors, %d positive", nall, npos)
	lg := gradtest.NewGraph([][]int{oshape, dshape}, [][]float32{obj, dl})
	rl, err := NewRPNLoss(lg.Inputs[0], lg.Inputs[1], batch)
	lo, lb := rpnNodes(rl)
	if err != nil {
		t.Fatal(err)
	}
	vals, grads := lg.Run(t, lo, lb)
	testutil.ExpectScalarRel(t, "loss_objectness", vals[0], c.Num(t, "loss_objectness"), 1e-5)
	testutil.ExpectScalarRel(t, "loss_rpn_box_reg", vals[1], c.Num(t, "loss_box"), 1e-5)
	for i, f := range []string{"grad_objectness", "grad_deltas"} {
		want, _ := c.F32(t, f)
		t.Logf("%s: max abs diff %g (bound 1e-8 + 1e-4*|torch|)", f, testutil.ExpectClose(t, f, grads[i], want, 1e-4, 1e-8))
	}
}

// TestFastRCNNLossMatchesTorchvision rebuilds torchvision's sampled RoIs and
// targets (AssignProposalTargets, then the RoIs torchvision's sampler drew)
// and compares FastRCNNLoss with roi_heads.fastrcnn_loss.
func TestFastRCNNLossMatchesTorchvision(t *testing.T) {
	c := lossFixtures.Load(t, "losses.json")["fastrcnn_loss"]
	cfg := DefaultRoIHeadsConfig()
	var batch []ProposalTargets
	for n := 0; n < 2; n++ {
		all, err := cfg.AssignProposalTargets(fixtureBoxes(t, c, fmt.Sprintf("proposals%d", n)), fixtureBoxes(t, c, fmt.Sprintf("gt%d", n)),
			c.Ints(t, fmt.Sprintf("gt_labels%d", n)), TargetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		idx := append(c.Ints(t, fmt.Sprintf("pos%d", n)), c.Ints(t, fmt.Sprintf("neg%d", n))...)
		slices.Sort(idx)
		s := all.Subset(idx)
		want := fixtureBoxes(t, c, fmt.Sprintf("sampled_rois%d", n))
		if !slices.Equal(s.RoIs, want) {
			t.Fatalf("image %d: sampled RoIs differ from torchvision's", n)
		}
		batch = append(batch, s)
	}
	wantLabels := c.Ints(t, "sampled_labels")
	wantDeltas, _ := c.F32(t, "sampled_deltas")
	var gotLabels []int
	var gotDeltas []box.Delta
	var nfg int
	for _, s := range batch {
		gotLabels = append(gotLabels, s.Labels...)
		gotDeltas = append(gotDeltas, s.Deltas...)
	}
	if !slices.Equal(gotLabels, wantLabels) {
		t.Fatalf("labels %v, torchvision %v", gotLabels, wantLabels)
	}
	for i, l := range gotLabels {
		if l > 0 {
			nfg++
			for j := range 4 {
				if d := math.Abs(float64(gotDeltas[i][j] - wantDeltas[4*i+j])); d > 1e-5 {
					t.Errorf("RoI %d delta %d: %v, torchvision %v", i, j, gotDeltas[i][j], wantDeltas[4*i+j])
				}
			}
		}
	}
	t.Logf("%d sampled RoIs, %d foreground", len(gotLabels), nfg)
	cls, cshape := c.F32(t, "class_logits")
	reg, rshape := c.F32(t, "box_regression")
	lg := gradtest.NewGraph([][]int{cshape, rshape}, [][]float32{cls, reg})
	fl, err := NewFastRCNNLoss(lg.Inputs[0], lg.Inputs[1], batch)
	lc, lb := fastRCNNNodes(fl)
	if err != nil {
		t.Fatal(err)
	}
	vals, grads := lg.Run(t, lc, lb)
	testutil.ExpectScalarRel(t, "loss_classifier", vals[0], c.Num(t, "loss_classifier"), 1e-5)
	testutil.ExpectScalarRel(t, "loss_box_reg", vals[1], c.Num(t, "loss_box_reg"), 1e-5)
	for i, f := range []string{"grad_class_logits", "grad_box_regression"} {
		want, _ := c.F32(t, f)
		t.Logf("%s: max abs diff %g (bound 1e-8 + 1e-4*|torch|)", f, testutil.ExpectClose(t, f, grads[i], want, 1e-4, 1e-8))
	}
}

func TestLossRejectsBadInput(t *testing.T) {
	g := G.NewGraph()
	mk := func(name string, s ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(s), G.WithShape(s...), G.WithName(name))
	}
	x := mk("x", 2, 3)
	obj, del := mk("obj", 1, 2, 2, 2), mk("del", 1, 8, 2, 2)
	one := RPNSample{Targets: AnchorTargets{Labels: make([]int, 8), Deltas: make([]box.Delta, 8)}}
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"rpn_shapes", func() error { _, err := NewRPNLoss(obj, mk("bad", 1, 4, 2, 2), []RPNSample{one}); return err }, "want [N, A, Hi, Wi]"},
		{"rpn_batch", func() error { _, err := NewRPNLoss(obj, del, []RPNSample{}); return err }, "0 samples"},
		{"rpn_nothing_sampled", func() error { _, err := NewRPNLoss(obj, del, []RPNSample{one}); return err }, "no anchor sampled"},
		{"rpn_index", func() error {
			s := one
			s.Pos = []int{8}
			_, err := NewRPNLoss(obj, del, []RPNSample{s})
			return err
		}, "anchor 8"},
		{"fastrcnn_shapes", func() error {
			_, err := NewFastRCNNLoss(x, mk("r", 2, 8), nil)
			return err
		}, "want [K, NC] and [K, 4*NC]"},
		{"fastrcnn_label", func() error {
			_, err := NewFastRCNNLoss(x, mk("r2", 2, 12), []ProposalTargets{{Labels: []int{0, 3}, Deltas: make([]box.Delta, 2)}})
			return err
		}, "label 3"},
		{"fastrcnn_count", func() error {
			_, err := NewFastRCNNLoss(x, mk("r3", 2, 12), []ProposalTargets{{Labels: []int{0}, Deltas: make([]box.Delta, 1)}})
			return err
		}, "1 RoIs in the targets but 2 rows"},
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

// TestRPNLossWithoutPositives: a batch whose images have no ground truth
// gives a box loss of exactly 0 with a zero gradient (torchvision: the sum
// over no anchors divided by the sampled count), and the objectness loss
// of all-negative labels.
func TestRPNLossWithoutPositives(t *testing.T) {
	const a, h, w = 3, 2, 2
	l := a * h * w
	anchors := AnchorGenerator{Sizes: []float32{8, 16, 24}, AspectRatios: []float32{1}}.Anchors(h, w, 8, 8)
	batch, err := DefaultRPNConfig().SampleRPNBatch(anchors, [][]box.Box{nil, nil}, []Size{{W: 16, H: 16}, {W: 16, H: 16}}, TargetOptions{}, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	obj := make([]float32, 2*l)
	var want float64
	for i := range obj {
		obj[i] = float32(i%5) - 2
		want += math.Log1p(math.Exp(float64(obj[i]))) // BCE of label 0
	}
	want /= float64(len(obj))
	lg := gradtest.NewGraph([][]int{{2, a, h, w}, {2, 4 * a, h, w}}, [][]float32{obj, make([]float32, 8*l)})
	rl, err := NewRPNLoss(lg.Inputs[0], lg.Inputs[1], batch)
	lo, lb := rpnNodes(rl)
	if err != nil {
		t.Fatal(err)
	}
	vals, grads := lg.Run(t, lo, lb)
	if math.Abs(vals[0]-want) > 1e-6*want || vals[1] != 0 {
		t.Errorf("losses %v, want [%v 0]", vals, want)
	}
	for i, g := range grads[1] {
		if g != 0 {
			t.Fatalf("delta gradient %d = %v, want 0", i, g)
		}
	}
}

// rpnNodes and fastRCNNNodes return the loss nodes of l (nil for a nil l).
func rpnNodes(l *RPNLoss) (objectness, boxReg *G.Node) {
	if l == nil {
		return nil, nil
	}
	return l.Objectness, l.BoxReg
}

func fastRCNNNodes(l *FastRCNNLoss) (classifier, boxReg *G.Node) {
	if l == nil {
		return nil, nil
	}
	return l.Classifier, l.BoxReg
}
