package box

import (
	"math/rand"
	"testing"
)

func TestIoU(t *testing.T) {
	tests := []struct {
		name string
		a, b Box
		want float32
	}{
		{name: "identical", a: Box{0, 0, 10, 10}, b: Box{0, 0, 10, 10}, want: 1},
		{name: "half overlap", a: Box{0, 0, 10, 10}, b: Box{5, 0, 15, 10}, want: 50.0 / 150},
		{name: "touching edges", a: Box{0, 0, 10, 10}, b: Box{10, 0, 20, 10}, want: 0},
		{name: "disjoint", a: Box{0, 0, 1, 1}, b: Box{5, 5, 6, 6}, want: 0},
		{name: "contained", a: Box{0, 0, 10, 10}, b: Box{2, 2, 4, 4}, want: 4.0 / 100},
		{name: "both empty", a: Box{1, 1, 1, 1}, b: Box{1, 1, 1, 1}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.IoU(tt.b); abs(got-tt.want) > 1e-6 {
				t.Errorf("IoU(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestIoUProperties(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	rnd := func() Box {
		x, y := r.Float32()*50, r.Float32()*50
		return Box{x, y, x + r.Float32()*30, y + r.Float32()*30}
	}
	for i := 0; i < 1000; i++ {
		a, b := rnd(), rnd()
		ab, ba := a.IoU(b), b.IoU(a)
		if ab != ba {
			t.Fatalf("IoU not symmetric: %v %v: %v vs %v", a, b, ab, ba)
		}
		if ab < 0 || ab > 1 {
			t.Fatalf("IoU out of range: %v", ab)
		}
		if !a.Empty() && abs(a.IoU(a)-1) > 1e-6 {
			t.Fatalf("IoU(a, a) = %v for %v", a.IoU(a), a)
		}
	}
}

func TestTransforms(t *testing.T) {
	b := Box{1, 2, 5, 10}
	if got := b.FlipX(20).FlipX(20); got != b {
		t.Errorf("double flip = %v, want %v", got, b)
	}
	if got, want := b.FlipX(20), (Box{15, 2, 19, 10}); got != want {
		t.Errorf("FlipX = %v, want %v", got, want)
	}
	if got, want := b.Clip(4, 8), (Box{1, 2, 4, 8}); got != want {
		t.Errorf("Clip = %v, want %v", got, want)
	}
	if got, want := FromXYWH(1, 2, 4, 8), b; got != want {
		t.Errorf("FromXYWH = %v, want %v", got, want)
	}
	if got, want := b.XYWH(), [4]float32{1, 2, 4, 8}; got != want {
		t.Errorf("XYWH = %v, want %v", got, want)
	}
	if got, want := b.Scale(2, 0.5), (Box{2, 1, 10, 5}); got != want {
		t.Errorf("Scale = %v, want %v", got, want)
	}
}

func abs(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
