package detection

import (
	"testing"

	"resdet/box"
)

func TestCellAnchors(t *testing.T) {
	tests := []struct {
		name string
		g    AnchorGenerator
		want []box.Box
	}{
		{
			// ratio-major: ratio 0.5 (sizes 128, 256, 512), then 1, then 2.
			name: "default",
			g:    DefaultAnchorGenerator(),
			want: []box.Box{
				{X1: -91, Y1: -45, X2: 91, Y2: 45}, {X1: -181, Y1: -91, X2: 181, Y2: 91}, {X1: -362, Y1: -181, X2: 362, Y2: 181},
				{X1: -64, Y1: -64, X2: 64, Y2: 64}, {X1: -128, Y1: -128, X2: 128, Y2: 128}, {X1: -256, Y1: -256, X2: 256, Y2: 256},
				{X1: -45, Y1: -91, X2: 45, Y2: 91}, {X1: -91, Y1: -181, X2: 91, Y2: 181}, {X1: -181, Y1: -362, X2: 181, Y2: 362},
			},
		},
		{
			// 5/2 = 2.5 rounds half to even: 2.
			name: "half to even",
			g:    AnchorGenerator{Sizes: []float32{5}, AspectRatios: []float32{1}},
			want: []box.Box{{X1: -2, Y1: -2, X2: 2, Y2: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.g.CellAnchors()
			if len(got) != len(tt.want) {
				t.Fatalf("got %d anchors, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("anchor %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestAnchorsLayout(t *testing.T) {
	g := DefaultAnchorGenerator()
	const h, w, s = 3, 5, 16
	all := g.Anchors(h, w, s, s)
	cell := g.CellAnchors()
	if len(all) != h*w*g.NumAnchors() {
		t.Fatalf("got %d anchors, want %d", len(all), h*w*g.NumAnchors())
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for a, c := range cell {
				got := all[(y*w+x)*len(cell)+a]
				sx, sy := float32(x*s), float32(y*s)
				want := box.Box{X1: c.X1 + sx, Y1: c.Y1 + sy, X2: c.X2 + sx, Y2: c.Y2 + sy}
				if got != want {
					t.Fatalf("cell (%d, %d) anchor %d = %v, want %v", y, x, a, got, want)
				}
			}
		}
	}
}

func TestAnchorsParity(t *testing.T) {
	for name, c := range fixtures.Load(t, "anchors.json") {
		t.Run(name, func(t *testing.T) {
			var sizes, ratios []float32
			var img, feat []int
			c.Scalar(t, "sizes", &sizes)
			c.Scalar(t, "ratios", &ratios)
			c.Scalar(t, "image", &img)
			c.Scalar(t, "feat", &feat)
			g := AnchorGenerator{Sizes: sizes, AspectRatios: ratios}
			got := g.Anchors(feat[0], feat[1], Stride(img[0], feat[0]), Stride(img[1], feat[1]))
			want := fixtureBoxes(t, c, "anchors")
			if len(got) != len(want) {
				t.Fatalf("got %d anchors, torchvision %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("anchor %d = %v, torchvision %v", i, got[i], want[i])
				}
			}
			t.Logf("%d anchors, all equal to torchvision's (bound: exact)", len(got))
		})
	}
}

func TestAnchorGeneratorValidate(t *testing.T) {
	tests := []struct {
		name string
		g    AnchorGenerator
		ok   bool
	}{
		{name: "default", g: DefaultAnchorGenerator(), ok: true},
		{name: "no sizes", g: AnchorGenerator{AspectRatios: []float32{1}}},
		{name: "zero ratio", g: AnchorGenerator{Sizes: []float32{32}, AspectRatios: []float32{0}}},
		{name: "negative size", g: AnchorGenerator{Sizes: []float32{-32}, AspectRatios: []float32{1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.g.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
