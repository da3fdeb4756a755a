package optim

import (
	"math"
	"strings"
	"testing"
)

func TestWarmupMultiStepLR(t *testing.T) {
	// Detectron2's COCO schedule: base 0.02, warm-up 1000, steps 60k/80k.
	coco := NewWarmupMultiStep(0.02, []int{60000, 80000}, 1000)
	// The paper's VOC schedule: 0.001 for 60k, then 0.0001; no warm-up.
	voc := WarmupMultiStep{BaseLR: 0.001, Steps: []int{60000}, Gamma: 0.1}
	tests := []struct {
		name  string
		s     WarmupMultiStep
		iter  int
		want  float64
		exact bool
	}{
		{name: "coco_first", s: coco, iter: 0, want: 0.02 * 0.001},
		{name: "coco_mid_warmup", s: coco, iter: 500, want: 0.02 * (0.001*0.5 + 0.5)},
		{name: "coco_last_warmup", s: coco, iter: 999, want: 0.02 * (0.001*0.001 + 0.999)},
		{name: "coco_after_warmup", s: coco, iter: 1000, want: 0.02},
		{name: "coco_before_step", s: coco, iter: 59999, want: 0.02},
		{name: "coco_step1", s: coco, iter: 60000, want: 0.002},
		{name: "coco_step2", s: coco, iter: 80000, want: 0.0002},
		{name: "voc_start", s: voc, iter: 0, want: 0.001},
		{name: "voc_after", s: voc, iter: 79999, want: 0.0001},
		// A step inside the warm-up multiplies the warm-up rate.
		{name: "step_in_warmup", s: NewWarmupMultiStep(1, []int{2}, 4), iter: 2, want: 0.1 * (0.001*0.5 + 0.5)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.s.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := tc.s.LR(tc.iter); math.Abs(got-tc.want) > 1e-12*tc.want {
				t.Errorf("LR(%d) = %.17g, want %.17g", tc.iter, got, tc.want)
			}
		})
	}
}

func TestWarmupMultiStepValidate(t *testing.T) {
	tests := []struct {
		name string
		s    WarmupMultiStep
		want string
	}{
		{"base_lr", NewWarmupMultiStep(0, nil, 0), "BaseLR"},
		{"steps_order", NewWarmupMultiStep(0.1, []int{5, 5}, 0), "entry 1"},
		{"gamma", WarmupMultiStep{BaseLR: 0.1, Gamma: 0}, "Gamma"},
		{"warmup_factor", WarmupMultiStep{BaseLR: 0.1, Gamma: 0.1, WarmupIters: 10}, "WarmupFactor"},
		{"warmup_iters", WarmupMultiStep{BaseLR: 0.1, Gamma: 0.1, WarmupIters: -1}, "WarmupIters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
