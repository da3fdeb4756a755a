package backbone

import (
	"math"
	"sort"
)

// Class is one entry of a top-k list.
type Class struct {
	ID    int     `json:"class_id"`
	Logit float32 `json:"logit"`
	Prob  float32 `json:"prob"` // softmax over all classes
}

// TopK returns the k classes with the largest logits, best first (ties: lower id first),
// with softmax probabilities computed in float64. k is clamped to len(logits).
func TopK(logits []float32, k int) []Class {
	if k > len(logits) {
		k = len(logits)
	}
	if k <= 0 {
		return nil
	}
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	out := make([]Class, k)
	for i := range out {
		id := idx[i]
		out[i] = Class{ID: id, Logit: logits[id], Prob: float32(math.Exp(float64(logits[id])-mx) / sum)}
	}
	return out
}
