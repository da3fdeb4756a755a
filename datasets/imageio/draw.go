package imageio

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"

	"resdet/box"
	"resdet/internal/atomicfile"
)

// Annotation is a box to draw with its caption.
type Annotation struct {
	Box      box.Box // pixel coordinates of the image drawn on (box/doc.go)
	Label    int     // class index; picks the colour (Palette)
	Text     string  // caption, usually the class name
	Score    float32 // appended to the caption as "0.87" when HasScore
	HasScore bool
}

// Palette returns the drawing colour of class label: hues spread by the
// golden ratio, so neighbouring labels differ. It is opaque and never grey.
func Palette(label int) color.RGBA {
	h := math.Mod(float64(label)*0.618033988749895+0.1, 1)
	return hsv(h, 0.85, 0.95)
}

// hsv converts hue h in [0,1), saturation s and value v in [0,1] to RGBA.
func hsv(h, s, v float64) color.RGBA {
	i := int(h * 6)
	f := h*6 - float64(i)
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	var r, g, b float64
	switch i % 6 {
	case 0:
		r, g, b = v, t, p
	case 1:
		r, g, b = q, v, p
	case 2:
		r, g, b = p, v, t
	case 3:
		r, g, b = p, q, v
	case 4:
		r, g, b = t, p, v
	default:
		r, g, b = v, p, q
	}
	return color.RGBA{uint8(r*255 + 0.5), uint8(g*255 + 0.5), uint8(b*255 + 0.5), 255}
}

// formatOfPath returns the format a file name's extension asks for.
func formatOfPath(path string) (Format, bool) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jpg", ".jpeg":
		return JPEG, true
	case ".png":
		return PNG, true
	}
	return "", false
}

// DrawFile reads the JPEG or PNG image src, draws each annotation's box (2 px,
// its label's Palette colour) and caption (on a filled band above the box,
// or inside it at the top edge of the image), and writes the result to dst in
// src's format, atomically (a temporary file in dst's directory, then
// rename). dst's extension must name the same format (.jpg/.jpeg or .png).
// JPEG output uses quality 95.
func DrawFile(src, dst string, anns []Annotation) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("imageio: draw: %w", err)
	}
	format, ok := sniff(data)
	if !ok {
		return fmt.Errorf("imageio: draw: %s: %w (unknown signature)", src, errDecode)
	}
	if f, ok := formatOfPath(dst); !ok || f != format {
		return fmt.Errorf("imageio: draw: output %s: extension does not match the input format %s", dst, format)
	}
	m, err := gocv.IMDecode(data, gocv.IMReadColor|gocv.IMReadIgnoreOrientation)
	if err != nil {
		return fmt.Errorf("imageio: draw: %s: %w: %v", src, errDecode, err)
	}
	defer m.Close()
	if m.Empty() {
		return fmt.Errorf("imageio: draw: %s: %w", src, errDecode)
	}
	for _, a := range anns {
		drawAnnotation(&m, a)
	}
	ext, params := gocv.PNGFileExt, []int{gocv.IMWritePngCompression, 3}
	if format == JPEG {
		ext, params = gocv.JPEGFileExt, []int{gocv.IMWriteJpegQuality, 95}
	}
	buf, err := gocv.IMEncodeWithParams(ext, m, params)
	if err != nil {
		return fmt.Errorf("imageio: draw: encode %s: %w", dst, err)
	}
	defer buf.Close()
	if buf.Len() == 0 {
		return fmt.Errorf("imageio: draw: encode %s: OpenCV produced no data", dst)
	}
	return atomicfile.WriteFile(dst, buf.GetBytes(), 0o644)
}

// drawAnnotation draws one box and caption on a BGR Mat.
func drawAnnotation(m *gocv.Mat, a Annotation) {
	w, h := m.Cols(), m.Rows()
	b := a.Box.Clip(float32(w), float32(h))
	r := image.Rect(int(math.Round(float64(b.X1))), int(math.Round(float64(b.Y1))),
		int(math.Round(float64(b.X2))), int(math.Round(float64(b.Y2))))
	col := Palette(a.Label)
	gocv.Rectangle(m, r, col, 2)
	text := a.Text
	if a.HasScore {
		text = strings.TrimSpace(fmt.Sprintf("%s %.2f", text, a.Score))
	}
	if text == "" {
		return
	}
	const scale, thick = 0.45, 1
	size, base := gocv.GetTextSizeWithBaseline(text, gocv.FontHersheySimplex, scale, thick)
	bandH := size.Y + base + 2
	top := r.Min.Y - bandH
	if top < 0 { // no room above: put the band inside the box
		top = r.Min.Y
	}
	band := image.Rect(r.Min.X, top, r.Min.X+size.X+4, top+bandH)
	gocv.Rectangle(m, band, col, -1)
	ink := color.RGBA{255, 255, 255, 255}
	if 0.299*float64(col.R)+0.587*float64(col.G)+0.114*float64(col.B) > 150 {
		ink = color.RGBA{0, 0, 0, 255}
	}
	gocv.PutTextWithParams(m, text, image.Pt(band.Min.X+2, band.Max.Y-base-1),
		gocv.FontHersheySimplex, scale, ink, thick, gocv.LineAA, false)
}
