// Package vec holds the float32 vector kernels of the engine's Go-side ops
// (RoIAlign's sampling, its division by the sample count and its bf16
// output): AVX2 assembly on amd64 CPUs that have AVX2, plain Go elsewhere
// and for the last len%8 (Bilerp, Div, AccumBF16) or len%16 (DivBF16)
// elements. The C4 box head's mean over a RoI's positions sums with
// AccumBF16.
//
// Every kernel gives the bits of its plain Go form, element for element:
// the assembly multiplies and adds separately (no fused multiply-add), in
// the same order, and divides with IEEE division, as Go's scalar code does.
// The tests compare the two on special values (signed zeros, subnormals,
// infinities, NaNs, rounding ties) and random ones.
package vec

import (
	"fmt"
	"math"
)

// Bilerp sets dst[i] = s + t[i] for every i, where
//
//	t[i] = ((w[0]*a[i] + w[1]*b[i]) + w[2]*c[i]) + w[3]*d[i]
//
// (each product and sum rounded to float32, in that order) and s is dst[i]
// if add, else 0. That is one bilinear sample of four cells (a, b, c, d:
// the same run of channels at the sample's four neighbouring pixels) added
// to a bin's sum, as torchvision's RoIAlign computes it (its bin sum starts
// at 0, so the first sample is 0 + t: +0 where t is -0). a, b, c and d must
// be at least as long as dst.
func Bilerp(dst, a, b, c, d []float32, w *[4]float32, add bool) {
	n := checkLen("Bilerp", len(dst), len(a), len(b), len(c), len(d))
	i := vectorPart(n, 8)
	if i > 0 {
		bilerpAVX2(&dst[0], &a[0], &b[0], &c[0], &d[0], i, w, add)
	}
	bilerpGo(dst[i:n], a[i:n], b[i:n], c[i:n], d[i:n], w, add)
}

// bilerpGo is Bilerp in plain Go. The conversions round every product to
// float32, so that no compiler fuses a multiply and an add (Go allows it
// without them, and does so for GOAMD64=v3).
func bilerpGo(dst, a, b, c, d []float32, w *[4]float32, add bool) {
	for i := range dst {
		t := float32(w[0]*a[i]) + float32(w[1]*b[i])
		t += float32(w[2] * c[i])
		t += float32(w[3] * d[i])
		s := float32(0)
		if add {
			s = dst[i]
		}
		dst[i] = s + t
	}
}

// AddMulDiv adds x[i]*w / q to dst[i] for every i: the product rounded to
// float32, then divided by q (IEEE division), then added, as torchvision's
// RoIAlign backward pass adds a sample's share of a bin's gradient to a
// feature cell (g*w / count). A power-of-two q takes a multiplication by
// 1/q, which gives the same bits. x must be at least as long as dst.
func AddMulDiv(dst, x []float32, w, q float32) {
	n := checkLen("AddMulDiv", len(dst), len(x))
	i := vectorPart(n, 8)
	if i > 0 {
		d, mul := divisor(q)
		addMulDivAVX2(&dst[0], &x[0], i, w, d, mul)
	}
	for ; i < n; i++ {
		dst[i] += float32(x[i]*w) / q
	}
}

// divisor is what the assembly kernels divide by: 1/q and mul = true for
// a power-of-two q (pow2), which they then multiply by, else q itself.
func divisor(q float32) (d float32, mul bool) {
	if pow2(q) {
		return 1 / q, true
	}
	return q, false
}

// pow2 reports whether q is a normal positive power of two. Its reciprocal
// is then exact (2^-127 as a subnormal), and x/q and x*(1/q) are the same
// correctly rounded value of the same real number, overflow included.
func pow2(q float32) bool {
	b := math.Float32bits(q)
	e := b >> 23 & 0xff
	return b&0x807fffff == 0 && e >= 1 && e <= 254
}

// Div sets dst[i] = src[i] / q (IEEE division, correctly rounded). dst and
// src may be the same slice; src must be at least as long as dst. A
// power-of-two q takes a multiplication by 1/q, which gives the same bits.
func Div(dst, src []float32, q float32) {
	n := checkLen("Div", len(dst), len(src))
	i := vectorPart(n, 8)
	if i > 0 {
		d, mul := divisor(q)
		divAVX2(&dst[0], &src[0], i, d, mul)
	}
	for ; i < n; i++ {
		dst[i] = src[i] / q
	}
}

// DivBF16 sets dst[i] = RoundBF16(src[i] / q): the quotient in float32,
// then rounded to bf16. src must be at least as long as dst. A
// power-of-two q takes a multiplication by 1/q, which gives the same bits.
func DivBF16(dst []uint16, src []float32, q float32) {
	n := checkLen("DivBF16", len(dst), len(src))
	i := vectorPart(n, 16)
	if i > 0 {
		d, mul := divisor(q)
		divBF16AVX2(&dst[0], &src[0], i, d, mul)
	}
	for ; i < n; i++ {
		dst[i] = RoundBF16(src[i] / q)
	}
}

// AccumBF16 adds the bfloat16 values x[i] (bits, as RoundBF16 returns
// them) to acc[i] in float64: acc[i] += float64(x[i]) for every i. The
// widening is exact and each sum is rounded to float64 as Go's scalar
// addition rounds it, so a run of calls sums in the order of the calls. x
// must be at least as long as acc.
func AccumBF16(acc []float64, x []uint16) {
	n := checkLen("AccumBF16", len(acc), len(x))
	i := vectorPart(n, 8)
	if i > 0 {
		accumBF16AVX2(&acc[0], &x[0], i)
	}
	for ; i < n; i++ {
		acc[i] += float64(math.Float32frombits(uint32(x[i]) << 16))
	}
}

// checkLen returns n, the output length, after checking that every source
// is at least that long (a shorter one is the caller's bug: it panics,
// naming the kernel, before anything is written).
func checkLen(kernel string, n int, sources ...int) int {
	for _, m := range sources {
		if m < n {
			panic(fmt.Sprintf("vec: %s: a source of %d elements for %d outputs", kernel, m, n))
		}
	}
	return n
}

// vectorPart returns how many of n elements the assembly kernel takes: the
// largest multiple of step (the elements it handles per iteration) not
// above n, or 0 without AVX2. The plain Go form does the rest.
func vectorPart(n, step int) int {
	if !hasAVX2 {
		return 0
	}
	return n - n%step
}

// RoundBF16 returns the bfloat16 bits of x rounded to nearest, ties to
// even, as oneDNN's float32 -> bf16 conversion does: the top 16 bits of x
// after adding 0x7fff plus the lowest kept bit. A NaN stays a NaN of its
// sign and top payload bits, made quiet (bit 6 of the result set); values
// beyond the largest bf16 become infinities. Subnormal x round like the
// rest; oneDNN's conversion on AVX512-BF16 CPUs (vcvtneps2bf16) flushes
// them to a zero of their sign instead, a difference below 1.2e-38.
func RoundBF16(x float32) uint16 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep the sign and top bits, set the quiet bit
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}
