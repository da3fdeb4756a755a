package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"resdet/internal/atomicfile"
)

// Series is one line of a chart: points (X[i], Y[i]).
type Series struct {
	Name string
	X, Y []float64
}

// Chart is a line chart drawn by DrawChart.
type Chart struct {
	Title, XLabel, YLabel string
	Series                []Series
	// LogY plots log10(y) (non-positive values are left out).
	LogY bool
	// XMin..YMax fix the axes when XMax > XMin (YMax > YMin); otherwise
	// they fit the data.
	XMin, XMax, YMin, YMax float64
}

// palette colours series in order.
var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
	{188, 189, 34, 255}, {23, 190, 207, 255},
}

// DrawChart renders c as a w x h RGBA image: axes with "nice" ticks and
// their labels, the title, axis labels, one polyline per series and a
// legend. Series without points are listed in the legend only.
func DrawChart(c Chart, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	// The legend sits right of the plot area, never over the curves.
	lw := 0
	for _, s := range c.Series {
		lw = max(lw, 7*len(s.Name))
	}
	const left, top, bottom = 70, 30, 45
	right := 20
	if len(c.Series) > 0 {
		right = min(lw+46, w/2)
	}
	pw, ph := w-left-right, h-top-bottom
	ty := func(y float64) (float64, bool) {
		if c.LogY {
			if !(y > 0) {
				return 0, false
			}
			return math.Log10(y), true
		}
		return y, !math.IsNaN(y) && !math.IsInf(y, 0)
	}
	x0, x1, y0, y1 := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for i := range s.X {
			y, ok := ty(s.Y[i])
			if !ok {
				continue
			}
			x0, x1 = min(x0, s.X[i]), max(x1, s.X[i])
			y0, y1 = min(y0, y), max(y1, y)
		}
	}
	if c.XMax > c.XMin {
		x0, x1 = c.XMin, c.XMax
	}
	if c.YMax > c.YMin {
		y0, y1 = c.YMin, c.YMax
	}
	if math.IsInf(x0, 0) {
		x0, x1, y0, y1 = 0, 1, 0, 1
	}
	if x1 == x0 {
		x1 = x0 + 1
	}
	if y1 == y0 {
		y0, y1 = y0-0.5, y1+0.5
	}
	px := func(x float64) float64 { return float64(left) + (x-x0)/(x1-x0)*float64(pw) }
	py := func(y float64) float64 { return float64(top+ph) - (y-y0)/(y1-y0)*float64(ph) }
	grey, black := color.RGBA{220, 220, 220, 255}, color.RGBA{0, 0, 0, 255}
	// Ticks and grid.
	for _, t := range niceTicks(x0, x1, 8) {
		x := px(t)
		line(img, x, float64(top), x, float64(top+ph), grey, 1)
		line(img, x, float64(top+ph), x, float64(top+ph+4), black, 1)
		s := tickLabel(t)
		text(img, int(x)-3*len(s), top+ph+17, s, black)
	}
	for _, t := range niceTicks(y0, y1, 6) {
		y := py(t)
		line(img, float64(left), y, float64(left+pw), y, grey, 1)
		line(img, float64(left-4), y, float64(left), y, black, 1)
		s := tickLabel(t)
		if c.LogY {
			s = strconv.FormatFloat(math.Pow(10, t), 'g', 2, 64)
		}
		text(img, left-8-7*len(s), int(y)+4, s, black)
	}
	line(img, float64(left), float64(top), float64(left), float64(top+ph), black, 1)
	line(img, float64(left), float64(top+ph), float64(left+pw), float64(top+ph), black, 1)
	text(img, left+pw/2-7*len(c.Title)/2, 18, c.Title, black)
	text(img, left+pw/2-7*len(c.XLabel)/2, h-8, c.XLabel, black)
	yl := c.YLabel
	if c.LogY {
		yl += " (log)"
	}
	text(img, 4, top-8, yl, black)
	// Lines, clipped to the plot area.
	clip := image.Rect(left, top, left+pw+1, top+ph+1)
	sub := img.SubImage(clip).(*image.RGBA)
	for k, s := range c.Series {
		col := palette[k%len(palette)]
		havePrev := false
		var lx, ly float64
		for i := range s.X {
			y, ok := ty(s.Y[i])
			if !ok {
				havePrev = false
				continue
			}
			x, yy := px(s.X[i]), py(y)
			if havePrev {
				line(sub, lx, ly, x, yy, col, 2)
			} else if len(s.X) == 1 {
				line(sub, x-2, yy, x+2, yy, col, 3)
			}
			lx, ly, havePrev = x, yy, true
		}
	}
	// Legend, right of the plot area.
	lx := left + pw + 12
	for k, s := range c.Series {
		y := top + 12 + 15*k
		line(img, float64(lx), float64(y-4), float64(lx+20), float64(y-4), palette[k%len(palette)], 3)
		text(img, lx+26, y, s.Name, black)
	}
	return img
}

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	span := hi - lo
	step := math.Pow(10, math.Floor(math.Log10(span/float64(n))))
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(step*m) <= float64(n) {
			step *= m
			break
		}
	}
	var out []float64
	for t := math.Ceil(lo/step) * step; t <= hi+step*1e-9; t += step {
		// Print-and-parse drops float noise (3*0.2 = 0.6000000000000001).
		v, _ := strconv.ParseFloat(strconv.FormatFloat(math.Round(t/step)*step, 'g', 12, 64), 64)
		out = append(out, v)
	}
	return out
}

func tickLabel(v float64) string {
	if v == 0 {
		return "0"
	}
	a := math.Abs(v)
	if a >= 1e5 || a < 1e-3 {
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func text(img draw.Image, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// line draws a segment of the given width (Bresenham-like stepping).
func line(img draw.Image, x0, y0, x1, y1 float64, c color.Color, width int) {
	n := int(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))) + 1
	for i := 0; i <= n; i++ {
		t := float64(i) / float64(n)
		x, y := x0+(x1-x0)*t, y0+(y1-y0)*t
		for dx := -(width - 1) / 2; dx <= width/2; dx++ {
			for dy := -(width - 1) / 2; dy <= width/2; dy++ {
				p := image.Pt(int(math.Round(x))+dx, int(math.Round(y))+dy)
				if p.In(img.Bounds()) {
					img.Set(p.X, p.Y, c)
				}
			}
		}
	}
}

// WritePNG writes img to path atomically.
func WritePNG(path string, img image.Image) error {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b.Bytes(), 0o644)
}

// ReadMetrics reads the iteration lines of a metrics.jsonl (evaluation
// lines are skipped). A malformed line is an error naming its number.
func ReadMetrics(path string) ([]Metrics, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer f.Close()
	var out []Metrics
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for n := 1; sc.Scan(); n++ {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &probe); err != nil {
			return nil, fmt.Errorf("train: %s line %d: %w", path, n, err)
		}
		if _, ok := probe["loss"]; !ok {
			continue
		}
		var m Metrics
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("train: %s line %d: %w", path, n, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("train: %s: %w", path, err)
	}
	return out, nil
}

// PlotRun draws the loss curves of the run in dir to its RunDir.LossPlot
// and, when the run has evaluation reports (eval/*.json), the
// precision-recall curves of the latest (by file name) to its
// RunDir.PRPlot. It returns the files written.
func PlotRun(dir string) ([]string, error) {
	d := RunDir(dir)
	ms, err := ReadMetrics(d.Metrics())
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("train: %s has no iteration lines", d.Metrics())
	}
	names := []string{"total", "objectness", "rpn_box_reg", "classifier", "box_reg", "total (window mean)"}
	ss := make([]Series, len(names))
	for k := range ss {
		ss[k].Name = names[k]
	}
	for _, m := range ms {
		for k, v := range []float64{m.Loss, m.Objectness, m.RPNBoxReg, m.Classifier, m.BoxReg, m.LossMean} {
			ss[k].X = append(ss[k].X, float64(m.Iter))
			ss[k].Y = append(ss[k].Y, v)
		}
	}
	lossPath := d.LossPlot()
	img := DrawChart(Chart{Title: "training losses", XLabel: "iteration", YLabel: "loss", Series: ss, LogY: true}, 1000, 500)
	if err := WritePNG(lossPath, img); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	out := []string{lossPath}
	evals, _ := filepath.Glob(filepath.Join(d.EvalDir(), "*.json"))
	if len(evals) == 0 {
		return out, nil
	}
	slices.Sort(evals)
	latest := evals[len(evals)-1]
	b, err := os.ReadFile(latest)
	if err != nil {
		return out, fmt.Errorf("train: %w", err)
	}
	var rep EvalReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return out, fmt.Errorf("train: %s: %w", latest, err)
	}
	prPath := d.PRPlot()
	if err := WritePNG(prPath, DrawPR(rep)); err != nil {
		return out, fmt.Errorf("train: %w", err)
	}
	return append(out, prPath), nil
}

// DrawPR draws the per-class precision-recall curves of an evaluation.
func DrawPR(rep EvalReport) *image.RGBA {
	var ss []Series
	for k, c := range rep.PR {
		name := c.Class
		if k < len(rep.PerClass) {
			name = fmt.Sprintf("%s (AP %.3f)", c.Class, float64(rep.PerClass[k].AP))
		}
		ss = append(ss, Series{Name: name, X: c.Recall, Y: c.Precision})
	}
	at := rep.Split
	if rep.Iter > 0 {
		at += fmt.Sprintf(" at iteration %d", rep.Iter)
	}
	title := fmt.Sprintf("precision-recall, %s: VOC07 mAP %.3f, area mAP %.3f", at, float64(rep.VOC07MAP), float64(rep.VOCMAP))
	return DrawChart(Chart{Title: title, XLabel: "recall", YLabel: "precision", Series: ss, XMin: 0, XMax: 1, YMin: 0, YMax: 1.02}, 1000, 600)
}
