package nn

import (
	"math/rand"
	"strings"
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
// with finite differences, on a graph where gorgonia's own Reshape yields
// wrong gradients, and checks that it still does: nn.Reshape exists for that,
// so a gorgonia release that fixes it makes this test fail (and nn.Reshape's
// doc comment out of date).
func TestReshapeTapeGradients(t *testing.T) {
	inputs := []gradInput{
		{name: "x", shape: []int{2, 3, 4, 5}},
		{name: "s", shape: []int{3}},
		{name: "b", shape: []int{3}},
	}
	checkGrads(t, subOfReshapes(func(n *G.Node) (*G.Node, error) { return Reshape(n, 2, 60) }),
		inputs, gradCheckOpts{})

	rec := runChecker(subOfReshapes(func(n *G.Node) (*G.Node, error) {
		return G.Reshape(n, tensor.Shape{2, 60})
	}), inputs, gradCheckOpts{}, nil)
	if rec.fatal != "" {
		t.Fatalf("gorgonia's Reshape on the same graph: %s", rec.fatal)
	}
	t.Logf("gorgonia's Reshape on the same graph: %d gradient mismatches", rec.errors)
	if rec.errors == 0 {
		t.Error("gorgonia's Reshape now gives correct tape gradients on this graph: nn.Reshape's reason is gone")
	}
}

// TestGorgoniaReshapeAliases checks the gorgonia behaviour nn.Reshape works
// around: under the TapeMachine, gorgonia's Reshape returns a value sharing
// its input's backing array, in the forward pass and for the gradients it
// reshapes back in the backward pass (the values that the tape then
// accumulates into in place), while nn.Reshape returns a copy.
func TestGorgoniaReshapeAliases(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reshape func(*G.Node) (*G.Node, error)
		aliases bool
	}{
		{name: "gorgonia.Reshape", reshape: func(n *G.Node) (*G.Node, error) { return G.Reshape(n, tensor.Shape{2, 60}) }, aliases: true},
		{name: "nn.Reshape", reshape: func(n *G.Node) (*G.Node, error) { return Reshape(n, 2, 60) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(4))
			g := G.NewGraph()
			var in []*G.Node
			for _, p := range []struct {
				name  string
				shape []int
			}{{"x", []int{2, 3, 4, 5}}, {"s", []int{3}}, {"b", []int{3}}} {
				n := 1
				for _, d := range p.shape {
					n *= d
				}
				in = append(in, G.NewTensor(g, G.Float32, len(p.shape), G.WithShape(p.shape...), G.WithName(p.name),
					G.WithValue(tensorOf(randSlice(rng, n), p.shape...))))
			}
			out, err := subOfReshapes(tc.reshape)(g, in)
			if err != nil {
				t.Fatal(err)
			}
			loss, err := G.Sum(out)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := G.Grad(loss, in...); err != nil {
				t.Fatal(err)
			}
			// The reshapes of y and z, [2 3 4 5] -> [2 60], and of their
			// gradients back (not G.Sum's gradient, a [1 1] reshape).
			var reshapes []*G.Node
			for _, n := range g.AllNodes() {
				if n.Op() != nil && strings.Contains(n.Op().String(), "Reshape") && n.Shape().TotalSize() == 120 {
					reshapes = append(reshapes, n)
				}
			}
			if len(reshapes) != 4 {
				t.Fatalf("%d reshape nodes, want 4 (2 forward, 2 backward)", len(reshapes))
			}
			vm := G.NewTapeMachine(g)
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			for _, n := range reshapes {
				children := g.From(n.ID())
				if children.Len() != 1 || !children.Next() {
					t.Fatalf("%s has %d inputs, want 1", n.Op(), children.Len())
				}
				src := children.Node().(*G.Node)
				shared := &n.Value().Data().([]float32)[0] == &src.Value().Data().([]float32)[0]
				t.Logf("%s %v <- %s: shares its input's memory: %v", n.Op(), n.Shape(), src.Op(), shared)
				if shared != tc.aliases {
					t.Errorf("%s of %s: shares its input's memory %v, want %v", n.Op(), src.Op(), shared, tc.aliases)
				}
			}
		})
	}
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
