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
		b := coder.DecodeOne(deltas[i], anchors[i])
		if c.LogitScores {
			l := logits[i]
			if !finite(l) || !finite(b.X1) || !finite(b.Y1) || !finite(b.X2) || !finite(b.Y2) {
				continue
			}
			if b = b.Clip(w, h); !(b.X2-b.X1 > 0 && b.Y2-b.Y1 > 0) {
				continue
			}
			boxes = append(boxes, b)
			scores = append(scores, l)
			continue
		}
		b = b.Clip(w, h)
		if b.X2-b.X1 < c.MinSize || b.Y2-b.Y1 < c.MinSize {
			continue
		}
		s := sigmoid(logits[i])
		if !(s >= c.ScoreThresh) {
			continue
		}
		boxes = append(boxes, b)
		scores = append(scores, s)
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
