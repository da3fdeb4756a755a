package detection

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/box"
	"resdet/nn"

	"resdet/internal/testutil/gradtest"
)

// TestLossesRunInExecutor builds both losses and their gradients and runs
// them through nn.Executor (the memory-recycling runner training uses), then
// checks the values and gradients against a TapeMachine run of the same
// graph, over two runs (buffers recycled on the second).
func TestLossesRunInExecutor(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	const a, h, w, k, nc = 3, 4, 5, 6, 4
	l := a * h * w
	s := RPNSample{Targets: AnchorTargets{Labels: make([]int, l), Deltas: make([]box.Delta, l)}}
	for i := range l {
		s.Targets.Labels[i] = r.Intn(2)
		s.Targets.Deltas[i] = box.Delta{float32(r.NormFloat64()), float32(r.NormFloat64()), 0.1, -0.2}
		if s.Targets.Labels[i] == 1 {
			s.Pos = append(s.Pos, i)
		} else {
			s.Neg = append(s.Neg, i)
		}
	}
	pt := ProposalTargets{Labels: []int{0, 1, 3, 0, 2, 2}, Deltas: make([]box.Delta, k)}
	shapes := [][]int{{1, a, h, w}, {1, 4 * a, h, w}, {k, nc}, {k, 4 * nc}}
	datas := make([][]float32, len(shapes))
	for i, sh := range shapes {
		datas[i] = make([]float32, tensor.Shape(sh).TotalSize())
		for j := range datas[i] {
			datas[i][j] = float32(r.NormFloat64())
		}
	}
	build := func() (gradtest.Graph, []*G.Node) {
		lg := gradtest.NewGraph(shapes, datas)
		rl, err := NewRPNLoss(lg.Inputs[0], lg.Inputs[1], []RPNSample{s})
		lo, lb := rpnNodes(rl)
		if err != nil {
			t.Fatal(err)
		}
		fl, err := NewFastRCNNLoss(lg.Inputs[2], lg.Inputs[3], []ProposalTargets{pt})
		lc, lr := fastRCNNNodes(fl)
		if err != nil {
			t.Fatal(err)
		}
		total := G.Must(G.Add(G.Must(G.Add(lo, lb)), G.Must(G.Add(lc, lr))))
		grads, err := G.Grad(total, lg.Inputs...)
		if err != nil {
			t.Fatal(err)
		}
		return lg, append([]*G.Node{lo, lb, lc, lr}, grads...)
	}
	lg, outs := build()
	vm := G.NewTapeMachine(lg.G)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	want := make([][]float32, len(outs))
	for i, o := range outs {
		want[i] = lossValues(t, o.Value())
	}
	lg2, outs2 := build()
	ex, err := nn.NewExecutor(lg2.G, outs2...)
	if err != nil {
		t.Fatalf("NewExecutor: %v", err)
	}
	defer ex.Close()
	for run := 0; run < 2; run++ {
		if err := ex.Run(); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		for i, o := range outs2 {
			if got := lossValues(t, o.Value()); !slices.Equal(got, want[i]) {
				t.Errorf("run %d output %d: %v, TapeMachine %v", run, i, got, want[i])
			}
		}
	}
}

func lossValues(t *testing.T, v G.Value) []float32 {
	t.Helper()
	switch x := v.(type) {
	case *G.F32:
		return []float32{float32(*x)}
	case tensor.Tensor:
		if d, ok := x.Data().([]float32); ok {
			return slices.Clone(d)
		}
		if f, ok := x.Data().(float32); ok {
			return []float32{f}
		}
	}
	t.Fatalf("value %T (%v)", v, fmt.Sprint(v))
	return nil
}
