package detection

import (
	"fmt"
	"math"
	"slices"

	"resdet/box"
)

// FilterProposals turns one image's RPN predictions on one feature level
// into proposals, as torchvision's RegionProposalNetwork (decode, then
// filter_proposals): the PreNMSTopN anchors with the highest objectness are
// decoded with the RPN box coder, clipped to the image, boxes smaller than
// MinSize dropped, then those with probability sigmoid(logit) below
// ScoreThresh, then NMS at NMSThresh, and at most PostNMSTopN are kept.
//
// anchors, logits and deltas have length L, in anchor order (see
// FlattenRPN); img is the size of the resized image before padding. It
// returns the proposals and their objectness probabilities, by decreasing
// probability. It panics if the lengths differ.
//
// With LogitScores the scores are the logits and the rules are
// Detectron2's (see RPNConfig.LogitScores).
//
// Ties in objectness are broken by the lower anchor index; torch.topk
// leaves their order unspecified.
func (c RPNConfig) FilterProposals(anchors []box.Box, logits []float32, deltas []box.Delta, img Size, training bool) ([]box.Box, []float32) {
	if len(anchors) != len(logits) || len(anchors) != len(deltas) {
		panic(fmt.Sprintf("detection.FilterProposals: %d anchors, %d logits, %d deltas", len(anchors), len(logits), len(deltas)))
	}
	preN, postN := c.TopN(training)
	order := topN(logits, preN)
	coder := c.BoxCoder()
	w, h := float32(img.W), float32(img.H)
	boxes := make([]box.Box, 0, len(order))
	scores := make([]float32, 0, len(order))
	for _, i := range order {
		if b, s, ok := c.candidate(coder, deltas[i], anchors[i], logits[i], w, h); ok {
			boxes = append(boxes, b)
			scores = append(scores, s)
		}
	}
	keep := box.NMS(boxes, scores, c.NMSThresh)
	if len(keep) > postN {
		keep = keep[:postN]
	}
	outB := make([]box.Box, len(keep))
	outS := make([]float32, len(keep))
	for k, i := range keep {
		outB[k], outS[k] = boxes[i], scores[i]
	}
	return outB, outS
}

// candidate decodes one of the top anchors into a proposal, clipped to the
// image of w x h pixels, and returns it with its score, or ok false when
// the rules drop it: torchvision's (side below MinSize, probability
// sigmoid(logit) below ScoreThresh) or, with LogitScores, Detectron2's
// (non-finite box or logit, a side not > 0; the score is the logit).
func (c RPNConfig) candidate(coder box.BoxCoder, d box.Delta, a box.Box, logit, w, h float32) (box.Box, float32, bool) {
	b := coder.DecodeOne(d, a)
	if c.LogitScores {
		if !finite(logit) || !finite(b.X1) || !finite(b.Y1) || !finite(b.X2) || !finite(b.Y2) {
			return b, 0, false
		}
		b = b.Clip(w, h)
		return b, logit, b.X2-b.X1 > 0 && b.Y2-b.Y1 > 0
	}
	b = b.Clip(w, h)
	if b.X2-b.X1 < c.MinSize || b.Y2-b.Y1 < c.MinSize {
		return b, 0, false
	}
	s := sigmoid(logit)
	return b, s, s >= c.ScoreThresh
}

// topN returns the indices of the n largest values (all if n >= len),
// largest first (NaN above all, as torch.topk), ties by lower index.
func topN(v []float32, n int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return box.CompareScores(v[a], v[b], a, b) })
	if n < len(idx) {
		idx = idx[:n]
	}
	return idx
}

func finite(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }
