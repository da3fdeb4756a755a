package nn

import (
	"math/rand"
	"strings"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// convBenchLayers are the four representative layers of issue 4 (batch 1).
// Each is conv + frozen BN + ReLU; frozen BN is folded into the weights and
// bias (FoldConvBN), so a layer is one Conv2dFused with bias and ReLU.
// scripts/bench_engine_layers.py runs the torch equivalent and matches the
// names.
var convBenchLayers = []struct {
	name string
	x, w [4]int
	o    ConvOpts
}{
	{name: "3x3_256_38x63", x: [4]int{1, 256, 38, 63}, w: [4]int{256, 256, 3, 3}, o: ConvOpts{Pad: [2]int{1, 1}}},
	{name: "3x3_64_150x250", x: [4]int{1, 64, 150, 250}, w: [4]int{64, 64, 3, 3}, o: ConvOpts{Pad: [2]int{1, 1}}},
	{name: "1x1_1024to256_38x63", x: [4]int{1, 1024, 38, 63}, w: [4]int{256, 1024, 1, 1}},
	{name: "7x7s2_3to64_600x1000", x: [4]int{1, 3, 600, 1000}, w: [4]int{64, 3, 7, 7}, o: ConvOpts{Stride: [2]int{2, 2}, Pad: [2]int{3, 3}}},
}

func convReportGFLOPs(b *testing.B, flops float64, start time.Time) {
	sec := time.Since(start).Seconds() / float64(b.N)
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	b.ReportMetric(sec*1e3, "ms/op")
}

// BenchmarkConvLayer times the four layers. Sub-benchmarks:
//   - fwd, fwd_bf16: the forward op called directly with a reused output
//     buffer (what an executor with buffer reuse does);
//   - fwdbwd: forward, the ReLU mask of the output gradient, backward-data,
//     backward-weights and bias gradient, called directly with reused buffers;
//   - fwd_tape, fwdbwd_tape: the same through gorgonia's TapeMachine
//     (G.Backpropagate for the gradients), which reallocates every output.
func BenchmarkConvLayer(b *testing.B) {
	for _, l := range convBenchLayers {
		g, err := newConvGeom("bench", l.x[:], l.w[:], l.o)
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewSource(1))
		x := convDense(g.X[:], randSlice(rng, convNum(g.X)))
		w := convDense(g.W[:], randSlice(rng, convNum(g.W)))
		bias := convDense([]int{g.W[0]}, randSlice(rng, g.W[0]))
		dy := convDense(g.Y[:], randSlice(rng, convNum(g.Y)))
		fwd := convOp{geom: g, bias: true, relu: true}

		for _, bf16 := range []bool{false, true} {
			name := l.name + "/fwd"
			if bf16 {
				name += "_bf16"
			}
			op := fwd
			op.geom.BF16 = bf16
			b.Run(name, func(b *testing.B) {
				if bf16 {
					convSkipWithoutBF16(b)
				}
				y, err := op.Do(x, w, bias)
				if err != nil {
					b.Fatal(err)
				}
				if impl, err := (dnnlConv{kind: dnnlFwd, geom: op.geom, bias: true, relu: true}).impl(); err == nil {
					b.Logf("%s: oneDNN %s", name, impl)
				}
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					if _, err := op.UsePreallocDo(y, x, w, bias); err != nil {
						b.Fatal(err)
					}
				}
				convReportGFLOPs(b, g.flops(), start)
			})
		}

		b.Run(l.name+"/fwdbwd", func(b *testing.B) {
			// The ops and inputs SymDiff builds for Conv2dFused(x, w, b, nil, o, true).
			y, _ := convOut(nil, g.Y[:])
			mdy, _ := convOut(nil, g.Y[:])
			dx, _ := convOut(nil, g.X[:])
			dw, _ := convOut(nil, g.W[:])
			db, _ := convOut(nil, []int{g.W[0]})
			step := func() error {
				if _, err := fwd.UsePreallocDo(y, x, w, bias); err != nil {
					return err
				}
				if _, err := (convReLUGradOp{shape: g.Y}).UsePreallocDo(mdy, y, dy); err != nil {
					return err
				}
				if _, err := (convBwdDataOp{geom: g}).UsePreallocDo(dx, w, mdy); err != nil {
					return err
				}
				if _, err := (convBwdWeightsOp{geom: g}).UsePreallocDo(dw, x, mdy); err != nil {
					return err
				}
				_, err := convBiasGradOp{shape: g.Y}.UsePreallocDo(db, mdy)
				return err
			}
			if err := step(); err != nil {
				b.Fatal(err)
			}
			for _, k := range []int{dnnlBwdData, dnnlBwdWeights} {
				if impl, err := (dnnlConv{kind: k, geom: g}).impl(); err == nil {
					b.Logf("kind %d: oneDNN %s", k, impl)
				}
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := step(); err != nil {
					b.Fatal(err)
				}
			}
			convReportGFLOPs(b, 3*g.flops(), start)
		})

		for _, train := range []bool{false, true} {
			name := l.name + "/fwd_tape"
			flops := g.flops()
			if train {
				name = l.name + "/fwdbwd_tape"
				flops *= 3
			}
			b.Run(name, func(b *testing.B) {
				eg := G.NewGraph()
				xn := G.NewTensor(eg, tensor.Float32, 4, G.WithShape(g.X[:]...), G.WithName("x"), G.WithValue(x))
				wn := G.NewTensor(eg, tensor.Float32, 4, G.WithShape(g.W[:]...), G.WithName("w"), G.WithValue(w))
				bn := G.NewTensor(eg, tensor.Float32, 1, G.WithShape(g.W[0]), G.WithName("b"), G.WithValue(bias))
				y, err := Conv2dFused(xn, wn, bn, nil, l.o, true)
				if err != nil {
					b.Fatal(err)
				}
				if train {
					dyn := G.NewConstant(dy, G.WithName("dy"))
					if _, err := G.Backpropagate(G.Nodes{y}, G.Nodes{dyn}, G.Nodes{xn, wn, bn}); err != nil {
						b.Fatal(err)
					}
				}
				m := G.NewTapeMachine(eg)
				defer m.Close()
				if err := m.RunAll(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					m.Reset()
					if err := m.RunAll(); err != nil {
						b.Fatal(err)
					}
				}
				convReportGFLOPs(b, flops, start)
			})
		}
	}
}

// convResNetLayer is one fused convolution of a ResNet forward pass.
type convResNetLayer struct {
	x, w     [4]int
	o        ConvOpts
	residual bool // adds the block input (or its downsampled copy), then ReLU
	relu     bool
}

// convResNet101 lists the convolutions of torchvision's ResNet-101 (v1.5:
// stride on the 3x3) for one image of h x w, in execution order, with frozen
// BN folded: stem, then per bottleneck [downsample], 1x1, 3x3, 1x1+residual.
func convResNet101(h, w int) []convResNetLayer {
	var ls []convResNetLayer
	ls = append(ls, convResNetLayer{x: [4]int{1, 3, h, w}, w: [4]int{64, 3, 7, 7}, o: ConvOpts{Stride: [2]int{2, 2}, Pad: [2]int{3, 3}}, relu: true})
	h, w = (h+6-7)/2+1, (w+6-7)/2+1
	h, w = (h+2-3)/2+1, (w+2-3)/2+1 // max pool 3x3/2 pad 1
	in := 64
	for i, st := range []struct{ planes, blocks, stride int }{{64, 3, 1}, {128, 4, 2}, {256, 23, 2}, {512, 3, 2}} {
		_ = i
		for b := 0; b < st.blocks; b++ {
			s := 1
			if b == 0 {
				s = st.stride
			}
			oh, ow := (h-1)/s+1, (w-1)/s+1
			if b == 0 {
				ls = append(ls, convResNetLayer{x: [4]int{1, in, h, w}, w: [4]int{4 * st.planes, in, 1, 1}, o: ConvOpts{Stride: [2]int{s, s}}})
			}
			ls = append(ls,
				convResNetLayer{x: [4]int{1, in, h, w}, w: [4]int{st.planes, in, 1, 1}, relu: true},
				convResNetLayer{x: [4]int{1, st.planes, h, w}, w: [4]int{st.planes, st.planes, 3, 3}, o: ConvOpts{Stride: [2]int{s, s}, Pad: [2]int{1, 1}}, relu: true},
				convResNetLayer{x: [4]int{1, st.planes, oh, ow}, w: [4]int{4 * st.planes, st.planes, 1, 1}, residual: true, relu: true})
			in, h, w = 4*st.planes, oh, ow
		}
	}
	return ls
}

// BenchmarkResNet101Convs runs every convolution of a ResNet-101 forward
// pass at 600x1000 (BN folded, ReLU and residual add fused) through the ops
// directly with reused buffers: the convolution part of the network's time
// (max pool and gorgonia overhead excluded). Inputs are random tensors of the
// right shapes, not the previous layer's output. *_blocked keeps activations
// in the blocked layout (ConvOpts.BlockedIn/BlockedOut), the others convert NCHW at
// every convolution.
func BenchmarkResNet101Convs(b *testing.B) {
	layers := convResNet101(600, 1000)
	for _, mode := range []string{"fp32", "fp32_blocked", "bf16", "bf16_blocked"} {
		bf16 := strings.HasPrefix(mode, "bf16")
		blocked := strings.HasSuffix(mode, "blocked")
		b.Run(mode, func(b *testing.B) {
			if bf16 {
				convSkipWithoutBF16(b)
			}
			rng := rand.New(rand.NewSource(1))
			type step struct {
				op  convOp
				in  []G.Value
				out G.Value
			}
			bufs := map[[4]int]*tensor.Dense{}
			buf := func(s [4]int) *tensor.Dense {
				if d, ok := bufs[s]; ok {
					return d
				}
				d := convDense(s[:], randSlice(rng, convNum(s)))
				bufs[s] = d
				return d
			}
			var steps []step
			var flops float64
			for _, l := range layers {
				o := l.o
				o.BF16 = bf16
				o.BlockedIn = blocked && l.x[1]%convBlock == 0
				o.BlockedOut = blocked
				g, err := newConvGeom("bench", l.x[:], l.w[:], o)
				if err != nil {
					b.Fatal(err)
				}
				flops += g.flops()
				w := convDense(g.W[:], randSlice(rng, convNum(g.W)))
				bias := convDense([]int{g.W[0]}, randSlice(rng, g.W[0]))
				in := []G.Value{buf(g.X), w, bias}
				if l.residual {
					in = append(in, buf(g.Y))
				}
				out, _ := convOut(nil, g.Y[:])
				steps = append(steps, step{op: convOp{geom: g, bias: true, residual: l.residual, relu: l.relu}, in: in, out: out})
			}
			run := func() {
				for _, s := range steps {
					if _, err := s.op.UsePreallocDo(s.out, s.in...); err != nil {
						b.Fatal(err)
					}
				}
			}
			run()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				run()
			}
			convReportGFLOPs(b, flops, start)
			b.ReportMetric(float64(len(steps)), "convs")
			b.ReportMetric(float64(dnnlArenaBytes())/1e6, "arenaMB")
		})
	}
}
