package vec

import "golang.org/x/sys/cpu"

// hasAVX2 selects the assembly kernels (vec_amd64.s). Tests turn it off to
// run the plain Go forms.
var hasAVX2 = cpu.X86.HasAVX2

// bilerpAVX2 is Bilerp on the first n elements; n is a multiple of 8.
//
//go:noescape
func bilerpAVX2(dst, a, b, c, d *float32, n int, w *[4]float32, add bool)

// divAVX2 is Div on the first n elements; n is a multiple of 8. With mul,
// q is the reciprocal of the divisor and multiplies.
//
//go:noescape
func divAVX2(dst, src *float32, n int, q float32, mul bool)

// divBF16AVX2 is DivBF16 on the first n elements; n is a multiple of 16.
// With mul, q is the reciprocal of the divisor and multiplies.
//
//go:noescape
func divBF16AVX2(dst *uint16, src *float32, n int, q float32, mul bool)

// accumBF16AVX2 is AccumBF16 on the first n elements; n is a multiple of
// 8.
//
//go:noescape
func accumBF16AVX2(acc *float64, x *uint16, n int)

// addMulDivAVX2 is AddMulDiv on the first n elements; n is a multiple of
// 8. With mul, q is the reciprocal of the divisor and multiplies.
//
//go:noescape
func addMulDivAVX2(dst, x *float32, n int, w, q float32, mul bool)
