package detection

import (
	"fmt"
	"math"
	"math/rand"
	"slices"

	"resdet/box"
)

// This file holds the training targets of both stages in plain Go:
// matching anchors and proposals to ground truth, balanced sampling, and
// regression targets, as torchvision 0.14's
// RegionProposalNetwork.assign_targets_to_anchors and RoIHeads
// add_gt_proposals / assign_targets_to_proposals / subsample.

// Training labels of anchors and proposals.
const (
	// LabelIgnore marks an anchor or proposal left out of the loss
	// (torchvision's -1).
	LabelIgnore = -1
	// LabelBackground marks a negative anchor or a background proposal.
	LabelBackground = 0
	// LabelObject marks a positive anchor (the RPN is class-agnostic).
	LabelObject = 1
)

// TargetOptions selects, where the original Faster R-CNN code
// (py-faster-rcnn) and torchvision differ, which one the training targets
// follow. The zero value is torchvision's behaviour.
type TargetOptions struct {
	// IgnoreCrossBoundaryAnchors leaves the anchors that are not inside the
	// image out of the RPN targets, as the paper and py-faster-rcnn's
	// anchor_target_layer (allowed_border 0): they take no part in the
	// matching (so a ground-truth box's best anchors are its best inside
	// anchors) and are labelled LabelIgnore. An anchor is inside when
	// X1 >= 0, Y1 >= 0, X2 <= W and Y2 <= H; py-faster-rcnn's x2 < W on
	// its inclusive (+1) boxes is X2 <= W in this package's continuous
	// convention. False (torchvision): all anchors are matched and sampled.
	IgnoreCrossBoundaryAnchors bool
	// BGLowThresh: proposals whose best IoU is below it are ignored
	// instead of background, so background is [BGLowThresh, BGIoUThresh)
	// (0.1 in the original code). 0 (torchvision): background is
	// [0, BGIoUThresh).
	BGLowThresh float32
}

// PaperTargetOptions returns the original code's choices: cross-boundary
// anchors ignored, background proposals in [0.1, 0.5).
func PaperTargetOptions() TargetOptions {
	return TargetOptions{IgnoreCrossBoundaryAnchors: true, BGLowThresh: 0.1}
}

// AnchorTargets are the RPN training targets of one image's L anchors, in
// anchor order.
type AnchorTargets struct {
	// Labels[i] is LabelObject, LabelBackground or LabelIgnore
	// (torchvision's labels 1.0, 0.0, -1.0).
	Labels []int
	// Matches[i] is the ground-truth box anchor i was matched to, or a
	// box.Match sentinel (the matcher's output, torchvision's
	// matched_idxs). Anchors ignored as cross-boundary get
	// box.BetweenThresholds. All BelowLowThreshold without ground truth.
	Matches []box.Match
	// Deltas[i] encodes ground-truth box max(Matches[i], 0) relative to
	// anchor i with the RPN box coder (torchvision's regression targets,
	// which also fill non-positive anchors). Zero without ground truth
	// (torchvision encodes a zero box there, giving -Inf, never used).
	Deltas []box.Delta
}

// AssignAnchorTargets matches one image's anchors (length L, anchor order)
// to its ground-truth boxes gt (none is valid: all anchors negative) with
// the RPN matcher: IoU >= FGIoUThresh positive, < BGIoUThresh negative, in
// between ignored, and each ground-truth box's best anchors (all of them on
// ties) positive. img is the resized image size before padding; it is used
// only with o.IgnoreCrossBoundaryAnchors. It returns an error naming the
// entry when a ground-truth box is not finite or has no positive width or
// height, or when there are no anchors.
func (c RPNConfig) AssignAnchorTargets(anchors, gt []box.Box, img Size, o TargetOptions) (AnchorTargets, error) {
	if len(anchors) == 0 {
		return AnchorTargets{}, fmt.Errorf("detection: anchor targets: no anchors")
	}
	if err := checkTargetGT("anchor targets", gt); err != nil {
		return AnchorTargets{}, err
	}
	n := len(anchors)
	t := AnchorTargets{Labels: make([]int, n), Matches: make([]box.Match, n), Deltas: make([]box.Delta, n)}
	if len(gt) == 0 {
		for i := range t.Matches {
			t.Matches[i] = box.BelowLowThreshold
		}
		return t, nil
	}
	// inside lists the anchors taking part in the matching.
	var inside []int
	cand := anchors
	if o.IgnoreCrossBoundaryAnchors {
		w, h := float32(img.W), float32(img.H)
		cand = nil
		for i, a := range anchors {
			if a.X1 >= 0 && a.Y1 >= 0 && a.X2 <= w && a.Y2 <= h {
				inside = append(inside, i)
				cand = append(cand, a)
			}
		}
		for i := range t.Matches {
			t.Matches[i] = box.BetweenThresholds
		}
	}
	var matches []box.Match
	if len(cand) > 0 {
		var err error
		matches, err = c.Matcher().Match(box.IoUMatrix(gt, cand))
		if err != nil {
			return AnchorTargets{}, fmt.Errorf("detection: anchor targets: %w", err)
		}
	}
	if inside == nil {
		copy(t.Matches, matches)
	} else {
		for j, i := range inside {
			t.Matches[i] = matches[j]
		}
	}
	coder := c.BoxCoder()
	for i, m := range t.Matches {
		t.Labels[i] = targetLabel(m, LabelObject)
		t.Deltas[i] = coder.EncodeOne(gt[max(int(m), 0)], anchors[i])
	}
	return t, nil
}

// targetLabel maps a match to a training label: fg for a match, background
// below the low threshold, ignore between the thresholds.
func targetLabel(m box.Match, fg int) int {
	switch {
	case m >= 0:
		return fg
	case m == box.BelowLowThreshold:
		return LabelBackground
	default:
		return LabelIgnore
	}
}

// SampleAnchors draws the anchors of one image that enter the RPN loss with
// the RPN sampler (BatchSizePerImage, at most PositiveFraction positive,
// uniformly without replacement with r). It returns the positive and the
// negative anchor indices, each in increasing order (torchvision keeps
// masks, hence index order).
func (c RPNConfig) SampleAnchors(labels []int, r *rand.Rand) (pos, neg []int) {
	pos, neg = c.Sampler().Sample(labels, r)
	slices.Sort(pos)
	slices.Sort(neg)
	return pos, neg
}

// ProposalTargets are the second-stage training targets of one image's
// RoIs: its proposals followed by its ground-truth boxes (torchvision's
// add_gt_proposals), or a sampled subset of them.
type ProposalTargets struct {
	// RoIs are the boxes whose features the box head classifies.
	RoIs []box.Box
	// Labels[i] is the class of the matched ground-truth box (>= 1),
	// LabelBackground, or LabelIgnore (only with TargetOptions.BGLowThresh
	// or a BGIoUThresh below FGIoUThresh; never after sampling).
	Labels []int
	// Matches[i] is the matcher's output for RoI i (ground-truth index or
	// a box.Match sentinel); all BelowLowThreshold without ground truth.
	Matches []box.Match
	// Deltas[i] encodes ground-truth box max(Matches[i], 0) relative to
	// RoIs[i] with the box-head coder, weights (10, 10, 5, 5)
	// (torchvision's regression targets, also filled for background RoIs).
	// Zero without ground truth.
	Deltas []box.Delta
}

// Len returns the number of RoIs.
func (t ProposalTargets) Len() int { return len(t.RoIs) }

// AssignProposalTargets appends the ground-truth boxes gt to one image's
// proposals and matches every resulting RoI with the box-head matcher:
// IoU >= FGIoUThresh foreground with the class gtLabels[g] of its box,
// below BGIoUThresh background (and below o.BGLowThresh ignored). An image
// without ground truth gives all-background targets. It returns an error
// naming the entry for a ground-truth box that is not finite or has no
// positive width or height, a label below 1, or mismatched lengths.
func (c RoIHeadsConfig) AssignProposalTargets(proposals, gt []box.Box, gtLabels []int, o TargetOptions) (ProposalTargets, error) {
	if len(gt) != len(gtLabels) {
		return ProposalTargets{}, fmt.Errorf("detection: proposal targets: %d ground-truth boxes but %d labels", len(gt), len(gtLabels))
	}
	if err := checkTargetGT("proposal targets", gt); err != nil {
		return ProposalTargets{}, err
	}
	for g, l := range gtLabels {
		if l < 1 {
			return ProposalTargets{}, fmt.Errorf("detection: proposal targets: ground-truth box %d has label %d, want >= 1 (0 is the background)", g, l)
		}
	}
	rois := make([]box.Box, 0, len(proposals)+len(gt))
	rois = append(append(rois, proposals...), gt...)
	n := len(rois)
	t := ProposalTargets{RoIs: rois, Labels: make([]int, n), Matches: make([]box.Match, n), Deltas: make([]box.Delta, n)}
	if len(gt) == 0 {
		for i := range t.Matches {
			t.Matches[i] = box.BelowLowThreshold
		}
		return t, nil
	}
	iou := box.IoUMatrix(gt, rois)
	matches, err := c.Matcher().Match(iou)
	if err != nil {
		return ProposalTargets{}, fmt.Errorf("detection: proposal targets: %w", err)
	}
	t.Matches = matches
	coder := c.BoxCoder()
	for i, m := range matches {
		g := max(int(m), 0)
		t.Labels[i] = targetLabel(m, gtLabels[g])
		if o.BGLowThresh > 0 && m == box.BelowLowThreshold {
			best := iou[0][i]
			for _, row := range iou[1:] {
				best = max(best, row[i])
			}
			if best < o.BGLowThresh {
				t.Labels[i] = LabelIgnore
			}
		}
		t.Deltas[i] = coder.EncodeOne(gt[g], rois[i])
	}
	return t, nil
}

// SampleProposals draws the RoIs of one image that enter the box-head loss
// with the RoI sampler (BatchSizePerImage, at most PositiveFraction
// foreground, uniformly without replacement with r) and returns them with
// their targets, in increasing index order as torchvision's subsample.
func (c RoIHeadsConfig) SampleProposals(t ProposalTargets, r *rand.Rand) ProposalTargets {
	pos, neg := c.Sampler().Sample(t.Labels, r)
	idx := append(pos, neg...)
	slices.Sort(idx)
	return t.Subset(idx)
}

// Subset returns the targets of the RoIs idx, in that order.
func (t ProposalTargets) Subset(idx []int) ProposalTargets {
	s := ProposalTargets{
		RoIs:    make([]box.Box, len(idx)),
		Labels:  make([]int, len(idx)),
		Matches: make([]box.Match, len(idx)),
		Deltas:  make([]box.Delta, len(idx)),
	}
	for k, i := range idx {
		s.RoIs[k], s.Labels[k], s.Matches[k], s.Deltas[k] = t.RoIs[i], t.Labels[i], t.Matches[i], t.Deltas[i]
	}
	return s
}

// checkTargetGT returns an error naming the first ground-truth box with a
// non-finite coordinate or without a positive width and height (torchvision
// raises a ValueError for those).
func checkTargetGT(what string, gt []box.Box) error {
	for g, b := range gt {
		for _, v := range [4]float32{b.X1, b.Y1, b.X2, b.Y2} {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("detection: %s: ground-truth box %d %v is not finite", what, g, b)
			}
		}
		if !(b.X2 > b.X1 && b.Y2 > b.Y1) {
			return fmt.Errorf("detection: %s: ground-truth box %d %v has no positive width and height", what, g, b)
		}
	}
	return nil
}

// SampleRPNBatch computes the RPN targets of a batch and draws its anchors:
// for each image n in order, AssignAnchorTargets(anchors, gt[n], imgs[n],
// o) then SampleAnchors with r (so r is consumed image by image, positives
// before negatives: the same r state gives the same batch). anchors are
// shared by the images of a padded batch. It returns one RPNSample per
// image for RPNLoss, or an error naming the image.
func (c RPNConfig) SampleRPNBatch(anchors []box.Box, gt [][]box.Box, imgs []Size, o TargetOptions, r *rand.Rand) ([]RPNSample, error) {
	if len(gt) != len(imgs) {
		return nil, fmt.Errorf("detection: RPN batch: %d ground-truth lists for %d images", len(gt), len(imgs))
	}
	out := make([]RPNSample, len(gt))
	for n := range gt {
		t, err := c.AssignAnchorTargets(anchors, gt[n], imgs[n], o)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", n, err)
		}
		pos, neg := c.SampleAnchors(t.Labels, r)
		out[n] = RPNSample{Targets: t, Pos: pos, Neg: neg}
	}
	return out, nil
}

// SelectTrainingSamples is torchvision's RoIHeads.select_training_samples:
// for each image n in order, AssignProposalTargets(proposals[n], gt[n],
// gtLabels[n], o) then SampleProposals with r. It returns the sampled
// targets of each image, for FastRCNNLoss and (through RoIs) the RoI
// tensor of the box head, or an error naming the image.
func (c RoIHeadsConfig) SelectTrainingSamples(proposals, gt [][]box.Box, gtLabels [][]int, o TargetOptions, r *rand.Rand) ([]ProposalTargets, error) {
	if len(proposals) != len(gt) || len(gt) != len(gtLabels) {
		return nil, fmt.Errorf("detection: RoI batch: %d proposal lists, %d ground-truth lists, %d label lists", len(proposals), len(gt), len(gtLabels))
	}
	out := make([]ProposalTargets, len(gt))
	for n := range gt {
		t, err := c.AssignProposalTargets(proposals[n], gt[n], gtLabels[n], o)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", n, err)
		}
		out[n] = c.SampleProposals(t, r)
	}
	return out, nil
}

// PadSamples returns each image's sampled targets padded to rows entries:
// the sampled RoIs repeated cyclically, as RoIRows repeats them, labelled
// LabelIgnore, so that a graph with a fixed number of rows per image runs
// on real boxes while the losses leave the padding out. It returns an error
// naming the image if one has no sampled RoI or more than rows.
func PadSamples(samples []ProposalTargets, rows int) ([]ProposalTargets, error) {
	out := make([]ProposalTargets, len(samples))
	for img, s := range samples {
		if s.Len() == 0 {
			return nil, fmt.Errorf("image %d has no RoI", img)
		}
		if s.Len() > rows {
			return nil, fmt.Errorf("image %d has %d sampled RoIs, more than the %d rows", img, s.Len(), rows)
		}
		idx := make([]int, rows)
		for j := range idx {
			idx[j] = j % s.Len()
		}
		p := s.Subset(idx)
		for j := s.Len(); j < rows; j++ {
			p.Labels[j] = LabelIgnore
		}
		out[img] = p
	}
	return out, nil
}
