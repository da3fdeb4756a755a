package detection

import (
	"math"
	"testing"

	"resdet/box"
	"resdet/internal/testutil"
)

func TestPostprocessDetections(t *testing.T) {
	c := DefaultRoIHeadsConfig()
	props := []box.Box{{X1: 10, Y1: 10, X2: 50, Y2: 50}, {X1: 12, Y1: 10, X2: 52, Y2: 50}, {X1: 100, Y1: 100, X2: 140, Y2: 160}}
	// 3 classes: background, 1, 2. Proposal 0 and 1 overlap (IoU 0.9) and
	// both say class 1; proposal 2 says class 2 weakly.
	logits := []float32{
		0, 5, 0,
		0, 4, 0,
		2, -3, 0.5,
	}
	reg := make([]float32, 3*3*4)
	d := c.PostprocessDetections(logits, reg, props, 3, Size{W: 200, H: 150})
	probs := make([]float32, 3)
	softmax(probs, logits[6:9])
	want := Detections{
		Boxes:  []box.Box{props[0], props[1], {X1: 100, Y1: 100, X2: 140, Y2: 150}},
		Labels: []int{1, 2, 2},
	}
	// Class 1 of proposal 0 wins; proposal 1's class 1 is suppressed; its
	// class 2 (p ~ 0.0066) and proposal 0's class 2 fall below 0.05;
	// proposal 2's class 2 (p ~ 0.18) survives, clipped to the image.
	if d.Len() != 2 || d.Boxes[0] != want.Boxes[0] || d.Labels[0] != 1 || d.Boxes[1] != want.Boxes[2] || d.Labels[1] != 2 {
		t.Fatalf("detections = %+v", d)
	}
	if math.Abs(float64(d.Scores[1]-probs[2])) > 1e-7 {
		t.Errorf("score = %v, want %v", d.Scores[1], probs[2])
	}
}

func TestSoftmax(t *testing.T) {
	tests := []struct {
		name string
		x    []float32
		want []float64
	}{
		{name: "uniform", x: []float32{1, 1, 1, 1}, want: []float64{0.25, 0.25, 0.25, 0.25}},
		{name: "large logits do not overflow", x: []float32{1000, 1001}, want: []float64{1 / (1 + math.E), math.E / (1 + math.E)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make([]float32, len(tt.x))
			softmax(got, tt.x)
			for i := range got {
				if math.Abs(float64(got[i])-tt.want[i]) > 1e-6 {
					t.Fatalf("softmax(%v) = %v, want %v", tt.x, got, tt.want)
				}
			}
		})
	}
}

func TestPostprocessDetectionsParity(t *testing.T) {
	testPostprocessParity(t, fixtures.Load(t, "postprocess.json"))
}

func testPostprocessParity(t *testing.T, cases map[string]testutil.FixtureCase) {
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var img []int
			c.Scalar(t, "image", &img)
			logits, shape := c.F32(t, "class_logits")
			reg, _ := c.F32(t, "box_regression")
			props := fixtureBoxes(t, c, "proposals")
			d := DefaultRoIHeadsConfig().PostprocessDetections(logits, reg, props, shape[1], Size{W: img[1], H: img[0]})
			wantS, _ := c.F32(t, "scores")
			if len(wantS) < 10 {
				t.Fatalf("fixture has only %d detections", len(wantS))
			}
			compareDetections(t, d.Boxes, d.Scores, d.Labels, fixtureBoxes(t, c, "boxes"), wantS, c.Ints(t, "labels"))
		})
	}
}
