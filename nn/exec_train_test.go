package nn

import (
	"fmt"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
)

// trainNet is a small classifier: MaxPool -> Affine+ReLU -> BatchNorm (eval)
// -> GlobalAvgPool -> Linear, with a squared-error loss against fixed targets.
func trainNet(t *testing.T) (g *G.ExprGraph, loss *G.Node, params []*G.Node) {
	t.Helper()
	rng := rand.New(rand.NewSource(11))
	g = G.NewGraph()
	val := func(name string, shape ...int) *G.Node {
		n := 1
		for _, d := range shape {
			n *= d
		}
		return G.NewTensor(g, G.Float32, len(shape), G.WithShape(shape...), G.WithName(name),
			G.WithValue(tensorOf(randSlice(rng, n), shape...)))
	}
	must := mustNode(t)
	x := val("x", 2, 3, 9, 8)
	s, b := val("scale", 3), val("shift", 3)
	gamma, beta := val("gamma", 3), val("beta", 3)
	w, lb := val("w", 4, 3), val("lb", 4)
	target := val("target", 2, 4)
	h := must(MaxPool2d(x, 3, 2, 1))
	h = must(Affine(h, s, b, nil, true))
	h = must(BatchNorm(h, gamma, beta, NewBNStats(3), false))
	h = must(GlobalAvgPool(h))
	h = must(Linear(h, w, lb))
	d := must(G.Sub(h, target))
	loss = must(G.Sum(must(G.HadamardProd(d, d))))
	return g, loss, []*G.Node{s, b, gamma, beta, w, lb}
}

// TestExecutorTrainingMatchesTape runs three SGD steps with the Executor and
// GradValues, and the same steps with a TapeMachine (gradients zeroed between
// runs), and compares the parameters.
func TestExecutorTrainingMatchesTape(t *testing.T) {
	const steps = 3
	// TapeMachine reference.
	g1, loss1, p1 := trainNet(t)
	if _, err := G.Grad(loss1, p1...); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g1, G.BindDualValues(p1...))
	defer vm.Close()
	solver1 := G.NewVanillaSolver(G.WithLearnRate(0.05))
	for i := 0; i < steps; i++ {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		if err := solver1.Step(G.NodesToValueGrads(p1)); err != nil {
			t.Fatal(err)
		}
	}
	// Executor.
	g2, loss2, p2 := trainNet(t)
	grads, err := G.Grad(loss2, p2...)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewExecutor(g2, append(grads, loss2)...)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	vg, err := GradValues(p2, grads)
	if err != nil {
		t.Fatal(err)
	}
	solver2 := G.NewVanillaSolver(G.WithLearnRate(0.05))
	var losses []float32
	for i := 0; i < steps; i++ {
		if err := e.Run(); err != nil {
			t.Fatal(err)
		}
		losses = append(losses, loss2.Value().Data().(float32))
		if err := solver2.Step(vg); err != nil {
			t.Fatal(err)
		}
	}
	if !(losses[steps-1] < losses[0]) {
		t.Errorf("loss did not decrease: %v", losses)
	}
	for i := range p1 {
		expectClose(t, fmt.Sprint("parameter ", p1[i].Name()), p2[i].Value().Data().([]float32),
			p1[i].Value().Data().([]float32), 1e-5, 1e-6)
	}
}
