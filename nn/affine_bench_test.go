package nn

import (
	"fmt"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// benchShapes are ResNet-sized activations: C2 at 600x1000 (stride 4) and C4
// (stride 16).
var benchShapes = []tensor.Shape{{1, 256, 150, 250}, {1, 1024, 38, 63}}

func benchVal(rng *rand.Rand, shape ...int) *tensor.Dense {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return tensorOf(randSlice(rng, n), shape...)
}

// benchOp runs op.UsePreallocDo into a fixed buffer and reports the
// memory traffic in GB/s (bytes read and written per run given by bytes).
func benchOp(b *testing.B, op interface {
	G.Op
	G.UsePreallocDoer
}, bytes int64, inputs ...G.Value) {
	s, err := op.InferShape()
	if err != nil {
		b.Fatal(err)
	}
	out := tensor.New(tensor.WithShape(s...), tensor.Of(tensor.Float32))
	b.SetBytes(bytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := op.UsePreallocDo(out, inputs...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAffine(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	for _, s := range benchShapes {
		x, r := benchVal(rng, s...), benchVal(rng, s...)
		sc, sh := benchVal(rng, s[1]), benchVal(rng, s[1])
		size := int64(4 * s.TotalSize())
		b.Run(fmt.Sprintf("fwd/%v", s), func(b *testing.B) {
			benchOp(b, &affineOp{shape: s}, 2*size, x, sc, sh)
		})
		b.Run(fmt.Sprintf("fwd_res_relu/%v", s), func(b *testing.B) {
			benchOp(b, &affineOp{shape: s, relu: true, residual: true}, 3*size, x, sc, sh, r)
		})
		// Backward of the fused op: dx (reads y, gy; writes dx), the residual's
		// gradient (ReLU mask) and the parameter sums (reads x, y, gy).
		b.Run(fmt.Sprintf("bwd_x_relu/%v", s), func(b *testing.B) {
			benchOp(b, &affineGradXOp{shape: s, relu: true}, 3*size, x, r, sc)
		})
		b.Run(fmt.Sprintf("bwd_residual_relu/%v", s), func(b *testing.B) {
			benchOp(b, &reluGradOp{shape: s}, 3*size, x, r)
		})
		b.Run(fmt.Sprintf("bwd_params_relu/%v", s), func(b *testing.B) {
			benchOp(b, &affineGradParamsOp{shape: s, relu: true}, 3*size, x, r, r)
		})
	}
}

func BenchmarkReLU(b *testing.B) {
	rng := rand.New(rand.NewSource(2))
	s := benchShapes[0]
	x := benchVal(rng, s...)
	b.Run(fmt.Sprintf("fwd/%v", s), func(b *testing.B) {
		benchOp(b, &reluOp{shape: s}, int64(8*s.TotalSize()), x)
	})
}

func BenchmarkBatchNormTrain(b *testing.B) {
	rng := rand.New(rand.NewSource(3))
	s := tensor.Shape{8, 64, 56, 56}
	x, gy := benchVal(rng, s...), benchVal(rng, s...)
	g, be := benchVal(rng, s[1]), benchVal(rng, s[1])
	st := NewBNStats(s[1])
	b.Run(fmt.Sprintf("fwd/%v", s), func(b *testing.B) {
		benchOp(b, &bnOp{shape: s, st: st, training: true}, int64(12*s.TotalSize()), x, g, be)
	})
	b.Run(fmt.Sprintf("bwd_x/%v", s), func(b *testing.B) {
		benchOp(b, &bnGradOp{bn: bnOp{shape: s, st: st, training: true}}, int64(20*s.TotalSize()), x, g, gy)
	})
}

// BenchmarkAffineFrozenStep times what a training step runs for one frozen
// BN + residual + ReLU: the forward, dx and the residual's gradient (no
// parameter gradients, AffineOpts.FrozenParams).
func BenchmarkAffineFrozenStep(b *testing.B) {
	rng := rand.New(rand.NewSource(6))
	for _, s := range benchShapes {
		x, r, gy := benchVal(rng, s...), benchVal(rng, s...), benchVal(rng, s...)
		sc, sh := benchVal(rng, s[1]), benchVal(rng, s[1])
		y := tensor.New(tensor.WithShape(s...), tensor.Of(tensor.Float32))
		dx := tensor.New(tensor.WithShape(s...), tensor.Of(tensor.Float32))
		dr := tensor.New(tensor.WithShape(s...), tensor.Of(tensor.Float32))
		fwd := &affineOp{shape: s, relu: true, residual: true, frozen: true}
		gx := &affineGradXOp{shape: s, relu: true}
		gr := &reluGradOp{shape: s}
		b.Run(fmt.Sprintf("%v", s), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := fwd.UsePreallocDo(y, x, sc, sh, r); err != nil {
					b.Fatal(err)
				}
				if _, err := gx.UsePreallocDo(dx, y, gy, sc); err != nil {
					b.Fatal(err)
				}
				if _, err := gr.UsePreallocDo(dr, y, gy); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
