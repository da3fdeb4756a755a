package imageio

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writePNG encodes img as PNG at dir/name and returns the path.
func writePNG(t *testing.T, dir, name string, img image.Image) string {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// knownPixels is a 3x2 RGBA image whose pixels are all different.
func knownPixels() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	px := [][3]uint8{{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}, {255, 128, 0}, {200, 201, 202}}
	for i, p := range px {
		img.SetNRGBA(i%3, i/3, color.NRGBA{p[0], p[1], p[2], 255})
	}
	return img
}

func TestReadPNGExact(t *testing.T) {
	dir := t.TempDir()
	grey := image.NewGray(image.Rect(0, 0, 2, 1))
	grey.SetGray(0, 0, color.Gray{Y: 7})
	grey.SetGray(1, 0, color.Gray{Y: 250})
	tests := []struct {
		name string
		img  image.Image
		w, h int
		want []uint8 // RGB, HWC
	}{
		{name: "rgb", img: knownPixels(), w: 3, h: 2,
			want: []uint8{255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 255, 128, 0, 200, 201, 202}},
		{name: "grey", img: grey, w: 2, h: 1, want: []uint8{7, 7, 7, 250, 250, 250}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := Read(writePNG(t, dir, tt.name+".png", tt.img))
			if err != nil {
				t.Fatal(err)
			}
			if im.W != tt.w || im.H != tt.h {
				t.Fatalf("size %dx%d, want %dx%d", im.W, im.H, tt.w, tt.h)
			}
			if !bytes.Equal(im.Pix, tt.want) {
				t.Errorf("pixels %v, want %v", im.Pix, tt.want)
			}
		})
	}
}

func TestReadJPEG(t *testing.T) {
	// A flat colour survives JPEG up to rounding: check R, G, B are not swapped.
	img := image.NewRGBA(image.Rect(0, 0, 16, 8))
	for i := 0; i < len(img.Pix); i += 4 {
		copy(img.Pix[i:], []uint8{200, 60, 20, 255})
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "flat.jpg")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	im, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if im.W != 16 || im.H != 8 {
		t.Fatalf("size %dx%d, want 16x8", im.W, im.H)
	}
	want := [3]int{200, 60, 20}
	for y := range im.H {
		for x := range im.W {
			r, g, b := im.At(x, y)
			for c, v := range [3]uint8{r, g, b} {
				if d := int(v) - want[c]; d < -3 || d > 3 {
					t.Fatalf("pixel (%d,%d) = %d %d %d, want about %v", x, y, r, g, b, want)
				}
			}
		}
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	var full bytes.Buffer
	if err := png.Encode(&full, knownPixels()); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"garbage.jpg":   []byte("this is not an image"),
		"truncated.jpg": {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F'},
		"truncated.png": full.Bytes()[:20],
		"empty.png":     {},
		"image.gif":     []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		file     string
		notExist bool
	}{
		{name: "missing", file: "missing.jpg", notExist: true},
		{name: "not an image", file: "garbage.jpg"},
		{name: "truncated jpeg", file: "truncated.jpg"},
		{name: "truncated png", file: "truncated.png"},
		{name: "empty file", file: "empty.png"},
		{name: "unsupported format", file: "image.gif"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			im, err := Read(path)
			if err == nil {
				t.Fatalf("Read(%s) = %dx%d image, want an error", tt.file, im.W, im.H)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file %s", err, path)
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tt.notExist {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v (err %q)", got, tt.notExist, err)
			}
			if !tt.notExist && !errors.Is(err, errDecode) {
				t.Errorf("error %q does not wrap the decode error", err)
			}
		})
	}
}

func TestFlipX(t *testing.T) {
	im := &Image{W: 3, H: 2, Pix: []uint8{
		1, 2, 3, 4, 5, 6, 7, 8, 9,
		10, 11, 12, 13, 14, 15, 16, 17, 18,
	}}
	want := []uint8{
		7, 8, 9, 4, 5, 6, 1, 2, 3,
		16, 17, 18, 13, 14, 15, 10, 11, 12,
	}
	got := im.FlipX()
	if !bytes.Equal(got.Pix, want) {
		t.Errorf("FlipX = %v, want %v", got.Pix, want)
	}
	if im.Pix[0] != 1 {
		t.Errorf("FlipX changed its receiver")
	}
	if again := got.FlipX(); !bytes.Equal(again.Pix, im.Pix) {
		t.Errorf("flipping twice = %v, want the original %v", again.Pix, im.Pix)
	}
}
