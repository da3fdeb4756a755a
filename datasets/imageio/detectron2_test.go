package imageio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"resdet/box"
)

func TestShortestEdgeSizeExamples(t *testing.T) {
	// The examples of shared/PRETRAINED.md section 2.1, with torchvision's
	// floor for contrast.
	tests := []struct {
		w, h             int
		wantW, wantH     int
		torchW, torchH   int
		short, maxLength int
	}{
		{w: 512, h: 600, wantW: 800, wantH: 938, torchW: 800, torchH: 937},
		{w: 741, h: 240, wantW: 1333, wantH: 432, torchW: 1332, torchH: 431},
		{w: 1000, h: 872, wantW: 917, wantH: 800, torchW: 917, torchH: 799},
		{w: 451, h: 300, wantW: 1203, wantH: 800, torchW: 1202, torchH: 800},
	}
	for _, tt := range tests {
		_, w, h := ShortestEdgeSize(tt.w, tt.h, 800, 1333)
		if w != tt.wantW || h != tt.wantH {
			t.Errorf("ShortestEdgeSize(%dx%d) = %dx%d, want %dx%d", tt.w, tt.h, w, h, tt.wantW, tt.wantH)
		}
		if _, tw, th := ResizeSize(tt.w, tt.h, 800, 1333); tw != tt.torchW || th != tt.torchH {
			t.Errorf("ResizeSize(%dx%d) = %dx%d, want torchvision's %dx%d", tt.w, tt.h, tw, th, tt.torchW, tt.torchH)
		}
	}
}

// TestShortestEdgeSizeMatchesPython compares ShortestEdgeSize with
// Detectron2's rule evaluated in Python doubles by testdata/gen_sizes.py on
// about 4,000 sizes (a grid, random sizes up to 6000, 1-pixel sides) and five
// (short, max) settings.
func TestShortestEdgeSizeMatchesPython(t *testing.T) {
	dir := runPython(t, "testdata/gen_sizes.py")
	raw, err := os.ReadFile(filepath.Join(dir, "sizes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rows [][6]int
	if err := json.Unmarshal(raw, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 3000 {
		t.Fatalf("gen_sizes.py wrote %d sizes, want at least 3000", len(rows))
	}
	bad := 0
	for _, r := range rows {
		_, w, h := ShortestEdgeSize(r[0], r[1], r[2], r[3])
		if w != r[4] || h != r[5] {
			if bad++; bad <= 10 {
				t.Errorf("ShortestEdgeSize(%d, %d, %d, %d) = %dx%d, Python %dx%d", r[0], r[1], r[2], r[3], w, h, r[4], r[5])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d sizes differ", bad, len(rows))
	}
}

// decodePNG decodes a PNG file with the standard library (lossless, and
// independent of OpenCV) into [h, w, 3] bytes.
func decodePNG(t *testing.T, path string) (w, h int, pix []uint8) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	pix = make([]uint8, 0, b.Dx()*b.Dy()*3)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			pix = append(pix, uint8(r>>8), uint8(g>>8), uint8(bl>>8))
		}
	}
	return b.Dx(), b.Dy(), pix
}

// firstDiff describes the first differing byte of two [h, w, 3] images.
func firstDiff(a, b []uint8, w int) string {
	n := 0
	first := -1
	for i := range a {
		if a[i] != b[i] {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	if first < 0 {
		return "equal"
	}
	p := first / 3
	return fmt.Sprintf("pixel (%d, %d) channel %d: got %d, want %d; %d bytes differ", p%w, p/w, first%3, a[first], b[first], n)
}

// TestDetectron2Fixtures checks Detectron2's pipeline on the nine shared
// fixture images against what Detectron2 (Pillow 9.4) produced:
// ReadOriented must give NAME.orig.png byte for byte (EXIF orientation
// applied: exif_rot.jpg has Orientation 6), the Pillow resize of that to
// ShortestEdgeSize's size must give NAME.resized.png byte for byte, and
// Detectron2Transform().Load must give that image in BGR minus the pixel
// mean, CHW float32, exactly.
func TestDetectron2Fixtures(t *testing.T) {
	dir := detectron2Fixtures(t)
	names := []string{"astronaut.png", "chelsea.png", "coffee.png", "exif_rot.jpg", "grace_hopper.jpg",
		"hubble.jpg", "motorcycle.png", "rocket.jpg", "wide_crop.png"}
	tr := Detectron2Transform()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			base := strings.TrimSuffix(name, filepath.Ext(name))
			path := filepath.Join(dir, name)
			ow, oh, orig := decodePNG(t, filepath.Join(dir, base+".orig.png"))
			rw, rh, resized := decodePNG(t, filepath.Join(dir, base+".resized.png"))

			im, err := ReadOriented(path)
			if err != nil {
				t.Fatal(err)
			}
			if im.W != ow || im.H != oh {
				t.Fatalf("ReadOriented: %dx%d, Detectron2 read %dx%d", im.W, im.H, ow, oh)
			}
			if !bytes.Equal(im.Pix, orig) {
				t.Errorf("ReadOriented differs from %s.orig.png: %s", base, firstDiff(im.Pix, orig, ow))
			}

			s, err := tr.Load(path, []box.Box{{X1: 0, Y1: 0, X2: float32(ow), Y2: float32(oh)}}, false)
			if err != nil {
				t.Fatal(err)
			}
			if s.Image.W != rw || s.Image.H != rh || s.OrigW != ow || s.OrigH != oh {
				t.Fatalf("Load: %dx%d from %dx%d, Detectron2 %dx%d from %dx%d", s.Image.W, s.Image.H, s.OrigW, s.OrigH, rw, rh, ow, oh)
			}
			if b := s.Boxes[0]; b.X2 != float32(rw) || b.Y2 != float32(rh) {
				t.Errorf("the whole-image box became %v, want [0 0 %d %d]", b, rw, rh)
			}
			mean := [3]float32{103.530, 116.280, 123.675}
			plane := rw * rh
			bad := 0
			var got8 []uint8
			for i := range plane {
				for c := range 3 { // c: output channel, B G R
					want := float32(resized[i*3+2-c]) - mean[c]
					if g := s.Image.Data[c*plane+i]; g != want {
						bad++
					}
				}
				// Recover the 8-bit RGB the tensor came from, for the report.
				got8 = append(got8, uint8(s.Image.Data[2*plane+i]+mean[2]+0.5), uint8(s.Image.Data[plane+i]+mean[1]+0.5),
					uint8(s.Image.Data[i]+mean[0]+0.5))
			}
			if bad > 0 {
				t.Errorf("%d of %d tensor values differ from %s.resized.png in BGR minus the mean: %s",
					bad, 3*plane, base, firstDiff(got8, resized, rw))
			}
		})
	}
}

// TestReadOrientedMatchesPIL decodes the JPEGs and PNGs that
// pillow/testdata/gen_exif.py writes (all eight orientations, both byte
// orders, odd tag types, XMP, grey JPEG, RGBA PNG) and compares the pixels
// with Pillow's open + transpose + convert("RGB"), byte for byte (OpenCV and
// Pillow share Debian's libjpeg-turbo). Read, which ignores orientation,
// must give the stored size.
func TestReadOrientedMatchesPIL(t *testing.T) {
	dir := runPython(t, "pillow/testdata/gen_exif.py")
	raw, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name, File, RGB string
		Orientation     int
		W, H            int
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 40 {
		t.Fatalf("gen_exif.py wrote %d cases, want at least 40", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			path := filepath.Join(dir, c.File)
			im, err := ReadOriented(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(dir, c.RGB))
			if err != nil {
				t.Fatal(err)
			}
			if im.W != c.W || im.H != c.H {
				t.Fatalf("ReadOriented: %dx%d, Pillow %dx%d", im.W, im.H, c.W, c.H)
			}
			if !bytes.Equal(im.Pix, want) {
				t.Errorf("ReadOriented (orientation %d) differs from Pillow: %s", c.Orientation, firstDiff(im.Pix, want, c.W))
			}
			stored, err := Read(path)
			if err != nil {
				t.Fatal(err)
			}
			sw, sh := c.W, c.H
			if c.Orientation >= 5 && c.Orientation <= 8 {
				sw, sh = sh, sw
			}
			if stored.W != sw || stored.H != sh {
				t.Errorf("Read: %dx%d, want the stored %dx%d", stored.W, stored.H, sw, sh)
			}
		})
	}
}

func TestParsePreprocess(t *testing.T) {
	tests := []struct {
		in      string
		want    Preprocess
		wantErr bool
	}{
		{in: "", want: Torchvision},
		{in: "torchvision", want: Torchvision},
		{in: "detectron2", want: Detectron2},
		{in: "caffe", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParsePreprocess(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParsePreprocess(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if _, err := (Transform{Preprocess: "caffe", MinSize: 1, MaxSize: 1, Norm: ImageNet()}).Apply(NewImage(2, 2), nil, false); err == nil ||
		!strings.Contains(err.Error(), "caffe") {
		t.Errorf("Apply with an unknown Preprocess: error %v, want one naming it", err)
	}
}

func TestDetectron2ApplyFlip(t *testing.T) {
	// Detectron2 resizes, then flips: the flipped sample is the mirror of
	// the unflipped one, and the boxes follow.
	im := pattern(37, 23)
	tr := Detectron2Transform()
	tr.MinSize, tr.MaxSize = 50, 90
	boxes := []box.Box{{X1: 1, Y1: 2, X2: 10, Y2: 20}}
	a, err := tr.Apply(im, boxes, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.Apply(im, boxes, true)
	if err != nil {
		t.Fatal(err)
	}
	_, w, h := ShortestEdgeSize(37, 23, 50, 90)
	if a.Image.W != w || a.Image.H != h || b.Image.W != w || !b.Flipped || a.Flipped {
		t.Fatalf("sizes %dx%d / %dx%d, want %dx%d", a.Image.W, a.Image.H, b.Image.W, b.Image.H, w, h)
	}
	for c := range 3 {
		for y := range h {
			for x := range w {
				if a.Image.At(c, x, y) != b.Image.At(c, w-1-x, y) {
					t.Fatalf("flipped sample at (%d, %d, %d) is not the mirror", c, x, y)
				}
			}
		}
	}
	sx, sy := float64(w)/37, float64(h)/23
	want := box.Box{X1: float32(float64(w) - 10*sx), Y1: float32(2 * sy), X2: float32(float64(w) - 1*sx), Y2: float32(20 * sy)}
	if b.Boxes[0] != want {
		t.Errorf("flipped box = %v, want %v", b.Boxes[0], want)
	}
	if want := (box.Box{X1: float32(1 * sx), Y1: float32(2 * sy), X2: float32(10 * sx), Y2: float32(20 * sy)}); a.Boxes[0] != want {
		t.Errorf("box = %v, want %v", a.Boxes[0], want)
	}
}
