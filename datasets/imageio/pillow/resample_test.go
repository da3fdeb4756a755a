package pillow

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestResizeBilinearMatchesPIL compares ResizeBilinear with
// PIL.Image.resize(BILINEAR) computed now by testdata/gen_resize.py on
// noise, checkerboards, gradients and white images (RGB and L), over size
// pairs that scale up, down, both at once, by extreme ratios, from and to
// one pixel, along one axis only, and not at all. Every byte must match.
func TestResizeBilinearMatchesPIL(t *testing.T) {
	dir := runPIL(t, "gen_resize.py")
	raw, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		PIL   string `json:"pil"`
		Cases []struct {
			Name, Mode, In, Out string
			W, H                int
			NewW                int `json:"new_w"`
			NewH                int `json:"new_h"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) < 100 {
		t.Fatalf("gen_resize.py wrote %d cases, want at least 100", len(ref.Cases))
	}
	t.Logf("Pillow %s, %d cases", ref.PIL, len(ref.Cases))
	for _, c := range ref.Cases {
		t.Run(c.Name, func(t *testing.T) {
			ch := map[string]int{"RGB": 3, "L": 1}[c.Mode]
			in, err := os.ReadFile(filepath.Join(dir, c.In))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(dir, c.Out))
			if err != nil {
				t.Fatal(err)
			}
			got := ResizeBilinear(in, c.W, c.H, ch, c.NewW, c.NewH)
			if len(got) != len(want) {
				t.Fatalf("%d bytes, want %d", len(got), len(want))
			}
			diffs, worst, first := 0, 0, -1
			for i := range got {
				if d := int(got[i]) - int(want[i]); d != 0 {
					if first < 0 {
						first = i
					}
					diffs++
					worst = max(worst, d, -d)
				}
			}
			if diffs > 0 {
				p := first / ch
				t.Errorf("%d of %d bytes differ (worst by %d); first at x=%d y=%d channel %d: got %d, want %d",
					diffs, len(got), worst, p%c.NewW, p/c.NewW, first%ch, got[first], want[first])
			}
		})
	}
}

func TestResizeBilinearProperties(t *testing.T) {
	tests := []struct {
		name             string
		w, h, newW, newH int
		fill             uint8
	}{
		{name: "constant up", w: 7, h: 5, newW: 33, newH: 21, fill: 200},
		{name: "constant down", w: 90, h: 70, newW: 11, newH: 3, fill: 17},
		{name: "white extreme", w: 3, h: 500, newW: 400, newH: 2, fill: 255},
		{name: "black", w: 10, h: 10, newW: 3, newH: 31, fill: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := make([]uint8, tt.w*tt.h*3)
			for i := range in {
				in[i] = tt.fill
			}
			out := ResizeBilinear(in, tt.w, tt.h, 3, tt.newW, tt.newH)
			if len(out) != tt.newW*tt.newH*3 {
				t.Fatalf("%d bytes, want %d", len(out), tt.newW*tt.newH*3)
			}
			// The weights of every output sum to 1 up to 22-bit rounding, so
			// a flat image stays flat.
			for i, v := range out {
				if v != tt.fill {
					t.Fatalf("byte %d = %d, want %d", i, v, tt.fill)
				}
			}
		})
	}
	t.Run("same size is a copy", func(t *testing.T) {
		in := []uint8{1, 2, 3, 4, 5, 6}
		out := ResizeBilinear(in, 2, 1, 3, 2, 1)
		out[0] = 99
		if in[0] != 1 {
			t.Errorf("ResizeBilinear returned its input, not a copy")
		}
	})
}
