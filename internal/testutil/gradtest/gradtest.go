// Package gradtest builds and runs the small gorgonia graphs with which the
// loss tests of ops and detection check values and gradients: float32 input
// tensors with values (Graph), their loss and gradients (Graph.Run), and a
// check of those gradients against central differences of the forward
// values (CheckFiniteDifference).
//
// It is imported only by _test.go files and imports gorgonia and the
// standard library, none of resdet's packages, so that ops' own tests can
// use it.
package gradtest

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Graph is a graph with float32 input nodes, named in0, in1, …
type Graph struct {
	G      *G.ExprGraph
	Inputs []*G.Node
}

// NewGraph returns a graph whose input i has the shape shapes[i] and a copy
// of datas[i] (row-major, len = product of shapes[i]) as its value.
func NewGraph(shapes [][]int, datas [][]float32) Graph {
	g := G.NewGraph()
	lg := Graph{G: g}
	for i, s := range shapes {
		v := tensor.New(tensor.WithShape(s...), tensor.WithBacking(slices.Clone(datas[i])))
		lg.Inputs = append(lg.Inputs, G.NewTensor(g, tensor.Float32, len(s), G.WithShape(s...),
			G.WithName(fmt.Sprintf("in%d", i)), G.WithValue(v)))
	}
	return lg
}

// Run evaluates the scalar nodes outs and the gradient of their sum w.r.t.
// every input. It returns the values of outs and one gradient per input,
// with the input's length.
func (lg Graph) Run(t testing.TB, outs ...*G.Node) ([]float64, [][]float32) {
	t.Helper()
	total := outs[0]
	for _, o := range outs[1:] {
		var err error
		if total, err = G.Add(total, o); err != nil {
			t.Fatal(err)
		}
	}
	grads, err := G.Grad(total, lg.Inputs...)
	if err != nil {
		t.Fatalf("Grad: %v", err)
	}
	vm := G.NewTapeMachine(lg.G)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatalf("run: %v", err)
	}
	vals := make([]float64, len(outs))
	for i, o := range outs {
		v, err := scalar(o.Value())
		if err != nil {
			t.Fatal(err)
		}
		vals[i] = v
	}
	gs := make([][]float32, len(grads))
	for i, gn := range grads {
		gs[i] = slices.Clone(gn.Value().Data().([]float32))
	}
	return vals, gs
}

// scalar reads a float32 scalar value: a *G.F32 or a one-element tensor.
func scalar(v G.Value) (float64, error) {
	if v != nil {
		switch d := v.Data().(type) {
		case float32:
			return float64(d), nil
		case []float32:
			if len(d) == 1 {
				return float64(d[0]), nil
			}
		}
	}
	return 0, fmt.Errorf("gradtest: value is %T, want a float32 scalar", v)
}

// numericGrad returns central differences of f at x (changed in place and
// restored), step eps, for the elements probe (indices into x).
func numericGrad(x []float32, probe []int, eps float32, f func() float64) []float64 {
	out := make([]float64, len(probe))
	for k, i := range probe {
		v := x[i]
		x[i] = v + eps
		up := f()
		x[i] = v - eps
		down := f()
		x[i] = v
		out[k] = (up - down) / float64(2*eps)
	}
	return out
}

// Case is one loss for CheckFiniteDifferences: its inputs' shapes, the
// standard deviation of their random values, and the builder of its scalar
// nodes from the input nodes.
type Case struct {
	Name   string
	Shapes [][]int
	Scale  float64
	Build  func(in []*G.Node) ([]*G.Node, error)
}

// CheckFiniteDifferences runs CheckFiniteDifference for each case in a
// subtest named after it, on inputs drawn from r (normal, standard
// deviation Scale), input after input and case after case.
func CheckFiniteDifferences(t *testing.T, r *rand.Rand, cases []Case) {
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			datas := make([][]float32, len(tc.Shapes))
			for i, s := range tc.Shapes {
				datas[i] = make([]float32, tensor.Shape(s).TotalSize())
				for j := range datas[i] {
					datas[i][j] = float32(r.NormFloat64() * tc.Scale)
				}
			}
			CheckFiniteDifference(t, tc.Shapes, datas, tc.Build)
		})
	}
}

// CheckFiniteDifference builds the scalar nodes of build twice on inputs
// with the shapes and values of shapes and datas (as NewGraph), and checks
// the analytic gradient of their sum w.r.t. every input element against
// central differences (step 1e-2) of the forward values: each element must
// agree within 2e-3 + 2e-2*|numeric|. It also fails when every analytic
// gradient is zero, since the check then tests nothing.
func CheckFiniteDifference(t testing.TB, shapes [][]int, datas [][]float32, build func(in []*G.Node) ([]*G.Node, error)) {
	t.Helper()
	lg := NewGraph(shapes, datas)
	outs, err := build(lg.Inputs)
	if err != nil {
		t.Fatal(err)
	}
	_, grads := lg.Run(t, outs...)
	// Forward-only graph for the differences, sharing the input values.
	fg := NewGraph(shapes, datas)
	fouts, err := build(fg.Inputs)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(fg.G)
	defer vm.Close()
	forward := func() float64 {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		var s float64
		for _, o := range fouts {
			v, _ := scalar(o.Value())
			s += v
		}
		return s
	}
	var nonzero int
	for i, in := range fg.Inputs {
		x := in.Value().Data().([]float32)
		probe := make([]int, len(x))
		for j := range probe {
			probe[j] = j
		}
		num := numericGrad(x, probe, 1e-2, forward)
		for j, v := range num {
			ana := float64(grads[i][j])
			if math.Abs(ana-v) > 2e-3+2e-2*math.Abs(v) {
				t.Errorf("input %d element %d: analytic %.6g, numeric %.6g", i, j, ana, v)
			}
			if ana != 0 {
				nonzero++
			}
		}
	}
	if nonzero == 0 {
		t.Errorf("all gradients are zero: the check tests nothing")
	}
}
