package detection

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"resdet/box"

	"resdet/internal/testutil"
	"resdet/internal/testutil/gradtest"
)

// TestTrainingChainMatchesTorchvision follows torchvision's training-mode
// RegionProposalNetwork and RoIHeads on random features, from the RPN head
// outputs: RPN targets and losses, proposals (FilterProposals, training
// sizes), the sampled RoIs with their targets, and the box-head losses.
// Both samplers are set to take every candidate, so the chain is
// deterministic.
func TestTrainingChainMatchesTorchvision(t *testing.T) {
	c := lossFixtures.Load(t, "losses.json")["chain"]
	const everything = 1_000_000
	rpn := DefaultRPNConfig()
	rpn.Anchors = AnchorGenerator{Sizes: []float32{32, 64, 128}, AspectRatios: []float32{0.5, 1, 2}}
	rpn.PostNMSTopNTrain = int(c.Num(t, "post_nms"))
	rpn.BatchSizePerImage = everything
	heads := DefaultRoIHeadsConfig()
	heads.BatchSizePerImage = everything

	obj, oshape := c.F32(t, "objectness")
	dl, dshape := c.F32(t, "deltas")
	n, a, fh, fw := oshape[0], oshape[1], oshape[2], oshape[3]
	pad := Size{W: int(c.Num(t, "pad_w")), H: int(c.Num(t, "pad_h"))}
	anchors := rpn.Anchors.Anchors(fh, fw, Stride(pad.H, fh), Stride(pad.W, fw))
	r := rand.New(rand.NewSource(1))

	var gts, proposals [][]box.Box
	var gtLabels [][]int
	var imgs []Size
	for i := range n {
		img := Size{W: int(c.Num(t, fmt.Sprintf("img_w%d", i))), H: int(c.Num(t, fmt.Sprintf("img_h%d", i)))}
		imgs = append(imgs, img)
		gts = append(gts, fixtureBoxes(t, c, fmt.Sprintf("gt%d", i)))
		gtLabels = append(gtLabels, c.Ints(t, fmt.Sprintf("gt_labels%d", i)))
		per := a * fh * fw
		logits, ds := FlattenRPN(obj[i*per:(i+1)*per], dl[4*i*per:4*(i+1)*per], a, fh, fw)
		got, _ := rpn.FilterProposals(anchors, logits, ds, img, true)
		want := fixtureBoxes(t, c, fmt.Sprintf("proposals%d", i))
		if len(got) != len(want) {
			t.Errorf("image %d: %d proposals, torchvision %d", i, len(got), len(want))
		} else {
			worst := 0.0
			for k := range got {
				for _, d := range [4]float32{got[k].X1 - want[k].X1, got[k].Y1 - want[k].Y1, got[k].X2 - want[k].X2, got[k].Y2 - want[k].Y2} {
					worst = max(worst, math.Abs(float64(d)))
				}
			}
			if worst > 1e-3 {
				t.Errorf("image %d: proposals differ by up to %g px", i, worst)
			}
			t.Logf("image %d: %d proposals, max abs diff %g px (bound 1e-3)", i, len(got), worst)
		}
		// The next stage starts from torchvision's proposals, so that a
		// proposal difference does not hide a target difference.
		proposals = append(proposals, want)
	}

	rpnBatch, err := rpn.SampleRPNBatch(anchors, gts, imgs, TargetOptions{}, r)
	if err != nil {
		t.Fatal(err)
	}
	lg := gradtest.NewGraph([][]int{oshape, dshape}, [][]float32{obj, dl})
	rl, err := NewRPNLoss(lg.Inputs[0], lg.Inputs[1], rpnBatch)
	lo, lb := rpnNodes(rl)
	if err != nil {
		t.Fatal(err)
	}
	vals, _ := lg.Run(t, lo, lb)
	testutil.ExpectScalarRel(t, "loss_objectness", vals[0], c.Num(t, "loss_objectness"), 1e-5)
	testutil.ExpectScalarRel(t, "loss_rpn_box_reg", vals[1], c.Num(t, "loss_rpn_box_reg"), 1e-5)

	roiBatch, err := heads.SelectTrainingSamples(proposals, gts, gtLabels, TargetOptions{}, r)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range roiBatch {
		rois := fixtureBoxes(t, c, fmt.Sprintf("rois%d", i))
		labels := c.Ints(t, fmt.Sprintf("labels%d", i))
		deltas, _ := c.F32(t, fmt.Sprintf("deltas%d", i))
		if s.Len() != len(rois) {
			t.Fatalf("image %d: %d sampled RoIs, torchvision %d", i, s.Len(), len(rois))
		}
		var fg int
		for k := range rois {
			if s.RoIs[k] != rois[k] || s.Labels[k] != labels[k] {
				t.Fatalf("image %d RoI %d: %v label %d, torchvision %v label %d", i, k, s.RoIs[k], s.Labels[k], rois[k], labels[k])
			}
			if s.Labels[k] > 0 {
				fg++
				for j := range 4 {
					if d := math.Abs(float64(s.Deltas[k][j] - deltas[4*k+j])); d > 1e-5 {
						t.Errorf("image %d RoI %d delta %d: %v, torchvision %v", i, k, j, s.Deltas[k][j], deltas[4*k+j])
					}
				}
			}
		}
		t.Logf("image %d: %d RoIs, %d foreground", i, s.Len(), fg)
	}
	cls, cshape := c.F32(t, "class_logits")
	reg, rshape := c.F32(t, "box_regression")
	hg := gradtest.NewGraph([][]int{cshape, rshape}, [][]float32{cls, reg})
	fl, err := NewFastRCNNLoss(hg.Inputs[0], hg.Inputs[1], roiBatch)
	lc, lr := fastRCNNNodes(fl)
	if err != nil {
		t.Fatal(err)
	}
	vals, _ = hg.Run(t, lc, lr)
	testutil.ExpectScalarRel(t, "loss_classifier", vals[0], c.Num(t, "loss_classifier"), 1e-5)
	testutil.ExpectScalarRel(t, "loss_box_reg", vals[1], c.Num(t, "loss_box_reg"), 1e-5)
}
