package pillow

import "fmt"

// Transpose returns the image oriented as EXIF orientation o asks, as
// Detectron2's _apply_exif_orientation (and Pillow's ImageOps.exif_transpose)
// do with Image.transpose: 2 mirror left-right, 3 rotate 180, 4 mirror
// top-bottom, 5 transpose (swap x and y), 6 rotate 90 degrees clockwise
// (Pillow's ROTATE_270), 7 transverse (transpose and rotate 180), 8 rotate 90
// degrees counter-clockwise (ROTATE_90). For any other o (1, 0 for none,
// out of range) it returns a copy. pix is [h, w, ch] row-major; the result
// is [newH, newW, ch], with newW = h and newH = w for 5 to 8.
//
// It panics if w, h or ch is not positive or len(pix) != w*h*ch.
func Transpose(pix []uint8, w, h, ch, o int) (out []uint8, newW, newH int) {
	if w <= 0 || h <= 0 || ch <= 0 || len(pix) != w*h*ch {
		panic(fmt.Sprintf("pillow: Transpose of %d bytes as %dx%d with %d channels", len(pix), w, h, ch))
	}
	// src maps output pixel (x, y) to its input pixel.
	var src func(x, y int) (int, int)
	newW, newH = w, h
	switch o {
	case 2:
		src = func(x, y int) (int, int) { return w - 1 - x, y }
	case 3:
		src = func(x, y int) (int, int) { return w - 1 - x, h - 1 - y }
	case 4:
		src = func(x, y int) (int, int) { return x, h - 1 - y }
	case 5:
		src = func(x, y int) (int, int) { return y, x }
	case 6:
		src = func(x, y int) (int, int) { return y, h - 1 - x }
	case 7:
		src = func(x, y int) (int, int) { return w - 1 - y, h - 1 - x }
	case 8:
		src = func(x, y int) (int, int) { return w - 1 - y, x }
	default:
		return append([]uint8(nil), pix...), w, h
	}
	if o >= 5 {
		newW, newH = h, w
	}
	out = make([]uint8, len(pix))
	for y := range newH {
		for x := range newW {
			sx, sy := src(x, y)
			copy(out[(y*newW+x)*ch:(y*newW+x+1)*ch], pix[(sy*w+sx)*ch:(sy*w+sx+1)*ch])
		}
	}
	return out, newW, newH
}
