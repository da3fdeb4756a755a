package imageio

import (
	"encoding/json"
	"image"
	"image/color"
	"math"
	"os"
	"testing"

	"resdet/box"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestNormalization(t *testing.T) {
	im := &Image{W: 1, H: 1, Pix: []uint8{255, 128, 0}} // R, G, B
	tests := []struct {
		name string
		norm Normalization
		want [3]float64 // per output channel, computed by hand
	}{
		// (1-0.485)/0.229, (128/255-0.456)/0.224, (0-0.406)/0.225
		{name: "imagenet", norm: ImageNet(), want: [3]float64{2.2489083, 0.2051821, -1.8044444}},
		// B, G, R: 0-102.9801, 128-115.9465, 255-122.7717
		{name: "caffe", norm: Caffe(), want: [3]float64{-102.9801, 12.0535, 132.2283}},
		{name: "identity rgb", norm: Normalization{Range: 1, Std: [3]float32{1, 1, 1}}, want: [3]float64{255, 128, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.norm.Apply(im)
			if got.C != 3 || got.H != 1 || got.W != 1 {
				t.Fatalf("shape [%d %d %d], want [3 1 1]", got.C, got.H, got.W)
			}
			for c := range 3 {
				if !near(float64(got.Data[c]), tt.want[c], 1e-5) {
					t.Errorf("channel %d = %.7f, want %.7f", c, got.Data[c], tt.want[c])
				}
			}
		})
	}
}

func TestNormalizationLayout(t *testing.T) {
	// 2x1 image: check CHW order, pixel by pixel.
	im := &Image{W: 2, H: 1, Pix: []uint8{1, 2, 3, 4, 5, 6}}
	ident := Normalization{Range: 1, Std: [3]float32{1, 1, 1}}
	got := ident.Apply(im).Data
	want := []float32{1, 4, 2, 5, 3, 6} // R plane, G plane, B plane
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("RGB CHW = %v, want %v", got, want)
		}
	}
	ident.BGR = true
	got = ident.Apply(im).Data
	want = []float32{3, 6, 2, 5, 1, 4}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("BGR CHW = %v, want %v", got, want)
		}
	}
}

// torchFixture is testdata/torchvision.json, written by gen_fixtures.py.
type torchFixture struct {
	Torch string `json:"torch"`
	Sizes []struct {
		W, H, Min, Max int
		OutW           int `json:"out_w"`
		OutH           int `json:"out_h"`
	} `json:"sizes"`
	Cases []struct {
		Name           string
		W, H, Min, Max int
		Flip           bool
		BoxesIn        [][4]float32 `json:"boxes_in"`
		OutW           int          `json:"out_w"`
		OutH           int          `json:"out_h"`
		Data           []float32    `json:"data"`
		BoxesOut       [][4]float32 `json:"boxes_out"`
	} `json:"cases"`
}

func loadTorchFixture(t *testing.T) torchFixture {
	t.Helper()
	data, err := os.ReadFile("testdata/torchvision.json")
	if err != nil {
		t.Fatal(err)
	}
	var f torchFixture
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("testdata/torchvision.json: %v", err)
	}
	if len(f.Sizes) == 0 || len(f.Cases) == 0 {
		t.Fatal("testdata/torchvision.json has no cases")
	}
	return f
}

func TestResizeSize(t *testing.T) {
	f := loadTorchFixture(t)
	for _, s := range f.Sizes {
		_, w, h := ResizeSize(s.W, s.H, s.Min, s.Max)
		if w != s.OutW || h != s.OutH {
			t.Errorf("ResizeSize(%d, %d, %d, %d) = %dx%d, torchvision %dx%d", s.W, s.H, s.Min, s.Max, w, h, s.OutW, s.OutH)
		}
	}
	// By hand: 500x375 -> 600/375 = 1.6 (1000/500 = 2 is larger).
	if scale, w, h := ResizeSize(500, 375, 600, 1000); w != 800 || h != 600 || !near(float64(scale), 1.6, 1e-6) {
		t.Errorf("ResizeSize(500, 375) = %v, %dx%d, want 1.6, 800x600", scale, w, h)
	}
}

// pattern is the test image of gen_fixtures.py.
func pattern(w, h int) *Image {
	im := NewImage(w, h)
	for y := range h {
		for x := range w {
			for c := range 3 {
				im.Pix[(y*w+x)*3+c] = uint8((x*37 + y*101 + c*53 + x*y*7) % 256)
			}
		}
	}
	return im
}

// TestTorchvisionParity runs the flip, normalise and resize of Transform
// against torchvision's GeneralizedRCNNTransform on the same pixels.
func TestTorchvisionParity(t *testing.T) {
	f := loadTorchFixture(t)
	for _, c := range f.Cases {
		t.Run(c.Name, func(t *testing.T) {
			boxes := make([]box.Box, len(c.BoxesIn))
			for i, b := range c.BoxesIn {
				boxes[i] = box.Box{X1: b[0], Y1: b[1], X2: b[2], Y2: b[3]}
			}
			tr := Transform{MinSize: c.Min, MaxSize: c.Max, Norm: ImageNet()}
			s, err := tr.Apply(pattern(c.W, c.H), boxes, c.Flip)
			if err != nil {
				t.Fatal(err)
			}
			if s.Image.W != c.OutW || s.Image.H != c.OutH || s.Image.C != 3 {
				t.Fatalf("shape [%d %d %d], torchvision [3 %d %d]", s.Image.C, s.Image.H, s.Image.W, c.OutH, c.OutW)
			}
			var maxDiff float64
			for i, v := range s.Image.Data {
				maxDiff = max(maxDiff, math.Abs(float64(v)-float64(c.Data[i])))
			}
			t.Logf("max |resdet - torchvision| = %.3g over %d values", maxDiff, len(c.Data))
			if maxDiff > 3e-5 { // measured 8e-6 (OpenCV float32 weights vs torch's); values span [-2.2, 2.7]
				t.Errorf("max |resdet - torchvision| = %g, want <= 3e-5", maxDiff)
			}
			for i, b := range s.Boxes {
				want := c.BoxesOut[i]
				got := [4]float32{b.X1, b.Y1, b.X2, b.Y2}
				for k := range 4 {
					if !near(float64(got[k]), float64(want[k]), 1e-5) {
						t.Errorf("box %d = %v, torchvision %v", i, got, want)
						break
					}
				}
			}
		})
	}
}

func TestResizeConstant(t *testing.T) {
	// Bilinear resampling of a constant plane gives the same constant, up
	// or down, and the same size is returned unchanged.
	src := Tensor{C: 2, H: 5, W: 7, Data: make([]float32, 2*5*7)}
	for i := range src.Data {
		src.Data[i] = 0.25
		if i >= 35 {
			src.Data[i] = -3
		}
	}
	for _, sz := range [][2]int{{7, 5}, {3, 2}, {20, 11}, {1, 1}} {
		got, err := Resize(src, sz[0], sz[1])
		if err != nil {
			t.Fatal(err)
		}
		if got.W != sz[0] || got.H != sz[1] || len(got.Data) != 2*sz[0]*sz[1] {
			t.Fatalf("Resize to %v: shape [%d %d %d], %d values", sz, got.C, got.H, got.W, len(got.Data))
		}
		for i, v := range got.Data {
			want := float32(0.25)
			if i >= sz[0]*sz[1] {
				want = -3
			}
			if !near(float64(v), float64(want), 1e-6) {
				t.Fatalf("Resize to %v: value %d = %v, want %v", sz, i, v, want)
			}
		}
	}
}

func TestResizeHalfPixel(t *testing.T) {
	// 1x4 row [0 10 20 30] -> width 2: out x=0 samples src 0.5 -> 5, x=1 samples 2.5 -> 25
	// (half-pixel centres); -> width 8: x=0 at -0.25 clamps to 0 -> 0, x=1 at 0.25 -> 2.5.
	src := Tensor{C: 1, H: 1, W: 4, Data: []float32{0, 10, 20, 30}}
	tests := []struct {
		name string
		w    int
		want []float32
	}{
		{name: "down", w: 2, want: []float32{5, 25}},
		{name: "up", w: 8, want: []float32{0, 2.5, 7.5, 12.5, 17.5, 22.5, 27.5, 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resize(src, tt.w, 1)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.want {
				if !near(float64(got.Data[i]), float64(tt.want[i]), 1e-5) {
					t.Fatalf("Resize = %v, want %v", got.Data, tt.want)
				}
			}
		})
	}
}

func TestBoxesMoveWithImage(t *testing.T) {
	tests := []struct {
		name string
		got  []box.Box
		want []box.Box
	}{
		{name: "flip", got: FlipBoxes([]box.Box{{X1: 0, Y1: 1, X2: 4, Y2: 2}}, 10),
			want: []box.Box{{X1: 6, Y1: 1, X2: 10, Y2: 2}}},
		// 100x50 -> 150x100: x by 1.5, y by 2.
		{name: "resize", got: ResizeBoxes([]box.Box{{X1: 10, Y1: 5, X2: 20, Y2: 50}}, 100, 50, 150, 100),
			want: []box.Box{{X1: 15, Y1: 10, X2: 30, Y2: 100}}},
		{name: "resize none", got: ResizeBoxes(nil, 10, 10, 20, 20), want: []box.Box{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.got) != len(tt.want) {
				t.Fatalf("got %v, want %v", tt.got, tt.want)
			}
			for i := range tt.got {
				if tt.got[i] != tt.want[i] {
					t.Errorf("box %d = %v, want %v", i, tt.got[i], tt.want[i])
				}
			}
		})
	}
}

func TestTransformFlipMatchesFlippedImage(t *testing.T) {
	// Flipping inside Apply equals applying to an already flipped image, and
	// a box around a marked pixel stays around it.
	im := NewImage(8, 6)
	i := (2*8 + 1) * 3 // pixel (1, 2)
	im.Pix[i], im.Pix[i+1], im.Pix[i+2] = 255, 255, 255
	tr := Transform{MinSize: 12, MaxSize: 100, Norm: ImageNet()}
	s, err := tr.Apply(im, []box.Box{{X1: 1, Y1: 2, X2: 2, Y2: 3}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if s.Image.W != 16 || s.Image.H != 12 || s.Scale != 2 || !s.Flipped || s.OrigW != 8 || s.OrigH != 6 {
		t.Fatalf("sample %dx%d scale %v flipped %v orig %dx%d, want 16x12, 2, true, 8x6",
			s.Image.W, s.Image.H, s.Scale, s.Flipped, s.OrigW, s.OrigH)
	}
	want := box.Box{X1: 12, Y1: 4, X2: 14, Y2: 6} // x: 8-2=6..7, times 2
	if s.Boxes[0] != want {
		t.Errorf("box %v, want %v", s.Boxes[0], want)
	}
	// The brightest output pixel lies inside the box.
	bx, by, best := 0, 0, float32(-10)
	for y := range s.Image.H {
		for x := range s.Image.W {
			if v := s.Image.At(0, x, y); v > best {
				bx, by, best = x, y, v
			}
		}
	}
	if float32(bx) < want.X1 || float32(bx) >= want.X2 || float32(by) < want.Y1 || float32(by) >= want.Y2 {
		t.Errorf("brightest pixel at (%d,%d), outside box %v", bx, by, want)
	}
}

func TestBatch(t *testing.T) {
	a := Tensor{C: 1, H: 2, W: 3, Data: []float32{1, 2, 3, 4, 5, 6}}
	b := Tensor{C: 1, H: 3, W: 1, Data: []float32{7, 8, 9}}
	got, err := Batch([]Tensor{a, b}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got.N != 2 || got.C != 1 || got.H != 4 || got.W != 4 {
		t.Fatalf("shape [%d %d %d %d], want [2 1 4 4]", got.N, got.C, got.H, got.W)
	}
	want := []float32{
		1, 2, 3, 0,
		4, 5, 6, 0,
		0, 0, 0, 0,
		0, 0, 0, 0,

		7, 0, 0, 0,
		8, 0, 0, 0,
		9, 0, 0, 0,
		0, 0, 0, 0,
	}
	for i := range want {
		if got.Data[i] != want[i] {
			t.Fatalf("data = %v, want %v", got.Data, want)
		}
	}
	if got.Sizes[0].X != 3 || got.Sizes[0].Y != 2 || got.Sizes[1].X != 1 || got.Sizes[1].Y != 3 {
		t.Errorf("sizes %v, want [(3,2) (1,3)]", got.Sizes)
	}
	errCases := []struct {
		name string
		ts   []Tensor
	}{
		{name: "empty", ts: nil},
		{name: "channels differ", ts: []Tensor{a, {C: 3, H: 1, W: 1, Data: make([]float32, 3)}}},
	}
	for _, tt := range errCases {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Batch(tt.ts, 32); err == nil {
				t.Error("no error")
			}
		})
	}
}

// TestLoadKnownPNG runs Transform.Load end to end on a 2x1 PNG written here.
func TestLoadKnownPNG(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	img.SetNRGBA(0, 0, color.NRGBA{255, 128, 0, 255})
	img.SetNRGBA(1, 0, color.NRGBA{0, 0, 0, 255})
	path := writePNG(t, t.TempDir(), "tiny.png", img)
	// scale = min(2/1, 4/2) = 2 -> 4x2.
	s, err := Transform{MinSize: 2, MaxSize: 4, Norm: ImageNet()}.Load(path, []box.Box{{X1: 1, Y1: 0, X2: 2, Y2: 1}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if s.Image.W != 4 || s.Image.H != 2 {
		t.Fatalf("size %dx%d, want 4x2", s.Image.W, s.Image.H)
	}
	// Red channel: pixel 0 -> (1-0.485)/0.229 = 2.2489083, pixel 1 -> -0.485/0.229 = -2.1179039.
	// Output x samples source x at (x+0.5)/2-0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1):
	// r0, 0.75 r0 + 0.25 r1, 0.25 r0 + 0.75 r1, r1.
	wantRed := []float64{2.2489083, 1.1572052, -1.0262008, -2.1179039}
	for y := range 2 {
		for x, want := range wantRed {
			if got := s.Image.At(0, x, y); !near(float64(got), want, 1e-5) {
				t.Errorf("red (%d,%d) = %.7f, want %.7f", x, y, got, want)
			}
		}
	}
	// Blue channel: pixel 0 and 1 are both 0 -> -0.406/0.225 = -1.8044444 everywhere.
	for y := range 2 {
		for x := range 4 {
			if got := s.Image.At(2, x, y); !near(float64(got), -1.8044444, 1e-5) {
				t.Errorf("blue (%d,%d) = %.7f, want -1.8044444", x, y, got)
			}
		}
	}
	if want := (box.Box{X1: 2, Y1: 0, X2: 4, Y2: 2}); s.Boxes[0] != want {
		t.Errorf("box %v, want %v", s.Boxes[0], want)
	}
}
