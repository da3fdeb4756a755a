package nn

import (
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkLinearBackends compares OpenBLAS and oneDNN's dnnl_sgemm (on the engine thread) on the
// Linear forward product y[N, Out] = x[N, In]·w[Out, In]ᵀ.
func BenchmarkLinearBackends(b *testing.B) {
	for _, s := range []struct{ n, in, out int }{{512, 2048, 1024}, {512, 1024, 81}, {1, 2048, 1000}} {
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
