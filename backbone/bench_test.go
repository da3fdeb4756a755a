package backbone

import (
	"math/rand"
	"syscall"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/nn"
)

// Benchmarks of the ResNet-101 forward pass (nn.Executor, BN folded into the
// convolutions) and of a training step (TapeMachine + Grad, frozen BN as nn.Affine).
// scripts/bench_backbone.py runs each in its own process next to torch and prints the
// ratios; peak-RSS-MB is the process's peak resident set size (getrusage), so run one
// benchmark per process to read it.

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

func benchForward(b *testing.B, depth, h, w int, c4 bool) {
	rng := rand.New(rand.NewSource(1))
	g := G.NewGraph()
	r, err := New(g, Config{Depth: depth, NumClasses: 1000, Inference: true}, rng)
	if err != nil {
		b.Fatal(err)
	}
	x := benchInput(g, 1, h, w, rng)
	var out *G.Node
	if c4 {
		out, err = r.C4(x)
	} else {
		out, err = r.Logits(x)
	}
	if err != nil {
		b.Fatal(err)
	}
	e, err := nn.NewExecutor(g, out)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if err := e.Run(); err != nil { // warm-up: oneDNN primitives, buffers
		b.Fatal(err)
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
}

// BenchmarkResNet101C4Forward600x1000: the detector's trunk on one 600x1000 image.
func BenchmarkResNet101C4Forward600x1000(b *testing.B) { benchForward(b, 101, 600, 1000, true) }

// BenchmarkResNet101Forward224: the classifier on one 224x224 image.
func BenchmarkResNet101Forward224(b *testing.B) { benchForward(b, 101, 224, 224, false) }

// BenchmarkResNet101TrainStep224: forward + backward of sum(logits) for a batch of 2
// 224x224 images, frozen BN, freeze-at 2 (Detectron's default), gradients zeroed
// before each step.
func BenchmarkResNet101TrainStep224(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	g := G.NewGraph()
	r, err := New(g, Config{Depth: 101, NumClasses: 1000, FreezeAt: 2}, rng)
	if err != nil {
		b.Fatal(err)
	}
	x := benchInput(g, 2, 224, 224, rng)
	logits, err := r.Logits(x)
	if err != nil {
		b.Fatal(err)
	}
	loss, err := G.Sum(logits)
	if err != nil {
		b.Fatal(err)
	}
	params := r.Learnables()
	if _, err := G.Grad(loss, params...); err != nil {
		b.Fatal(err)
	}
	m := G.NewTapeMachine(g, G.BindDualValues(params...))
	defer m.Close()
	step := func() {
		for _, p := range params {
			if gr, err := p.Grad(); err == nil {
				if d, ok := gr.(*tensor.Dense); ok {
					d.Zero()
				}
			}
		}
		m.Reset()
		if err := m.RunAll(); err != nil {
			b.Fatal(err)
		}
	}
	step()
	b.ResetTimer()
	cpu0 := cpuSeconds()
	for i := 0; i < b.N; i++ {
		step()
	}
	b.StopTimer()
	report(b, cpu0)
}
