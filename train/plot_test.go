package train

import (
	"image/color"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"image/png"
)

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		name   string
		lo, hi float64
		n      int
		want   []float64
	}{
		{name: "unit", lo: 0, hi: 1, n: 5, want: []float64{0, 0.2, 0.4, 0.6, 0.8, 1}},
		{name: "iterations", lo: 1, hi: 700, n: 8, want: []float64{100, 200, 300, 400, 500, 600, 700}},
		{name: "log decades", lo: -2.3, hi: 0.6, n: 6, want: []float64{-2, -1.5, -1, -0.5, 0, 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := niceTicks(tt.lo, tt.hi, tt.n); !slices.Equal(got, tt.want) {
				t.Errorf("niceTicks(%g, %g, %d) = %v, want %v", tt.lo, tt.hi, tt.n, got, tt.want)
			}
		})
	}
}

// TestPlotRun writes a run folder's metrics.jsonl and an evaluation report
// by hand, plots it, and checks the PNGs: sizes, and each series' colour
// present in the plot area.
func TestPlotRun(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for it := 10; it <= 200; it += 10 {
		l := 3.0 / float64(it)
		lines = append(lines, `{"iter":`+itoa(it)+`,"lr":0.01,"loss":`+ftoa(4*l)+`,"loss_objectness":`+ftoa(l)+`,"loss_rpn_box_reg":`+ftoa(l)+`,"loss_classifier":`+ftoa(l)+`,"loss_box_reg":`+ftoa(l)+`}`)
	}
	lines = append(lines, `{"iter":200,"eval":{"voc07_map":0.5,"voc_map":0.5}}`)
	if err := os.WriteFile(RunDir(dir).Metrics(), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := &EvalReport{Iter: 200, Split: "test", VOC07MAP: 0.5, VOCMAP: 0.5,
		PerClass: []ClassAP{{Class: "a", AP: 0.7}, {Class: "b", AP: 0.3}},
		PR:       []PRCurve{{Class: "a", Recall: []float64{0.1, 0.5, 0.9}, Precision: []float64{1, 0.9, 0.6}}, {Class: "b", Recall: []float64{0.2, 0.4}, Precision: []float64{0.5, 0.4}}}}
	if err := WriteEvalReport(RunDir(dir).EvalAt(200), rep); err != nil {
		t.Fatal(err)
	}
	files, err := PlotRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("files %v, want loss.png and pr.png", files)
	}
	for k, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(fh)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		colours := map[color.RGBA]int{}
		b := img.Bounds()
		for y := b.Min.Y + 40; y < b.Max.Y-50; y++ {
			for x := b.Min.X + 75; x < b.Max.X-25; x++ {
				r, g, bb, a := img.At(x, y).RGBA()
				colours[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bb >> 8), uint8(a >> 8)}]++
			}
		}
		series := []int{5, 2}[k]
		for s := 0; s < series; s++ {
			if colours[palette[s]] < 20 {
				t.Errorf("%s: series %d colour %v has %d pixels in the plot area", f, s, palette[s], colours[palette[s]])
			}
		}
	}
}

func itoa(i int) string     { return strconv.Itoa(i) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
