package detection

import (
	"math"
	"math/rand"
	"testing"

	"resdet/box"
)

// randomTargetScene returns anchors of an img-sized feature grid and ngt random
// ground-truth boxes (some crossing the border) with labels in [1, 4].
func randomTargetScene(r *rand.Rand, ngt int) (anchors, gt []box.Box, labels []int, img Size) {
	img = Size{W: 96 + r.Intn(64), H: 64 + r.Intn(64)}
	g := AnchorGenerator{Sizes: []float32{16, 32, 64}, AspectRatios: []float32{0.5, 1, 2}}
	anchors = g.Anchors((img.H+15)/16, (img.W+15)/16, 16, 16)
	for range ngt {
		w := 4 + r.Float32()*60
		h := 4 + r.Float32()*60
		x := r.Float32()*float32(img.W) - w/4
		y := r.Float32()*float32(img.H) - h/4
		gt = append(gt, box.Box{X1: x, Y1: y, X2: x + w, Y2: y + h})
		labels = append(labels, 1+r.Intn(4))
	}
	return anchors, gt, labels, img
}

// checkTargetMatching checks labels and matches against their definition, from
// the IoU matrix: the best ground truth of each prediction (first on ties),
// thresholds, and (lowQuality) every ground truth's best predictions.
func checkTargetMatching(t *testing.T, preds, gt []box.Box, labels []int, matches []box.Match, fg, bg, bgLo float32, lowQuality bool, classOf func(g int) int) {
	t.Helper()
	iou := box.IoUMatrix(gt, preds)
	best := make([]bool, len(preds)) // a best prediction of some ground truth
	if lowQuality {
		for g := range gt {
			hi := float32(math.Inf(-1))
			for _, v := range iou[g] {
				hi = max(hi, v)
			}
			for p, v := range iou[g] {
				if v == hi {
					best[p] = true
				}
			}
		}
	}
	for p := range preds {
		arg, hi := 0, iou[0][p]
		for g := 1; g < len(gt); g++ {
			if iou[g][p] > hi {
				arg, hi = g, iou[g][p]
			}
		}
		var wantLabel int
		var wantMatch box.Match
		switch {
		case hi >= fg || best[p]:
			wantLabel, wantMatch = classOf(arg), box.Match(arg)
		case hi < bg:
			wantLabel, wantMatch = LabelBackground, box.BelowLowThreshold
			if hi < bgLo {
				wantLabel = LabelIgnore
			}
		default:
			wantLabel, wantMatch = LabelIgnore, box.BetweenThresholds
		}
		if labels[p] != wantLabel || matches[p] != wantMatch {
			t.Fatalf("prediction %d (best IoU %v with gt %d, best of a gt: %v): label %d match %d, want %d %d",
				p, hi, arg, best[p], labels[p], matches[p], wantLabel, wantMatch)
		}
	}
}

// checkTargetDeltas checks that decoding each foreground target delta gives back
// its ground-truth box.
func checkTargetDeltas(t *testing.T, coder box.BoxCoder, preds, gt []box.Box, labels []int, matches []box.Match, deltas []box.Delta) {
	t.Helper()
	for p, l := range labels {
		if l < 1 {
			continue
		}
		got := coder.DecodeOne(deltas[p], preds[p])
		want := gt[matches[p]]
		for _, d := range [4]float32{got.X1 - want.X1, got.Y1 - want.Y1, got.X2 - want.X2, got.Y2 - want.Y2} {
			if math.Abs(float64(d)) > 1e-3 {
				t.Fatalf("prediction %d: decoded target %v, ground truth %v", p, got, want)
			}
		}
	}
}

func checkTargetScene(t *testing.T, seed int64, ngt int, paper bool) {
	r := rand.New(rand.NewSource(seed))
	anchors, gt, gtLabels, img := randomTargetScene(r, ngt)
	var o TargetOptions
	if paper {
		o = PaperTargetOptions()
	}
	rpn := DefaultRPNConfig()
	at, err := rpn.AssignAnchorTargets(anchors, gt, img, o)
	if err != nil {
		t.Fatal(err)
	}
	if ngt == 0 {
		for i, l := range at.Labels {
			if l != LabelBackground {
				t.Fatalf("anchor %d: label %d without ground truth", i, l)
			}
		}
	} else {
		preds, labels, matches, deltas := anchors, at.Labels, at.Matches, at.Deltas
		if paper {
			preds, labels, matches, deltas = nil, nil, nil, nil
			for i, a := range anchors {
				if a.X1 >= 0 && a.Y1 >= 0 && a.X2 <= float32(img.W) && a.Y2 <= float32(img.H) {
					preds = append(preds, a)
					labels = append(labels, at.Labels[i])
					matches = append(matches, at.Matches[i])
					deltas = append(deltas, at.Deltas[i])
				} else if at.Labels[i] != LabelIgnore {
					t.Fatalf("cross-boundary anchor %d %v: label %d", i, a, at.Labels[i])
				}
			}
		}
		if len(preds) > 0 {
			checkTargetMatching(t, preds, gt, labels, matches, 0.7, 0.3, 0, true, func(int) int { return LabelObject })
			checkTargetDeltas(t, rpn.BoxCoder(), preds, gt, labels, matches, deltas)
		}
	}
	heads := DefaultRoIHeadsConfig()
	props := make([]box.Box, 20)
	for i := range props {
		props[i] = box.Box{X1: r.Float32() * 50, Y1: r.Float32() * 50, X2: 51 + r.Float32()*50, Y2: 51 + r.Float32()*50}
	}
	pt, err := heads.AssignProposalTargets(props, gt, gtLabels, o)
	if err != nil {
		t.Fatal(err)
	}
	if pt.Len() != len(props)+len(gt) {
		t.Fatalf("%d RoIs for %d proposals and %d gt", pt.Len(), len(props), len(gt))
	}
	if ngt > 0 {
		checkTargetMatching(t, pt.RoIs, gt, pt.Labels, pt.Matches, 0.5, 0.5, o.BGLowThresh, false, func(g int) int { return gtLabels[g] })
		checkTargetDeltas(t, heads.BoxCoder(), pt.RoIs, gt, pt.Labels, pt.Matches, pt.Deltas)
	}
	s := heads.SampleProposals(pt, r)
	if s.Len() > heads.BatchSizePerImage {
		t.Fatalf("%d RoIs sampled", s.Len())
	}
}

// TestTargetsProperties checks the targets against their definition on
// random scenes (independently of the torchvision fixtures).
func TestTargetsProperties(t *testing.T) {
	for _, tc := range []struct {
		name  string
		paper bool
	}{{"torchvision", false}, {"paper", true}} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := int64(0); seed < 40; seed++ {
				checkTargetScene(t, seed, int(seed%6), tc.paper)
			}
		})
	}
}

func FuzzAssignTargets(f *testing.F) {
	f.Add(int64(1), uint8(3), false)
	f.Add(int64(2), uint8(0), true)
	f.Add(int64(3), uint8(9), true)
	f.Fuzz(func(t *testing.T, seed int64, ngt uint8, paper bool) {
		checkTargetScene(t, seed, int(ngt%12), paper)
	})
}
