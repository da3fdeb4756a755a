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
