package optim

import (
	"fmt"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// BenchmarkSGDStep times one step over 10M parameters in 40 tensors (a
// quarter of ResNet-101 C4's trainable weights), momentum and weight decay
// on, after the first step (buffers allocated). optim/testdata/bench_sgd.py
// times torch.optim.SGD on the same sizes.
func BenchmarkSGDStep(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	g := G.NewGraph()
	var vg []G.ValueGrad
	const n, size = 40, 250_000
	for i := range n {
		mk := func(name string) *G.Node {
			d := make([]float32, size)
			for j := range d {
				d[j] = float32(r.NormFloat64())
			}
			return G.NewVector(g, tensor.Float32, G.WithShape(size), G.WithName(name),
				G.WithValue(tensor.New(tensor.WithShape(size), tensor.WithBacking(d))))
		}
		vg = append(vg, WithGrad(mk(fmt.Sprintf("p%d", i)), mk(fmt.Sprintf("g%d", i))))
	}
	s, err := NewSGD(vg, DefaultSGDConfig())
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Step(0.01); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(n * size * 4)
	for b.Loop() {
		if err := s.Step(0.01); err != nil {
			b.Fatal(err)
		}
	}
}
