package nn

import (
	"fmt"
	"math/rand"
	"testing"

	"gorgonia.org/tensor"

	"resdet/internal/testutil"
)

// BenchmarkLinearBackends compares OpenBLAS and oneDNN's dnnl_sgemm (on the engine thread) on the
// Linear forward product y[N, Out] = x[N, In]·w[Out, In]ᵀ, and the bf16 Linear (LinearOpts.BF16
// with ConstWeights: oneDNN's bf16 1x1 convolution, linearOp.conv) where the CPU has bf16.
// 250x12544x1024 is the FPN box head's fc6 on a chunk of 250 RoIs.
func BenchmarkLinearBackends(b *testing.B) {
	for _, s := range []struct{ n, in, out int }{{512, 2048, 1024}, {512, 1024, 81}, {1, 2048, 1000}, {250, 12544, 1024}} {
		rng := rand.New(rand.NewSource(1))
		x, w := randSlice(rng, s.n*s.in), randSlice(rng, s.out*s.in)
		y := make([]float32, s.n*s.out)
		flop := 2 * float64(s.n) * float64(s.in) * float64(s.out)
		name := fmt.Sprintf("%dx%dx%d", s.n, s.in, s.out)
		b.Run("openblas/"+name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				sgemmOpenBLAS(false, true, s.n, s.out, s.in, 1, x, s.in, w, s.in, 0, y, s.out)
			}
			b.ReportMetric(flop*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run("dnnl-bf16/"+name, func(b *testing.B) {
			testutil.BF16(b, BF16Error())
			op := &linearOp{n: s.n, in: s.in, out: s.out, bf16: true, constW: true}
			xv := tensor.New(tensor.WithShape(s.n, s.in), tensor.WithBacking(x))
			wv := tensor.New(tensor.WithShape(s.out, s.in), tensor.WithBacking(w))
			yv := tensor.New(tensor.WithShape(s.n, s.out), tensor.WithBacking(y))
			if _, err := op.UsePreallocDo(yv, xv, wv); err != nil { // converts w once
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := op.UsePreallocDo(yv, xv, wv); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(flop*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run("dnnl/"+name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := sgemm(false, true, s.n, s.out, s.in, 1, x, s.in, w, s.in, 0, y, s.out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(flop*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
