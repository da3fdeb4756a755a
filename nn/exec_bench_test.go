package nn

import (
	"fmt"
	"math/rand"
	"runtime"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// stackGraph builds depth fused Affine(+residual, ReLU) layers on x [shape],
// each taking the previous two activations (a residual chain), and returns
// the graph, the trainable scales and shifts and the last activation.
func stackGraph(b *testing.B, shape tensor.Shape, depth int, frozen bool) (*G.ExprGraph, *G.Node, []*G.Node, *G.Node) {
	rng := rand.New(rand.NewSource(7))
	g := G.NewGraph()
	c := shape[1]
	x := G.NewTensor(g, G.Float32, 4, G.WithShape(shape...), G.WithName("x"),
		G.WithValue(benchVal(rng, shape...)))
	var params []*G.Node
	cur, prev := x, x
	for i := 0; i < depth; i++ {
		s := G.NewVector(g, G.Float32, G.WithShape(c), G.WithName(fmt.Sprint("s", i)), G.WithValue(benchVal(rng, c)))
		sh := G.NewVector(g, G.Float32, G.WithShape(c), G.WithName(fmt.Sprint("b", i)), G.WithValue(benchVal(rng, c)))
		params = append(params, s, sh)
		next, err := AffineWith(cur, s, sh, prev, AffineOpts{ReLU: true, FrozenParams: frozen})
		if err != nil {
			b.Fatal(err)
		}
		prev, cur = cur, next
	}
	return g, x, params, cur
}

// boundBytes sums the float32 values and gradients bound to the graph's nodes:
// what a TapeMachine keeps alive after a run.
func boundBytes(g *G.ExprGraph) int64 {
	var n int64
	for _, nd := range g.AllNodes() {
		if v := nd.Value(); v != nil && nd.Op() != nil {
			n += int64(v.MemSize())
		}
		if gv, err := nd.Grad(); err == nil && gv != nil && nd.Op() == nil {
			n += int64(gv.MemSize())
		}
	}
	return n
}

// BenchmarkStackMemory compares, on a chain of 12 fused Affine layers over
// [1, 256, 75, 125] (9.6 MB per activation), the memory of gorgonia's
// TapeMachine (forward, and forward+backward w.r.t. x) with the Executor's
// (forward). Reported: MB allocated per run, MB the machine keeps bound after
// a run (tape) or its pool's peak (executor).
func BenchmarkStackMemory(b *testing.B) {
	shape := tensor.Shape{1, 256, 75, 125}
	const depth = 12
	act := float64(4*shape.TotalSize()) / 1e6
	report := func(b *testing.B, before runtime.MemStats, kept int64) {
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/1e6/float64(b.N), "MB-alloc/run")
		b.ReportMetric(float64(kept)/1e6, "MB-kept")
		b.ReportMetric(float64(kept)/1e6/act, "activations-kept")
	}
	for _, tc := range []struct {
		name               string
		executor, backward bool
	}{
		{"tape_forward", false, false},
		{"tape_forward_backward", false, true},
		{"executor_forward", true, false},
		// The Executor also runs the symbolic backward graph G.Grad builds:
		// with the gradients as outputs it frees each activation after its
		// last use in the backward pass.
		{"executor_forward_backward", true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g, x, _, y := stackGraph(b, shape, depth, true)
			outs := []*G.Node{y}
			if tc.backward {
				loss, err := G.Sum(y)
				if err != nil {
					b.Fatal(err)
				}
				grads, err := G.Grad(loss, x)
				if err != nil {
					b.Fatal(err)
				}
				outs = append(grads, loss)
			}
			if !tc.executor {
				runTape(b, g, report)
				return
			}
			e, err := NewExecutor(g, outs...)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			runExecutor(b, e, report)
		})
	}
}

// runTape runs g's TapeMachine b.N times and reports what the graph keeps
// bound afterwards (boundBytes).
func runTape(b *testing.B, g *G.ExprGraph, report func(*testing.B, runtime.MemStats, int64)) {
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < b.N; i++ {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			b.Fatal(err)
		}
	}
	report(b, before, boundBytes(g))
}

// runExecutor runs e once to fill its pool, then b.N times.
func runExecutor(b *testing.B, e *Executor, report func(*testing.B, runtime.MemStats, int64)) {
	if err := e.Run(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < b.N; i++ {
		if err := e.Run(); err != nil {
			b.Fatal(err)
		}
	}
	report(b, before, e.Stats().PeakLiveBytes)
}
