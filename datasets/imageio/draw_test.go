package imageio

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"resdet/box"
)

func TestDrawFile(t *testing.T) {
	dir := t.TempDir()
	grey := image.NewNRGBA(image.Rect(0, 0, 64, 48))
	for i := 0; i < len(grey.Pix); i += 4 {
		copy(grey.Pix[i:], []uint8{128, 128, 128, 255})
	}
	pngIn := writePNG(t, dir, "in.png", grey)
	var jbuf bytes.Buffer
	if err := jpeg.Encode(&jbuf, grey, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	jpgIn := filepath.Join(dir, "in.jpg")
	if err := os.WriteFile(jpgIn, jbuf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	anns := []Annotation{
		{Box: box.Box{X1: 10, Y1: 20, X2: 40, Y2: 40}, Label: 2, Text: "circle", Score: 0.875, HasScore: true},
		{Box: box.Box{X1: 0, Y1: 0, X2: 30, Y2: 15}, Label: 0, Text: "square"}, // caption inside: no room above
	}
	tests := []struct {
		name   string
		src    string
		dst    string
		format Format
		tol    int // per-channel tolerance on the box colour
	}{
		{name: "png", src: pngIn, dst: filepath.Join(dir, "out.png"), format: PNG, tol: 0},
		{name: "jpeg", src: jpgIn, dst: filepath.Join(dir, "out.jpg"), format: JPEG, tol: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := DrawFile(tt.src, tt.dst, anns); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(tt.dst)
			if err != nil {
				t.Fatal(err)
			}
			if f, ok := sniff(data); !ok || f != tt.format {
				t.Fatalf("output format %q, want %q", f, tt.format)
			}
			im, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			want := Palette(2)
			// Left edge of the first box, away from its caption.
			r, g, b := im.At(10, 32)
			if !closeRGB(r, g, b, want, tt.tol) {
				t.Errorf("box edge pixel = %d %d %d, want about %v", r, g, b, want)
			}
			// The box's inside is untouched.
			r, g, b = im.At(25, 32)
			if !closeRGB(r, g, b, color.RGBA{128, 128, 128, 255}, tt.tol/4+2) {
				t.Errorf("inside pixel = %d %d %d, want about 128", r, g, b)
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func closeRGB(r, g, b uint8, c color.RGBA, tol int) bool {
	d := func(a, b uint8) bool { return int(a)-int(b) <= tol && int(b)-int(a) <= tol }
	return d(r, c.R) && d(g, c.G) && d(b, c.B)
}

func TestDrawFileErrors(t *testing.T) {
	dir := t.TempDir()
	src := writePNG(t, dir, "in.png", knownPixels())
	garbage := filepath.Join(dir, "garbage.png")
	if err := os.WriteFile(garbage, []byte("nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, src, dst, mention string
	}{
		{name: "missing input", src: filepath.Join(dir, "missing.png"), dst: filepath.Join(dir, "o.png"), mention: "missing.png"},
		{name: "undecodable input", src: garbage, dst: filepath.Join(dir, "o.png"), mention: garbage},
		{name: "format mismatch", src: src, dst: filepath.Join(dir, "o.jpg"), mention: "o.jpg"},
		{name: "missing output dir", src: src, dst: filepath.Join(dir, "no", "o.png"), mention: "o.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DrawFile(tt.src, tt.dst, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %s", err, tt.mention)
			}
		})
	}
}

func TestPaletteDistinct(t *testing.T) {
	seen := map[color.RGBA]int{}
	for l := range 20 {
		c := Palette(l)
		if prev, ok := seen[c]; ok {
			t.Errorf("labels %d and %d share colour %v", prev, l, c)
		}
		seen[c] = l
		if c.R == c.G && c.G == c.B {
			t.Errorf("label %d is grey: %v", l, c)
		}
	}
}
