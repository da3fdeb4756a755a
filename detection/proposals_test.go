package detection

import (
	"math"
	"testing"

	"resdet/box"
	"resdet/internal/testutil"
)

func TestFlattenRPN(t *testing.T) {
	// A=2 anchors on a 1x2 map: objectness [A, H, W], deltas [4A, H, W].
	obj := []float32{
		10, 11, // anchor 0 at cells (0,0), (0,1)
		20, 21, // anchor 1
	}
	deltas := make([]float32, 16)
	for ch := 0; ch < 8; ch++ {
		deltas[2*ch] = float32(100*ch + 0)
		deltas[2*ch+1] = float32(100*ch + 1)
	}
	logits, ds := FlattenRPN(obj, deltas, 2, 1, 2)
	wantL := []float32{10, 20, 11, 21} // cell-major, anchor-minor
	for i := range wantL {
		if logits[i] != wantL[i] {
			t.Fatalf("logits = %v, want %v", logits, wantL)
		}
	}
	// Anchor 1 at cell (0,1): channels 4..7, position 1.
	if want := (box.Delta{401, 501, 601, 701}); ds[3] != want {
		t.Errorf("deltas[3] = %v, want %v", ds[3], want)
	}
}

func TestFilterProposals(t *testing.T) {
	c := DefaultRPNConfig()
	c.PreNMSTopNTest, c.PostNMSTopNTest = 4, 2
	anchors := []box.Box{
		{X1: 0, Y1: 0, X2: 10, Y2: 10},   // logit 5: kept
		{X1: 1, Y1: 0, X2: 11, Y2: 10},   // logit 4: suppressed by anchor 0 (IoU 0.82)
		{X1: 50, Y1: 50, X2: 60, Y2: 60}, // logit 3: kept
		{X1: 20, Y1: 20, X2: 30, Y2: 30}, // logit -1: beyond pre-NMS top 4
		{X1: 200, Y1: 200, X2: 210, Y2: 210},
	}
	logits := []float32{5, 4, 3, -1, 9} // anchor 4 is outside the image: clipped to nothing
	deltas := make([]box.Delta, len(anchors))
	boxes, scores := c.FilterProposals(anchors, logits, deltas, Size{W: 100, H: 80}, false)
	want := []box.Box{anchors[0], anchors[2]}
	if len(boxes) != 2 || boxes[0] != want[0] || boxes[1] != want[1] {
		t.Fatalf("boxes = %v, want %v", boxes, want)
	}
	if math.Abs(float64(scores[0])-1/(1+math.Exp(-5))) > 1e-7 {
		t.Errorf("score = %v, want sigmoid(5)", scores[0])
	}
	c.PostNMSTopNTest = 1
	if boxes, _ := c.FilterProposals(anchors, logits, deltas, Size{W: 100, H: 80}, false); len(boxes) != 1 || boxes[0] != want[0] {
		t.Errorf("post-NMS top 1: boxes = %v, want %v", boxes, want[:1])
	}
}

func TestFilterProposalsParity(t *testing.T) {
	testFilterProposalsParity(t, fixtures.Load(t, "proposals.json"))
}

func testFilterProposalsParity(t *testing.T, cases map[string]testutil.FixtureCase) {
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var img, feat []int
			var pre, post int
			var training bool
			c.Scalar(t, "training", &training)
			c.Scalar(t, "image", &img)
			c.Scalar(t, "feat", &feat)
			c.Scalar(t, "pre_nms_top_n", &pre)
			c.Scalar(t, "post_nms_top_n", &post)
			cfg := DefaultRPNConfig()
			cfg.PreNMSTopNTest, cfg.PostNMSTopNTest = pre, post
			cfg.PreNMSTopNTrain, cfg.PostNMSTopNTrain = pre, post
			g := cfg.Anchors
			anchors := g.Anchors(feat[0], feat[1], 16, 16)
			wantAnchors := fixtureBoxes(t, c, "anchors")
			for i := range anchors {
				if anchors[i] != wantAnchors[i] {
					t.Fatalf("anchor %d = %v, torchvision %v", i, anchors[i], wantAnchors[i])
				}
			}
			obj, _ := c.F32(t, "objectness")
			deltas, _ := c.F32(t, "deltas")
			logits, ds := FlattenRPN(obj, deltas, g.NumAnchors(), feat[0], feat[1])
			boxes, scores := cfg.FilterProposals(anchors, logits, ds, Size{W: img[1], H: img[0]}, training)
			wantB, _ := c.F32(t, "boxes")
			wantS, _ := c.F32(t, "scores")
			compareDetections(t, boxes, scores, nil, fixtureBoxes(t, c, "boxes"), wantS, nil)
			t.Logf("%d proposals (torchvision %d)", len(boxes), len(wantB)/4)
		})
	}
}

// compareDetections checks boxes (to 1e-4 px, a few float32 ulps at 1000 px), scores (to
// 1e-6) and labels (exactly; nil to skip) against torchvision's.
func compareDetections(t *testing.T, boxes []box.Box, scores []float32, labels []int, wantB []box.Box, wantS []float32, wantL []int) {
	t.Helper()
	if len(boxes) != len(wantB) {
		t.Fatalf("%d boxes, torchvision %d", len(boxes), len(wantB))
	}
	var maxB, maxS float64
	for i := range boxes {
		g, w := boxes[i], wantB[i]
		for k, v := range [4]float32{g.X1, g.Y1, g.X2, g.Y2} {
			maxB = max(maxB, math.Abs(float64(v-[4]float32{w.X1, w.Y1, w.X2, w.Y2}[k])))
		}
		maxS = max(maxS, math.Abs(float64(scores[i]-wantS[i])))
		if labels != nil && labels[i] != wantL[i] {
			t.Fatalf("detection %d: label %d, torchvision %d", i, labels[i], wantL[i])
		}
	}
	t.Logf("max abs error: box %.3g px (bound 1e-4), score %.3g (bound 1e-6)", maxB, maxS)
	if maxB > 1e-4 || maxS > 1e-6 {
		t.Errorf("max abs error vs torchvision: box %.3g px, score %.3g", maxB, maxS)
	}
}

// TestLargeParity compares with torchvision on C4-sized inputs generated
// at test time: proposals of a 38x63 map (21546 anchors), post-processing
// of 1000 proposals.
func TestLargeParity(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := fixtures.Large(t)
	t.Run("FilterProposals", func(t *testing.T) { testFilterProposalsParity(t, testutil.LoadFixture(t, dir, "proposals.json")) })
	t.Run("PostprocessDetections", func(t *testing.T) {
		testPostprocessParity(t, testutil.LoadFixture(t, dir, "postprocess.json"))
	})
}
