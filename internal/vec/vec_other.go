//go:build !amd64

package vec

// hasAVX2 is false off amd64: every kernel runs its plain Go form.
var hasAVX2 = false

func bilerpAVX2(dst, a, b, c, d *float32, n int, w *[4]float32, add bool) {
	panic("vec: no AVX2 kernels off amd64")
}
func divAVX2(dst, src *float32, n int, q float32, mul bool) { panic("vec: no AVX2 kernels off amd64") }
func divBF16AVX2(dst *uint16, src *float32, n int, q float32, mul bool) {
	panic("vec: no AVX2 kernels off amd64")
}
func accumBF16AVX2(acc *float64, x *uint16, n int) { panic("vec: no AVX2 kernels off amd64") }
func addMulDivAVX2(dst, x *float32, n int, w, q float32, mul bool) {
	panic("vec: no AVX2 kernels off amd64")
}
