package optim

import (
	"fmt"
	"math"
	"sort"
)

// WarmupMultiStep is Detectron2's WarmupMultiStepLR with linear warm-up:
// the learning rate of iteration iter (counted from 0) is
//
//	BaseLR * warmup(iter) * Gamma^(number of Steps <= iter)
//
// where warmup(iter) = WarmupFactor*(1-a) + a with a = iter/WarmupIters for
// iter < WarmupIters, else 1. Arithmetic is in float64, as Python's.
type WarmupMultiStep struct {
	// BaseLR is the learning rate after warm-up and before the first step
	// (0.001 for the paper's VOC recipe at one image per batch; 0.02 for
	// Detectron2's COCO recipe at 16 images).
	BaseLR float64
	// Steps are the iterations, strictly increasing, from which the rate
	// is multiplied by Gamma once more (the paper's VOC recipe: 60000 of
	// 80000 iterations).
	Steps []int
	// Gamma is the factor applied at each step (0.1).
	Gamma float64
	// WarmupIters is the length of the linear warm-up (0: none).
	WarmupIters int
	// WarmupFactor is the rate's factor at iteration 0 (1/1000).
	WarmupFactor float64
}

// NewWarmupMultiStep returns a schedule with Detectron2's defaults: gamma
// 0.1, warm-up factor 1/1000 over warmupIters iterations.
func NewWarmupMultiStep(baseLR float64, steps []int, warmupIters int) WarmupMultiStep {
	return WarmupMultiStep{BaseLR: baseLR, Steps: steps, Gamma: 0.1, WarmupIters: warmupIters, WarmupFactor: 1.0 / 1000}
}

// Validate returns an error naming the field out of range.
func (s WarmupMultiStep) Validate() error {
	if !(s.BaseLR > 0) || math.IsInf(s.BaseLR, 0) {
		return fmt.Errorf("optim: WarmupMultiStep.BaseLR = %v, want > 0", s.BaseLR)
	}
	for i, st := range s.Steps {
		if st < 0 || (i > 0 && st <= s.Steps[i-1]) {
			return fmt.Errorf("optim: WarmupMultiStep.Steps = %v, want non-negative and strictly increasing (entry %d)", s.Steps, i)
		}
	}
	if !(s.Gamma > 0 && s.Gamma <= 1) {
		return fmt.Errorf("optim: WarmupMultiStep.Gamma = %v, want in (0, 1]", s.Gamma)
	}
	if s.WarmupIters < 0 {
		return fmt.Errorf("optim: WarmupMultiStep.WarmupIters = %d, want >= 0", s.WarmupIters)
	}
	if s.WarmupIters > 0 && !(s.WarmupFactor > 0 && s.WarmupFactor <= 1) {
		return fmt.Errorf("optim: WarmupMultiStep.WarmupFactor = %v, want in (0, 1]", s.WarmupFactor)
	}
	return nil
}

// LR returns the learning rate of iteration iter (>= 0).
func (s WarmupMultiStep) LR(iter int) float64 {
	f := 1.0
	if iter < s.WarmupIters {
		a := float64(iter) / float64(s.WarmupIters)
		f = s.WarmupFactor*(1-a) + a
	}
	n := sort.Search(len(s.Steps), func(i int) bool { return s.Steps[i] > iter }) // bisect_right
	return s.BaseLR * f * math.Pow(s.Gamma, float64(n))
}
