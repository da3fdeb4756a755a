package nn

import (
	"fmt"
	"math/rand"
	"testing"

	"gorgonia.org/tensor"
)

// BenchmarkMaxPool2d times the ResNet stem pooling (3x3, stride 2, pad 1) on
// the stem output at 600x1000 ([1, 64, 300, 500]).
func BenchmarkMaxPool2d(b *testing.B) {
	rng := rand.New(rand.NewSource(4))
	s := tensor.Shape{1, 64, 300, 500}
	p := poolGeom{n: s[0], c: s[1], h: s[2], w: s[3], k: 3, s: 2, p: 1}
	p.oh, p.ow = (p.h+2*p.p-p.k)/p.s+1, (p.w+2*p.p-p.k)/p.s+1
	x, gy := benchVal(rng, s...), benchVal(rng, p.out()...)
	y := tensor.New(tensor.WithShape(p.out()...), tensor.Of(tensor.Float32))
	if _, err := (&maxPoolOp{g: p}).UsePreallocDo(y, x); err != nil {
		b.Fatal(err)
	}
	b.Run(fmt.Sprintf("fwd/%v", s), func(b *testing.B) {
		benchOp(b, &maxPoolOp{g: p}, int64(4*(s.TotalSize()+p.out().TotalSize())), x)
	})
	b.Run(fmt.Sprintf("bwd/%v", s), func(b *testing.B) {
		benchOp(b, &maxPoolGradOp{g: p}, int64(4*(2*s.TotalSize()+2*p.out().TotalSize())), x, y, gy)
	})
}

// BenchmarkGlobalAvgPool times the classifier pooling of ResNet-50 at 224x224
// and of the C5 map at 600x1000, and the bf16 C4 box head's mean over one
// chunk of 256 RoIs (res5's bf16 chain output).
func BenchmarkGlobalAvgPool(b *testing.B) {
	rng := rand.New(rand.NewSource(5))
	for _, s := range []tensor.Shape{{8, 2048, 7, 7}, {1, 2048, 19, 32}} {
		x := benchVal(rng, s...)
		b.Run(fmt.Sprintf("fwd/%v", s), func(b *testing.B) {
			benchOp(b, &gapOp{shape: s}, int64(4*s.TotalSize()), x)
		})
	}
	s := tensor.Shape{256, 2048, 7, 7}
	h := make([]uint16, s.TotalSize())
	for i := range h {
		h[i] = RoundBF16(float32(rng.NormFloat64()))
	}
	x := tensor.New(tensor.WithShape(s...), tensor.WithBacking(h))
	b.Run(fmt.Sprintf("fwd-bf16/%v", s), func(b *testing.B) {
		benchOp(b, &gapOp{shape: s, bf16: true}, int64(2*s.TotalSize()), x)
	})
}
