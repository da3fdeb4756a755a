package detection

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// This file builds the training losses of both stages from the head outputs
// and the plain-Go targets (targets.go), as torchvision 0.14's
// RegionProposalNetwork.compute_loss and roi_heads.fastrcnn_loss.

// RPNBoxBeta and BoxHeadBeta are the smooth-L1 betas of the two box losses
// (torchvision 0.14 uses 1/9 in both).
const (
	RPNBoxBeta  = float32(1.0 / 9)
	BoxHeadBeta = float32(1.0 / 9)
)

// RPNSample is one image's contribution to the RPN loss: its anchor targets
// (AssignAnchorTargets) and the anchors drawn for the loss (SampleAnchors).
type RPNSample struct {
	Targets  AnchorTargets
	Pos, Neg []int
}

// RPNLoss returns torchvision's RPN losses of a batch: objectness, the
// binary cross-entropy with logits averaged over the sampled anchors of all
// images, and boxReg, the smooth-L1 loss (beta RPNBoxBeta) of the deltas of
// the positive sampled anchors, summed and divided by the number of sampled
// anchors of all images.
//
// objectness [N, A, Hi, Wi] and deltas [N, 4A, Hi, Wi] are the RPN head's
// outputs (deltas of anchor a in channels 4a..4a+3, anchor order as in
// FlattenRPN); batch[n] belongs to image n, its targets of length
// Hi*Wi*A. Both results are float32 scalar nodes, differentiable w.r.t.
// objectness and deltas. It returns an error on shape mismatches, on an
// anchor index out of range, or when no anchor is sampled in the batch.
func RPNLoss(objectness, deltas *G.Node, batch []RPNSample) (objLoss, boxLoss *G.Node, err error) {
	osh, ds := objectness.Shape(), deltas.Shape()
	if len(osh) != 4 || len(ds) != 4 || osh[0] != ds[0] || ds[1] != 4*osh[1] || osh[2] != ds[2] || osh[3] != ds[3] {
		return nil, nil, fmt.Errorf("detection: RPNLoss: objectness %v and deltas %v, want [N, A, Hi, Wi] and [N, 4A, Hi, Wi]", osh, ds)
	}
	n, a, hw := osh[0], osh[1], osh[2]*osh[3]
	if len(batch) != n {
		return nil, nil, fmt.Errorf("detection: RPNLoss: %d samples for a batch of %d images", len(batch), n)
	}
	l := a * hw
	var clsIdx, boxIdx []int
	var labels, targets []float32
	for img, s := range batch {
		if len(s.Targets.Labels) != l || len(s.Targets.Deltas) != l {
			return nil, nil, fmt.Errorf("detection: RPNLoss: image %d: %d labels and %d deltas, want L = %d", img, len(s.Targets.Labels), len(s.Targets.Deltas), l)
		}
		for _, set := range [][]int{s.Pos, s.Neg} {
			for _, i := range set {
				if i < 0 || i >= l {
					return nil, nil, fmt.Errorf("detection: RPNLoss: image %d: sampled anchor %d out of [0, %d)", img, i, l)
				}
				p, k := i/a, i%a
				clsIdx = append(clsIdx, (img*a+k)*hw+p)
				labels = append(labels, float32(max(s.Targets.Labels[i], 0)))
			}
		}
		for _, i := range s.Pos {
			p, k := i/a, i%a
			for j := 0; j < 4; j++ {
				boxIdx = append(boxIdx, (img*4*a+4*k+j)*hw+p)
				targets = append(targets, s.Targets.Deltas[i][j])
			}
		}
	}
	if len(clsIdx) == 0 {
		return nil, nil, fmt.Errorf("detection: RPNLoss: no anchor sampled in the batch")
	}
	if objLoss, err = BCEWithLogitsLoss(objectness, clsIdx, labels); err != nil {
		return nil, nil, fmt.Errorf("detection: RPNLoss: %w", err)
	}
	if boxLoss, err = SmoothL1Loss(deltas, boxIdx, targets, RPNBoxBeta, float32(len(clsIdx))); err != nil {
		return nil, nil, fmt.Errorf("detection: RPNLoss: %w", err)
	}
	return objLoss, boxLoss, nil
}

// FastRCNNLoss returns torchvision's box-head losses (fastrcnn_loss): cls,
// the softmax cross-entropy of classLogits averaged over all K RoIs, and
// boxReg, the smooth-L1 loss (beta BoxHeadBeta) of the class-specific deltas
// of the foreground RoIs (the 4 columns of their ground-truth class),
// summed and divided by K.
//
// classLogits is [K, NC] and boxRegression [K, 4*NC] (class c's deltas in
// columns 4c..4c+3); batch holds the sampled targets of each image
// (SampleProposals) in the order of the RoI rows, K in all. Labels must be
// in [0, NC). Both results are float32 scalar nodes, differentiable w.r.t.
// classLogits and boxRegression. It returns an error on shape mismatches or
// labels out of range.
func FastRCNNLoss(classLogits, boxRegression *G.Node, batch []ProposalTargets) (clsLoss, boxLoss *G.Node, err error) {
	cs, bs := classLogits.Shape(), boxRegression.Shape()
	if len(cs) != 2 || len(bs) != 2 || cs[0] != bs[0] || bs[1] != 4*cs[1] {
		return nil, nil, fmt.Errorf("detection: FastRCNNLoss: class logits %v and box regression %v, want [K, NC] and [K, 4*NC]", cs, bs)
	}
	k, nc := cs[0], cs[1]
	labels := make([]int, 0, k)
	var boxIdx []int
	var targets []float32
	for img, t := range batch {
		if len(t.Labels) != len(t.Deltas) {
			return nil, nil, fmt.Errorf("detection: FastRCNNLoss: image %d: %d labels and %d deltas", img, len(t.Labels), len(t.Deltas))
		}
		for i, l := range t.Labels {
			if l < 0 || l >= nc {
				return nil, nil, fmt.Errorf("detection: FastRCNNLoss: image %d: RoI %d has label %d, want in [0, %d)", img, i, l, nc)
			}
			row := len(labels)
			labels = append(labels, l)
			if l == LabelBackground || row >= k {
				continue
			}
			for j := 0; j < 4; j++ {
				boxIdx = append(boxIdx, row*4*nc+4*l+j)
				targets = append(targets, t.Deltas[i][j])
			}
		}
	}
	if len(labels) != k {
		return nil, nil, fmt.Errorf("detection: FastRCNNLoss: %d sampled RoIs in the targets but %d rows of logits", len(labels), k)
	}
	if clsLoss, err = CrossEntropyLoss(classLogits, labels); err != nil {
		return nil, nil, fmt.Errorf("detection: FastRCNNLoss: %w", err)
	}
	if boxLoss, err = SmoothL1Loss(boxRegression, boxIdx, targets, BoxHeadBeta, float32(k)); err != nil {
		return nil, nil, fmt.Errorf("detection: FastRCNNLoss: %w", err)
	}
	return clsLoss, boxLoss, nil
}
