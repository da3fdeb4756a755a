package detection

import (
	"fmt"

	G "gorgonia.org/gorgonia"

	"resdet/nn"
	"resdet/ops"
)

// This file builds the training losses of both stages from the head outputs
// and the plain-Go targets (targets.go), as torchvision 0.14's
// RegionProposalNetwork.compute_loss and roi_heads.fastrcnn_loss. The loss
// nodes are built once per graph; Set points them at each step's samples.

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

// RPNLoss holds torchvision's two RPN losses of a batch as float32 scalar
// nodes, differentiable w.r.t. the head outputs: Objectness, the binary
// cross-entropy with logits averaged over the sampled anchors of all
// images, and BoxReg, the smooth-L1 loss (beta RPNBoxBeta) of the deltas of
// the positive sampled anchors, summed and divided by the number of sampled
// anchors of all images.
type RPNLoss struct {
	Objectness, BoxReg *G.Node
	n, a               int
	hw                 []int // Hi*Wi of each level
}

// NewRPNLoss builds the RPN losses on objectness [N, A, Hi, Wi] and deltas
// [N, 4A, Hi, Wi], the RPN head's outputs (deltas of anchor a in channels
// 4a..4a+3, anchor order as in FlattenRPN), and points them at batch (see
// Set). A nil batch selects a placeholder until the first Set (a training
// graph is built before its first batch). It returns an error on shape
// mismatches or as Set.
func NewRPNLoss(objectness, deltas *G.Node, batch []RPNSample) (*RPNLoss, error) {
	return NewRPNLossLevels([]*G.Node{objectness}, []*G.Node{deltas}, batch)
}

// NewRPNLossLevels builds the RPN losses over several feature levels:
// objectness[l] [N, A, Hl, Wl] and deltas[l] [N, 4A, Hl, Wl] are the head's
// outputs on level l; the anchors of the batch's targets are those of every
// level concatenated, finest first (AnchorGenerator.MultiLevelAnchors). The
// levels' outputs are flattened per image and concatenated ([N, A*ΣHlWl],
// [N, 4A*ΣHlWl]), so that the mean and the normaliser run over the sampled
// anchors of all levels, as torchvision's concat_box_prediction_layers.
// See NewRPNLoss.
func NewRPNLossLevels(objectness, deltas []*G.Node, batch []RPNSample) (*RPNLoss, error) {
	if len(objectness) == 0 || len(objectness) != len(deltas) {
		return nil, fmt.Errorf("detection: RPNLoss: %d objectness and %d delta maps, want the same number >= 1", len(objectness), len(deltas))
	}
	l := &RPNLoss{}
	var objs, dlts []*G.Node
	for i := range objectness {
		osh, ds := objectness[i].Shape(), deltas[i].Shape()
		if len(osh) != 4 || len(ds) != 4 || osh[0] != ds[0] || ds[1] != 4*osh[1] || osh[2] != ds[2] || osh[3] != ds[3] ||
			(i > 0 && (osh[0] != l.n || osh[1] != l.a)) {
			return nil, fmt.Errorf("detection: RPNLoss: level %d: objectness %v and deltas %v, want [N, A, Hi, Wi] and [N, 4A, Hi, Wi]", i, osh, ds)
		}
		l.n, l.a = osh[0], osh[1]
		l.hw = append(l.hw, osh[2]*osh[3])
		if len(objectness) == 1 {
			objs, dlts = objectness, deltas
			break
		}
		o, err := nn.Reshape(objectness[i], osh[0], osh[1]*osh[2]*osh[3])
		if err != nil {
			return nil, fmt.Errorf("detection: RPNLoss: level %d: %w", i, err)
		}
		d, err := nn.Reshape(deltas[i], ds[0], ds[1]*ds[2]*ds[3])
		if err != nil {
			return nil, fmt.Errorf("detection: RPNLoss: level %d: %w", i, err)
		}
		objs, dlts = append(objs, o), append(dlts, d)
	}
	obj, dlt := objs[0], dlts[0]
	if len(objs) > 1 {
		var err error
		if obj, err = G.Concat(1, objs...); err != nil {
			return nil, fmt.Errorf("detection: RPNLoss: concat objectness: %w", err)
		}
		if dlt, err = G.Concat(1, dlts...); err != nil {
			return nil, fmt.Errorf("detection: RPNLoss: concat deltas: %w", err)
		}
	}
	var err error
	if l.Objectness, err = ops.BCEWithLogitsLoss(obj, []int{0}, []float32{0}); err != nil {
		return nil, fmt.Errorf("detection: RPNLoss: %w", err)
	}
	if l.BoxReg, err = ops.SmoothL1Loss(dlt, nil, nil, RPNBoxBeta, 1); err != nil {
		return nil, fmt.Errorf("detection: RPNLoss: %w", err)
	}
	if batch == nil {
		return l, nil
	}
	if err := l.Set(batch); err != nil {
		return nil, err
	}
	return l, nil
}

// Set points the losses at a batch: batch[n] belongs to image n, its
// targets of length L = Hi*Wi*A. It returns an error, leaving the losses
// unchanged, on a length mismatch, an anchor index out of range, or when no
// anchor is sampled in the batch.
func (l *RPNLoss) Set(batch []RPNSample) error {
	if len(batch) != l.n {
		return fmt.Errorf("detection: RPNLoss: %d samples for a batch of %d images", len(batch), l.n)
	}
	a := l.a
	total := 0
	for _, hw := range l.hw {
		total += hw
	}
	n := a * total
	// level returns the level of anchor i, its index within the level and
	// the level's cell offset.
	level := func(i int) (hw, j, off int) {
		for _, hw := range l.hw {
			if i < a*hw {
				return hw, i, off
			}
			i -= a * hw
			off += hw
		}
		panic("unreachable")
	}
	var clsIdx, boxIdx []int
	var labels, targets []float32
	for img, s := range batch {
		if len(s.Targets.Labels) != n || len(s.Targets.Deltas) != n {
			return fmt.Errorf("detection: RPNLoss: image %d: %d labels and %d deltas, want L = %d", img, len(s.Targets.Labels), len(s.Targets.Deltas), n)
		}
		for _, set := range [][]int{s.Pos, s.Neg} {
			for _, i := range set {
				if i < 0 || i >= n {
					return fmt.Errorf("detection: RPNLoss: image %d: sampled anchor %d out of [0, %d)", img, i, n)
				}
				hw, j, off := level(i)
				p, k := j/a, j%a
				clsIdx = append(clsIdx, img*a*total+a*off+k*hw+p)
				labels = append(labels, float32(max(s.Targets.Labels[i], 0)))
			}
		}
		for _, i := range s.Pos {
			hw, jj, off := level(i)
			p, k := jj/a, jj%a
			for j := 0; j < 4; j++ {
				boxIdx = append(boxIdx, img*4*a*total+4*a*off+(4*k+j)*hw+p)
				targets = append(targets, s.Targets.Deltas[i][j])
			}
		}
	}
	if len(clsIdx) == 0 {
		return fmt.Errorf("detection: RPNLoss: no anchor sampled in the batch")
	}
	if err := ops.Reselect(l.Objectness, clsIdx, labels, 0); err != nil {
		return fmt.Errorf("detection: RPNLoss: %w", err)
	}
	if err := ops.Reselect(l.BoxReg, boxIdx, targets, float32(len(clsIdx))); err != nil {
		return fmt.Errorf("detection: RPNLoss: %w", err)
	}
	return nil
}

// FastRCNNLoss holds torchvision's box-head losses (fastrcnn_loss) as
// float32 scalar nodes, differentiable w.r.t. the predictor's outputs:
// Classifier, the softmax cross-entropy of the class logits averaged over
// the sampled RoIs, and BoxReg, the smooth-L1 loss (beta BoxHeadBeta) of the
// class-specific deltas of the foreground RoIs (the 4 columns of their
// ground-truth class), summed and divided by the number of sampled RoIs.
// Rows labelled LabelIgnore (a training graph's padding rows) are left out
// of both, and of the count.
type FastRCNNLoss struct {
	Classifier, BoxReg *G.Node
	k, nc              int
}

// NewFastRCNNLoss builds the box-head losses on classLogits [K, NC] and
// boxRegression [K, 4*NC] (class c's deltas in columns 4c..4c+3) and points
// them at batch (see Set); a nil batch selects a placeholder until the
// first Set. It returns an error on shape mismatches or as Set.
func NewFastRCNNLoss(classLogits, boxRegression *G.Node, batch []ProposalTargets) (*FastRCNNLoss, error) {
	cs, bs := classLogits.Shape(), boxRegression.Shape()
	if len(cs) != 2 || len(bs) != 2 || cs[0] != bs[0] || bs[1] != 4*cs[1] {
		return nil, fmt.Errorf("detection: FastRCNNLoss: class logits %v and box regression %v, want [K, NC] and [K, 4*NC]", cs, bs)
	}
	l := &FastRCNNLoss{k: cs[0], nc: cs[1]}
	var err error
	if l.Classifier, err = ops.CrossEntropyLoss(classLogits, make([]int, l.k)); err != nil {
		return nil, fmt.Errorf("detection: FastRCNNLoss: %w", err)
	}
	if l.BoxReg, err = ops.SmoothL1Loss(boxRegression, nil, nil, BoxHeadBeta, 1); err != nil {
		return nil, fmt.Errorf("detection: FastRCNNLoss: %w", err)
	}
	if batch == nil {
		return l, nil
	}
	if err := l.Set(batch); err != nil {
		return nil, err
	}
	return l, nil
}

// Set points the losses at the sampled targets of each image
// (SampleProposals), in the order of the RoI rows, K in all. Labels must be
// in [0, NC) or LabelIgnore. It returns an error, leaving the losses
// unchanged, if the count is not K, a label is out of range or every row is
// ignored.
func (l *FastRCNNLoss) Set(batch []ProposalTargets) error {
	k, nc := l.k, l.nc
	labels := make([]int, 0, k)
	var boxIdx []int
	var targets []float32
	sampled := 0
	for img, t := range batch {
		if len(t.Labels) != len(t.Deltas) {
			return fmt.Errorf("detection: FastRCNNLoss: image %d: %d labels and %d deltas", img, len(t.Labels), len(t.Deltas))
		}
		for i, lb := range t.Labels {
			if (lb < 0 && lb != LabelIgnore) || lb >= nc {
				return fmt.Errorf("detection: FastRCNNLoss: image %d: RoI %d has label %d, want in [0, %d) or %d (ignored)", img, i, lb, nc, LabelIgnore)
			}
			row := len(labels)
			labels = append(labels, lb)
			if lb == LabelIgnore {
				continue
			}
			sampled++
			if lb == LabelBackground || row >= k {
				continue
			}
			for j := 0; j < 4; j++ {
				boxIdx = append(boxIdx, row*4*nc+4*lb+j)
				targets = append(targets, t.Deltas[i][j])
			}
		}
	}
	if len(labels) != k {
		return fmt.Errorf("detection: FastRCNNLoss: %d RoIs in the targets but %d rows of logits", len(labels), k)
	}
	if sampled == 0 {
		return fmt.Errorf("detection: FastRCNNLoss: every RoI is ignored")
	}
	if err := ops.Reselect(l.Classifier, labels, nil, 0); err != nil {
		return fmt.Errorf("detection: FastRCNNLoss: %w", err)
	}
	if err := ops.Reselect(l.BoxReg, boxIdx, targets, float32(sampled)); err != nil {
		return fmt.Errorf("detection: FastRCNNLoss: %w", err)
	}
	return nil
}
