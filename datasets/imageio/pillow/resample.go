package pillow

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// precisionBits is the number of fractional bits of the fixed-point weights
// (Pillow's PRECISION_BITS = 32 - 8 - 2).
const precisionBits = 22

// coeffs are the weights of one axis: output i reads inputs
// [start[i], start[i]+n[i]) with weights k[i*ksize : i*ksize+n[i]].
type coeffs struct {
	ksize    int
	start, n []int
	k        []int32
}

// bilinearCoeffs computes the fixed-point triangle-filter weights that map
// inSize samples to outSize samples, as Pillow's precompute_coeffs and
// normalize_coeffs_8bpc do for the BILINEAR filter (support 1).
func bilinearCoeffs(inSize, outSize int) coeffs {
	scale := float64(inSize) / float64(outSize)
	filterscale := max(scale, 1)
	support := 1 * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c := coeffs{ksize: ksize, start: make([]int, outSize), n: make([]int, outSize), k: make([]int32, outSize*ksize)}
	w := make([]float64, ksize)
	ss := 1 / filterscale
	for i := range outSize {
		// Explicit float64 conversions keep each product rounded on its own
		// (no fused multiply-add), as in Pillow's C.
		center := float64((float64(i) + 0.5) * scale)
		xmin := int(center - support + 0.5)
		xmin = max(xmin, 0)
		xmax := min(int(center+support+0.5), inSize) - xmin
		var sum float64
		for x := range xmax {
			v := triangle(float64((float64(x+xmin) - center + 0.5) * ss))
			w[x] = v
			sum += v
		}
		for x := range xmax {
			v := w[x]
			if sum != 0 {
				v /= sum
			}
			f := float64(v * (1 << precisionBits))
			if v < 0 {
				c.k[i*ksize+x] = int32(-0.5 + f)
			} else {
				c.k[i*ksize+x] = int32(0.5 + f)
			}
		}
		c.start[i], c.n[i] = xmin, max(xmax, 0)
	}
	return c
}

// triangle is Pillow's bilinear_filter: 1-|x| on (-1, 1), 0 elsewhere.
func triangle(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

// clip8 turns an accumulator (with the 2^21 rounding offset already added)
// into an 8-bit value: acc >> 22 clamped to [0, 255].
func clip8(acc int32) uint8 {
	v := acc >> precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// ResizeBilinear resizes an 8-bit image of w x h pixels with ch interleaved
// channels (pix is [h, w, ch], row-major) to newW x newH with Pillow 9.4's
// BILINEAR filter, bit for bit as PIL.Image.resize((newW, newH),
// Image.BILINEAR) on an "L", "RGB" or "RGBX" image (see the package
// documentation for the arithmetic). It returns a new slice of
// newH*newW*ch bytes, a copy of pix when the size does not change.
//
// It panics if a size or ch is not positive, ch > 4, or len(pix) !=
// w*h*ch: these are programmer errors.
func ResizeBilinear(pix []uint8, w, h, ch, newW, newH int) []uint8 {
	if w <= 0 || h <= 0 || newW <= 0 || newH <= 0 || ch <= 0 || ch > 4 {
		panic(fmt.Sprintf("pillow: ResizeBilinear from %dx%d to %dx%d with %d channels", w, h, newW, newH, ch))
	}
	if len(pix) != w*h*ch {
		panic(fmt.Sprintf("pillow: ResizeBilinear: %d bytes for %dx%d with %d channels", len(pix), w, h, ch))
	}
	src := pix
	vert := bilinearCoeffs(h, newH)
	if newW != w {
		// Rows the vertical pass reads: [first, last).
		first := 0
		last := h
		if newH != h {
			first = vert.start[0]
			last = vert.start[newH-1] + vert.n[newH-1]
			for i := range vert.start {
				vert.start[i] -= first
			}
		}
		horiz := bilinearCoeffs(w, newW)
		tmp := make([]uint8, (last-first)*newW*ch)
		parallelRows(last-first, func(y0, y1 int) {
			for y := y0; y < y1; y++ {
				resampleRow(tmp[y*newW*ch:(y+1)*newW*ch], pix[(y+first)*w*ch:(y+first+1)*w*ch], ch, horiz)
			}
		})
		src = tmp
	}
	if newH == h {
		if newW == w {
			return append([]uint8(nil), pix...)
		}
		return src
	}
	out := make([]uint8, newH*newW*ch)
	rowLen := newW * ch
	parallelRows(newH, func(y0, y1 int) {
		for y := y0; y < y1; y++ {
			k := vert.k[y*vert.ksize : y*vert.ksize+vert.n[y]]
			resampleColumn(out[y*rowLen:(y+1)*rowLen], src[vert.start[y]*rowLen:], rowLen, k)
		}
	})
	return out
}

// resampleColumn computes one output row of the vertical pass: dst[i] is
// the weighted sum of src[j*rowLen+i] over the taps j of k.
func resampleColumn(dst, src []uint8, rowLen int, k []int32) {
	const half = 1 << (precisionBits - 1)
	switch len(k) {
	case 1:
		r0, k0 := src[:rowLen], k[0]
		for i := range dst {
			dst[i] = clip8(half + int32(r0[i])*k0)
		}
	case 2:
		r0, r1, k0, k1 := src[:rowLen], src[rowLen:2*rowLen], k[0], k[1]
		for i := range dst {
			dst[i] = clip8(half + int32(r0[i])*k0 + int32(r1[i])*k1)
		}
	case 3:
		r0, r1, r2 := src[:rowLen], src[rowLen:2*rowLen], src[2*rowLen:3*rowLen]
		k0, k1, k2 := k[0], k[1], k[2]
		for i := range dst {
			dst[i] = clip8(half + int32(r0[i])*k0 + int32(r1[i])*k1 + int32(r2[i])*k2)
		}
	default:
		for i := range dst {
			acc := int32(half)
			for j, kj := range k {
				acc += int32(src[j*rowLen+i]) * kj
			}
			dst[i] = clip8(acc)
		}
	}
}

// resampleRow computes one output row of the horizontal pass.
func resampleRow(dst, src []uint8, ch int, c coeffs) {
	const half = 1 << (precisionBits - 1)
	if ch == 3 {
		for i, start := range c.start {
			k := c.k[i*c.ksize : i*c.ksize+c.n[i]]
			in := src[start*3 : (start+len(k))*3]
			s0, s1, s2 := int32(half), int32(half), int32(half)
			for j, kj := range k {
				p := in[j*3 : j*3+3 : j*3+3]
				s0 += int32(p[0]) * kj
				s1 += int32(p[1]) * kj
				s2 += int32(p[2]) * kj
			}
			d := dst[i*3 : i*3+3 : i*3+3]
			d[0], d[1], d[2] = clip8(s0), clip8(s1), clip8(s2)
		}
		return
	}
	var acc [4]int32
	for i, start := range c.start {
		k := c.k[i*c.ksize : i*c.ksize+c.n[i]]
		in := src[start*ch:]
		for ci := range ch {
			acc[ci] = half
		}
		for j, kj := range k {
			p := in[j*ch : j*ch+ch]
			for ci := range ch {
				acc[ci] += int32(p[ci]) * kj
			}
		}
		for ci := range ch {
			dst[i*ch+ci] = clip8(acc[ci])
		}
	}
}

// parallelRows calls f on contiguous row ranges covering [0, n), on up to
// GOMAXPROCS goroutines, and waits for them.
func parallelRows(n int, f func(y0, y1 int)) {
	workers := min(runtime.GOMAXPROCS(0), n/16+1)
	if workers <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := range workers {
		y0, y1 := n*i/workers, n*(i+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(y0, y1)
		}()
	}
	wg.Wait()
}
