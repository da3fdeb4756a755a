package fpn

import (
	"fmt"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/nn"
)

// BenchmarkFPNForward runs the pyramid of an 800x1216 image through a
// ResNet-50's C2..C5 (256x200x304, 512x100x152, 1024x50x76, 2048x25x38) with
// 256 output channels, one image, by nn.Executor: inference (ConstWeights)
// for torchvision v1 (bias) and v2 (frozen BN), and a training step
// (forward and the gradients of sum(P2..P6) w.r.t. the parameters and C2..C5)
// for v1. Run it with -benchtime 1x on a loaded machine to check it works;
// timings need an idle one.
func BenchmarkFPNForward(b *testing.B) {
	sizes := [4][2]int{{200, 304}, {100, 152}, {50, 76}, {25, 38}}
	cases := []struct {
		name  string
		norm  Norm
		train bool
	}{
		{name: "v1_800x1216", norm: NoNorm},
		{name: "v2_800x1216", norm: FrozenBN},
		{name: "v1_train_800x1216", norm: NoNorm, train: true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			rng := rand.New(rand.NewSource(1))
			g := G.NewGraph()
			f, err := New(g, Config{In: resnet50In, Norm: tc.norm, ConstWeights: !tc.train}, rng)
			if err != nil {
				b.Fatal(err)
			}
			in := make([]*G.Node, 4)
			for i, s := range sizes {
				shape := []int{1, resnet50In[i].Channels, s[0], s[1]}
				data := make([]float32, 1*shape[1]*s[0]*s[1])
				for j := range data {
					data[j] = float32(rng.NormFloat64())
				}
				v := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
				in[i] = G.NewTensor(g, tensor.Float32, 4, G.WithShape(shape...), G.WithName(fmt.Sprintf("c%d", i+2)), G.WithValue(v))
			}
			out, err := f.Forward(in)
			if err != nil {
				b.Fatal(err)
			}
			targets := out
			if tc.train {
				var loss *G.Node
				for _, o := range out {
					s := G.Must(G.Sum(o))
					if loss == nil {
						loss = s
					} else {
						loss = G.Must(G.Add(loss, s))
					}
				}
				grads, err := G.Grad(loss, append(f.Learnables(), in...)...)
				if err != nil {
					b.Fatal(err)
				}
				targets = append(grads, loss)
			}
			e, err := nn.NewExecutor(g, targets...)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := e.Run(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(e.Stats().PeakLiveBytes)/(1<<20), "peak-live-MB")
		})
	}
}
