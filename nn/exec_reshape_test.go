package nn

import (
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// subOfReshapes builds Sub(reshape(y), reshape(Affine(y))) with y = Affine(x):
// a gradient that flows through two reshapes and is accumulated into y.
func subOfReshapes(reshape func(*G.Node) (*G.Node, error)) func(*G.ExprGraph, []*G.Node) (*G.Node, error) {
	return func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		x, s, b := in[0], in[1], in[2]
		y, err := Affine(x, s, b, nil, false)
		if err != nil {
			return nil, err
		}
		z, err := Affine(y, s, b, nil, false)
		if err != nil {
			return nil, err
		}
		f, err := reshape(y)
		if err != nil {
			return nil, err
		}
		f2, err := reshape(z)
		if err != nil {
			return nil, err
		}
		return G.Sub(f, f2)
	}
}

// TestReshapeTapeGradients checks Reshape's gradients under the TapeMachine
// with finite differences, on a graph where gorgonia's own Reshape (which
// shares memory with its input) yields wrong gradients.
func TestReshapeTapeGradients(t *testing.T) {
	inputs := []gradInput{
		{name: "x", shape: []int{2, 3, 4, 5}},
		{name: "s", shape: []int{3}},
		{name: "b", shape: []int{3}},
	}
	checkGrads(t, subOfReshapes(func(n *G.Node) (*G.Node, error) { return Reshape(n, 2, 60) }),
		inputs, gradCheckOpts{})

	var rec recorder
	func() {
		defer func() {
			if r := recover(); r != nil && r != &rec {
				panic(r)
			}
		}()
		checkGradsInto(&rec, subOfReshapes(func(n *G.Node) (*G.Node, error) {
			return G.Reshape(n, tensor.Shape{2, 60})
		}), inputs, gradCheckOpts{}, nil)
	}()
	t.Logf("gorgonia's Reshape on the same graph: %d gradient mismatches (fatal: %q)", rec.errors, rec.fatal)
}

func TestReshape(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	x := randSlice(rng, 24)
	res := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		return Reshape(in[0], 4, 6)
	}, []gradInput{{name: "x", shape: []int{2, 3, 4}, data: x}}, gradCheckOpts{})
	expectClose(t, "y", res.out, x, 0, 0)

	g := G.NewGraph()
	xn := G.NewTensor(g, G.Float32, 3, G.WithShape(2, 3, 4), G.WithName("x"))
	for _, shape := range [][]int{{5, 5}, {}, {24, 0}} {
		if _, err := Reshape(xn, shape...); err == nil {
			t.Errorf("Reshape to %v: no error", shape)
		}
	}
}
