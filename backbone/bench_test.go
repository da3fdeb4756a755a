package backbone

import (
	"math/rand"
	"syscall"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/nn"
)

// Backbone benchmarks, one sub-benchmark per case of benchCases, every one run by
// nn.Executor (recycled buffers). Inference folds frozen BN into the convolutions;
// a training step is forward + backward of sum(output) with frozen BN (nn.Affine),
// freeze-at 2 (Detectron's default: stem and res2 frozen), fresh gradients each run,
// no solver step. scripts/bench_backbone.py runs each case in its own process next
// to the identical torch model and prints the ratios and GFLOP/s; peak-RSS-MB is the
// process's peak resident set size (getrusage), so run one case per process to read it:
//
//	go test -run '^$' -bench '^BenchmarkBackbone$/^r101_train_600x1000$' -benchtime 2x ./backbone

// Outputs a benchmark case runs up to.
const (
	outC4       = "c4"       // conv1 .. conv4_x (the detector's trunk)
	outFeatures = "features" // conv1 .. conv5_x (no pooling, no classifier)
	outLogits   = "logits"   // the whole classifier (1000 classes)
)

// benchCases are the cases of BenchmarkBackbone; scripts/bench_backbone.py has the
// torch twin of each under the same name.
var benchCases = []struct {
	name    string
	depth   int
	n, h, w int // input [n, 3, h, w]
	out     string
	train   bool
}{
	{name: "r50_224", depth: 50, n: 1, h: 224, w: 224, out: outLogits},
	{name: "r50_c4_600x1000", depth: 50, n: 1, h: 600, w: 1000, out: outC4},
	{name: "r101_224", depth: 101, n: 1, h: 224, w: 224, out: outLogits},
	{name: "r101_c4_600x1000", depth: 101, n: 1, h: 600, w: 1000, out: outC4},
	{name: "r50_train_224", depth: 50, n: 2, h: 224, w: 224, out: outLogits, train: true},
	{name: "r101_train_224", depth: 101, n: 2, h: 224, w: 224, out: outLogits, train: true},
	{name: "r101_train_600x1000", depth: 101, n: 1, h: 600, w: 1000, out: outFeatures, train: true},
}

func benchInput(g *G.ExprGraph, n, h, w int, rng *rand.Rand) *G.Node {
	data := make([]float32, n*3*h*w)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	v := tensor.New(tensor.WithShape(n, 3, h, w), tensor.WithBacking(data))
	return G.NewTensor(g, tensor.Float32, 4, G.WithShape(n, 3, h, w), G.WithName("input"), G.WithValue(v))
}

// cpuSeconds is the process's user+system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// report adds the metrics cpu-s/op (CPU time per iteration since cpu0, all threads:
// less sensitive to other processes than wall time) and peak-RSS-MB.
func report(b *testing.B, cpu0 float64) {
	b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MB") // Linux: Maxrss in KiB
	}
}

// BenchmarkBackbone times one forward pass or training step per iteration after a
// warm-up run (oneDNN primitives, buffers); see benchCases.
func BenchmarkBackbone(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			rng := rand.New(rand.NewSource(1))
			g := G.NewGraph()
			cfg := Config{Depth: c.depth, Inference: !c.train, FreezeAt: 2}
			if c.out == outLogits {
				cfg.NumClasses = 1000
			}
			r, err := New(g, cfg, rng)
			if err != nil {
				b.Fatal(err)
			}
			x := benchInput(g, c.n, c.h, c.w, rng)
			var y *G.Node
			switch c.out {
			case outC4:
				y, err = r.C4(x)
			case outFeatures:
				y, err = r.Features(x)
			default:
				y, err = r.Logits(x)
			}
			if err != nil {
				b.Fatal(err)
			}
			outs := G.Nodes{y}
			var vg []G.ValueGrad
			if c.train {
				cost, err := G.Sum(y)
				if err != nil {
					b.Fatal(err)
				}
				params := r.Learnables()
				grads, err := G.Grad(cost, params...)
				if err != nil {
					b.Fatal(err)
				}
				outs = append(G.Nodes{cost}, grads...)
				if vg, err = nn.GradValues(params, grads); err != nil {
					b.Fatal(err)
				}
			}
			e, err := nn.NewExecutor(g, outs...)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			if err := e.Run(); err != nil {
				b.Fatal(err)
			}
			for _, v := range vg { // what a solver would read
				if _, err := v.Grad(); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			cpu0 := cpuSeconds()
			for i := 0; i < b.N; i++ {
				if err := e.Run(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			report(b, cpu0)
		})
	}
}
