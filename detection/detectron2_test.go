package detection

import (
	"math"
	"testing"

	"resdet/box"
)

// TestDetectron2CellAnchors checks the C4 cell anchors against the values
// Detectron2's DefaultAnchorGenerator gives (sizes 32..512 x ratios 0.5, 1,
// 2: size-major, unrounded; PRETRAINED.md 2.3 quotes size 32's).
func TestDetectron2CellAnchors(t *testing.T) {
	g := Detectron2Config("r50-c4", []string{"a"}).RPN.Anchors
	cell := g.CellAnchors()
	if len(cell) != 15 || g.NumAnchors() != 15 {
		t.Fatalf("%d anchors, want 15", len(cell))
	}
	tests := []struct {
		name string
		i    int
		want box.Box
	}{
		{"size 32 ratio 0.5", 0, box.Box{X1: -22.627417, Y1: -11.313708, X2: 22.627417, Y2: 11.313708}},
		{"size 32 ratio 1", 1, box.Box{X1: -16, Y1: -16, X2: 16, Y2: 16}},
		{"size 32 ratio 2", 2, box.Box{X1: -11.313708, Y1: -22.627417, X2: 11.313708, Y2: 22.627417}},
		{"size 64 ratio 0.5", 3, box.Box{X1: -45.254834, Y1: -22.627417, X2: 45.254834, Y2: 22.627417}},
		{"size 512 ratio 1", 13, box.Box{X1: -256, Y1: -256, X2: 256, Y2: 256}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := cell[tc.i]
			for k, v := range [4]float32{got.X1 - tc.want.X1, got.Y1 - tc.want.Y1, got.X2 - tc.want.X2, got.Y2 - tc.want.Y2} {
				if math.Abs(float64(v)) > 1e-5 {
					t.Errorf("coordinate %d of %v, want %v", k, got, tc.want)
				}
			}
		})
	}
	// Strides: the feature map's own, whatever the padded size.
	if sh, sw := g.Strides(938, 800, 59, 50, 16); sh != 16 || sw != 16 {
		t.Errorf("Detectron2 strides %d, %d, want 16, 16", sh, sw)
	}
	if sh, sw := DefaultAnchorGenerator().Strides(938, 800, 59, 50, 16); sh != 15 || sw != 16 {
		t.Errorf("torchvision strides %d, %d, want 15, 16", sh, sw)
	}
	a := g.Anchors(2, 3, 16, 16)
	if got, want := a[(1*3+2)*15+1], (box.Box{X1: 32 - 16, Y1: 16 - 16, X2: 32 + 16, Y2: 16 + 16}); got != want {
		t.Errorf("anchor of cell (1, 2), index 1 = %v, want %v (offset 0)", got, want)
	}
}

// TestLogitScoreProposals checks Detectron2's proposal rules: scores are
// logits, no score threshold, zero-width boxes dropped, non-finite dropped.
func TestLogitScoreProposals(t *testing.T) {
	c := Detectron2Config("r50-c4", []string{"a"}).RPN
	c.PreNMSTopNTest, c.PostNMSTopNTest = 10, 10
	anchors := []box.Box{
		{X1: 0, Y1: 0, X2: 10, Y2: 10},
		{X1: 50, Y1: 50, X2: 60, Y2: 60},
		{X1: 120, Y1: 0, X2: 130, Y2: 10}, // clipped to zero width
		{X1: 20, Y1: 20, X2: 30, Y2: 30},
		{X1: 80, Y1: 80, X2: 90, Y2: 90},
	}
	logits := []float32{-3, 2, 5, float32(math.NaN()), -40}
	deltas := make([]box.Delta, len(anchors))
	deltas[4] = box.Delta{float32(math.Inf(1)), 0, 0, 0}
	boxes, scores := c.FilterProposals(anchors, logits, deltas, Size{W: 100, H: 100}, false)
	wantB := []box.Box{anchors[1], anchors[0]}
	wantS := []float32{2, -3}
	if len(boxes) != len(wantB) {
		t.Fatalf("got %v %v, want %v %v", boxes, scores, wantB, wantS)
	}
	for i := range wantB {
		if boxes[i] != wantB[i] || scores[i] != wantS[i] {
			t.Errorf("proposal %d = %v (%v), want %v (%v)", i, boxes[i], scores[i], wantB[i], wantS[i])
		}
	}
}

// TestBackgroundLastPostprocess checks Detectron2's predictor layout: the
// background is the last logit column, deltas have no background rows, and
// labels still count from 1; and its rescaling (clip to the original size,
// empty boxes dropped).
func TestBackgroundLastPostprocess(t *testing.T) {
	c := Detectron2Config("r50-c4", []string{"a", "b"}).RoIHeads
	proposals := []box.Box{{X1: 10, Y1: 10, X2: 30, Y2: 40}}
	// NC = 3: classes a, b, background. b wins, background is column 2.
	logits := []float32{2, 3, 1}
	deltas := []float32{0, 0, 0, 0, 1, 0, 0, 0} // b moves right by 0.1*20 = 2 px
	det := c.PostprocessDetections(logits, deltas, proposals, 3, Size{W: 100, H: 100})
	if det.Len() != 2 {
		t.Fatalf("%d detections, want 2: %+v", det.Len(), det)
	}
	if det.Labels[0] != 2 || det.Boxes[0] != (box.Box{X1: 12, Y1: 10, X2: 32, Y2: 40}) {
		t.Errorf("best = label %d %v, want label 2 (12, 10, 32, 40)", det.Labels[0], det.Boxes[0])
	}
	e := [3]float64{math.Exp(2), math.Exp(3), math.Exp(1)}
	if want := e[1] / (e[0] + e[1] + e[2]); math.Abs(float64(det.Scores[0])-want) > 1e-6 {
		t.Errorf("score %v, want %v", det.Scores[0], want)
	}
	tests := []struct {
		name string
		in   box.Box
		want []box.Box
	}{
		{"scaled", box.Box{X1: 10, Y1: 10, X2: 20, Y2: 20}, []box.Box{{X1: 5, Y1: 5, X2: 10, Y2: 10}}},
		{"clipped", box.Box{X1: 90, Y1: 0, X2: 120, Y2: 20}, []box.Box{{X1: 45, Y1: 0, X2: 50, Y2: 10}}},
		{"empty after clipping", box.Box{X1: 110, Y1: 0, X2: 120, Y2: 20}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := c.Rescale(Detections{Boxes: []box.Box{tc.in}, Scores: []float32{1}, Labels: []int{1}}, Size{W: 100, H: 100}, Size{W: 50, H: 50})
			if len(d.Boxes) != len(tc.want) || (len(tc.want) == 1 && d.Boxes[0] != tc.want[0]) {
				t.Errorf("got %v, want %v", d.Boxes, tc.want)
			}
		})
	}
}

// TestDetectron2FPNConfig checks Detectron2FPNConfig against the values of
// Detectron2's Base-RCNN-FPN.yaml, defaults.py and the X101-32x8d config
// (PIXEL_STD), the fixed level strides of its anchors (P6 at 64 where
// torchvision's rule gives 800/13 = 61), and that DefaultConfig and
// Validate know the archs.
func TestDetectron2FPNConfig(t *testing.T) {
	for _, arch := range []string{ArchD2R50FPN, ArchD2R101FPN, ArchD2X101FPN} {
		t.Run(arch, func(t *testing.T) {
			c := DefaultConfig(arch, []string{"a", "b"})
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if !IsFPN(arch) || !IsDetectron2FPN(arch) || IsDetectron2FPN(ArchTVR50FPN) {
				t.Errorf("IsFPN %v, IsDetectron2FPN %v", IsFPN(arch), IsDetectron2FPN(arch))
			}
			std := [3]float32{1, 1, 1}
			if arch == ArchD2X101FPN {
				std = [3]float32{57.375, 57.120, 58.395}
			}
			checks := []struct {
				name      string
				got, want any
			}{
				{"input", [3]any{c.Transform.MinSize, c.Transform.MaxSize, c.Transform.Preprocess}, [3]any{800, 1333, "detectron2"}},
				{"padding", c.Transform.SizeDivisible, 32},
				{"mean", c.Transform.Norm.Mean, [3]float32{103.530, 116.280, 123.675}},
				{"std", c.Transform.Norm.Std, std},
				{"BGR 0..255", [2]any{c.Transform.Norm.BGR, c.Transform.Norm.Range}, [2]any{true, float32(1)}},
				{"anchor levels", [3]any{c.RPN.Anchors.NumLevels(), c.RPN.Anchors.NumAnchors(), c.RPN.Anchors.Detectron2}, [3]any{5, 3, true}},
				{"anchor sizes", [5]float32(c.RPN.Anchors.Sizes), [5]float32{32, 64, 128, 256, 512}},
				{"anchor ratios", [3]float32(c.RPN.Anchors.AspectRatios), [3]float32{0.5, 1, 2}},
				{"rpn pre/post test", [2]int{c.RPN.PreNMSTopNTest, c.RPN.PostNMSTopNTest}, [2]int{1000, 1000}},
				{"rpn pre/post train", [2]int{c.RPN.PreNMSTopNTrain, c.RPN.PostNMSTopNTrain}, [2]int{2000, 1000}},
				{"rpn NMS, logits, min size", [3]any{c.RPN.NMSThresh, c.RPN.LogitScores, c.RPN.MinSize}, [3]any{float32(0.7), true, float32(0)}},
				{"pooler", c.RoIOp, RoIOpConfig{Op: RoIOpAlign, Size: 7, SamplingRatio: 0, Aligned: true, LevelEps: 1e-8, LevelEpsInLog: true}},
				{"fc dim, fpn width", [2]int{c.FCDim, c.FPNChannels}, [2]int{1024, 256}},
				{"roi score/nms/dets", [3]float32{c.RoIHeads.ScoreThresh, c.RoIHeads.NMSThresh, float32(c.RoIHeads.DetectionsPerImage)}, [3]float32{0.05, 0.5, 100}},
				{"roi layout", [3]any{c.RoIHeads.BackgroundLast, c.RoIHeads.ClipToOriginal, c.RoIHeads.MinSize}, [3]any{true, true, float32(0)}},
			}
			for _, ch := range checks {
				if ch.got != ch.want {
					t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
				}
			}
			// P6 of an 800x1216 padded input: 13x19 cells at stride 64.
			if sh, sw := c.RPN.Anchors.Strides(800, 1216, 13, 19, 64); sh != 64 || sw != 64 {
				t.Errorf("P6 strides %d, %d, want 64 (torchvision's rule: %d, %d)", sh, sw, Stride(800, 13), Stride(1216, 19))
			}
			if a := c.RPN.Anchors.Level(4).CellAnchors(); len(a) != 3 || a[1] != (box.Box{X1: -256, Y1: -256, X2: 256, Y2: 256}) {
				t.Errorf("P6 cell anchors %v, want ratio 1 as (-256, -256, 256, 256) in the middle", a)
			}
			bad := c
			bad.FCDim = 0
			if err := bad.Validate(); err == nil {
				t.Errorf("FCDim 0 validates")
			}
			bad = c
			bad.FPNChannels = -1
			if err := bad.Validate(); err == nil {
				t.Errorf("FPNChannels -1 validates")
			}
		})
	}
}
