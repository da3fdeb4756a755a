package box

import "math/rand"

// Sampler draws a fixed-size, class-balanced subset of labelled predictions
// for training, as torchvision's det_utils.BalancedPositiveNegativeSampler.
type Sampler struct {
	// BatchSizePerImage is the number of predictions to draw per image
	// (256 for the RPN, 512 in torchvision's RoI heads; the paper uses 128).
	BatchSizePerImage int
	// PositiveFraction is the largest fraction of positives (0.5 for the
	// RPN, 0.25 for the RoI heads).
	PositiveFraction float32
}

// Sample draws from labels (>= 1 positive, 0 negative, < 0 ignored) at most
// int(BatchSizePerImage*PositiveFraction) positives and fills the rest of
// the batch with negatives, each drawn uniformly without replacement with r.
// When there are too few positives, more negatives are taken; when there are
// too few of both, the batch is smaller. pos and neg are indices into labels,
// in random order.
func (s Sampler) Sample(labels []int, r *rand.Rand) (pos, neg []int) {
	var positive, negative []int
	for i, l := range labels {
		switch {
		case l >= 1:
			positive = append(positive, i)
		case l == 0:
			negative = append(negative, i)
		}
	}
	numPos := min(int(float32(s.BatchSizePerImage)*s.PositiveFraction), len(positive))
	numNeg := min(s.BatchSizePerImage-numPos, len(negative))
	return pick(positive, numPos, r), pick(negative, max(numNeg, 0), r)
}

// pick returns k elements of idx drawn uniformly without replacement.
func pick(idx []int, k int, r *rand.Rand) []int {
	out := make([]int, k)
	for i, p := range r.Perm(len(idx))[:k] {
		out[i] = idx[p]
	}
	return out
}
