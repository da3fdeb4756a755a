package detection

import (
	"math"
	"math/rand"
	"slices"
	"testing"

	"resdet/backbone"
)

// TestRes5HeadStridedPooling checks that a C4 detector of Detectron2's
// construction (res5's stride on its 1x1) pools only the RoIAlign bins
// res5 reads (SingleLevelPooler.Step 2, Res5Head.Input.Strided), and that
// this changes nothing: the same detector built with every bin pooled
// (Step and Strided switched off before its graphs are built) must give
// the same detections, bit for bit, and the same training losses and
// gradients (a step of each on two images, frozen BN). torchvision's
// construction (stride on the 3x3) and RoIPool keep every bin.
func TestRes5HeadStridedPooling(t *testing.T) {
	cfg := DefaultConfig("r50-c4", DefaultClassNames(3))
	cfg.ResNet = ResNetConfig{StrideIn1x1: true, WidthPerGroup: 16, Res2OutChannels: 64}
	cfg.RoIOp.Aligned = true
	cfg.Transform.MinSize, cfg.Transform.MaxSize = 64, 96
	cfg.RPN.Anchors = AnchorGenerator{Sizes: []float32{16, 32, 64}, AspectRatios: []float32{0.5, 1, 2}}
	cfg.RPN.PostNMSTopNTest, cfg.RPN.PostNMSTopNTrain = 30, 20
	cfg.RoIHeads.ScoreThresh = 0.2
	cfg.RoIHeads.BatchSizePerImage = 16

	// everyBin switches the optimisation off on a detector not yet run.
	everyBin := func(t *testing.T, m *FasterRCNN) {
		p, h := m.RoIHeads.Pooler.(*SingleLevelPooler), m.RoIHeads.BoxHead.(*Res5Head)
		if p.Step != 2 || !h.Input.Strided {
			t.Fatalf("Detectron2's C4: pooler step %d, head strided %v; want 2, true", p.Step, h.Input.Strided)
		}
		p.Step, h.Input.Strided = 0, false
	}

	t.Run("predict", func(t *testing.T) {
		build := func(strided bool) *FasterRCNN {
			m, err := New(cfg, Options{Rng: rand.New(rand.NewSource(1))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(m.Close)
			for i := range m.RoIHeads.Predictor.cls.data { // some scores above the threshold
				m.RoIHeads.Predictor.cls.data[i] *= 5
			}
			if !strided {
				everyBin(t, m)
			}
			return m
		}
		img := randImage(4, 96, 64)
		got, err := build(true).Predict(img)
		if err != nil {
			t.Fatal(err)
		}
		want, err := build(false).Predict(img)
		if err != nil {
			t.Fatal(err)
		}
		if want.Len() < 3 || got.Len() != want.Len() {
			t.Fatalf("%d detections, %d with every bin pooled: want the same, at least 3", got.Len(), want.Len())
		}
		for i := range want.Len() {
			if got.Labels[i] != want.Labels[i] || got.Boxes[i] != want.Boxes[i] ||
				math.Float32bits(got.Scores[i]) != math.Float32bits(want.Scores[i]) {
				t.Fatalf("detection %d: %d %v %v; every bin pooled: %d %v %v", i,
					got.Labels[i], got.Boxes[i], got.Scores[i], want.Labels[i], want.Boxes[i], want.Scores[i])
			}
		}
	})

	t.Run("train", func(t *testing.T) {
		step := func(strided bool) stepResult {
			m, err := NewTrainable(cfg, TrainBuild{Rng: rand.New(rand.NewSource(1)), Norm: backbone.FrozenBN, FreezeAt: 2})
			if err != nil {
				t.Fatal(err)
			}
			if !strided {
				everyBin(t, m)
			}
			tr := NewTrainer(m, TrainerConfig{})
			t.Cleanup(tr.Close)
			return runStep(t, tr, twoImageBatch(rand.New(rand.NewSource(3))))
		}
		got, want := step(true), step(false)
		if got.losses != want.losses {
			t.Errorf("losses %+v, every bin pooled %+v", got.losses, want.losses)
		}
		if g5 := want.grads["layer4.0.conv1.weight"]; !slices.ContainsFunc(g5, func(v float32) bool { return v != 0 }) {
			t.Fatalf("%d gradients, res5's first convolution's zero or missing", len(want.grads))
		}
		for name, w := range want.grads {
			if g, ok := got.grads[name]; !ok || len(g) != len(w) {
				t.Errorf("gradient of %s: %d values, want %d", name, len(g), len(w))
			} else if rel := relMax(g, w); rel != 0 {
				t.Errorf("gradient of %s: max relative difference %.3g", name, rel)
			}
		}
	})

	for name, c := range map[string]Config{
		"torchvision's construction": func() Config { c := cfg; c.ResNet.StrideIn1x1 = false; return c }(),
		"RoIPool":                    func() Config { c := cfg; c.RoIOp = RoIOpConfig{Op: RoIOpPool, Size: 14}; return c }(),
	} {
		m, err := New(c, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if p, h := m.RoIHeads.Pooler.(*SingleLevelPooler), m.RoIHeads.BoxHead.(*Res5Head); p.Step > 1 || h.Input.Strided {
			t.Errorf("%s: pooler step %d, head strided %v; want every bin", name, p.Step, h.Input.Strided)
		}
		m.Close()
	}
}
