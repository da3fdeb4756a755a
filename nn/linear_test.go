package nn

import (
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
)

// naiveLinear returns y = x·wᵀ + b and, for the loss Σ y·lw, the gradients.
func naiveLinear(x, w, b, lw []float32, n, in, out int) (y, dx, dw, db []float32) {
	y = make([]float32, n*out)
	dx = make([]float32, n*in)
	dw = make([]float32, out*in)
	db = make([]float32, out)
	for i := 0; i < n; i++ {
		for o := 0; o < out; o++ {
			var s float64
			if b != nil {
				s = float64(b[o])
			}
			for k := 0; k < in; k++ {
				s += float64(x[i*in+k]) * float64(w[o*in+k])
			}
			y[i*out+o] = float32(s)
		}
	}
	for k := 0; k < in; k++ {
		for i := 0; i < n; i++ {
			var s float64
			for o := 0; o < out; o++ {
				s += float64(lw[i*out+o]) * float64(w[o*in+k])
			}
			dx[i*in+k] = float32(s)
		}
		for o := 0; o < out; o++ {
			var s float64
			for i := 0; i < n; i++ {
				s += float64(lw[i*out+o]) * float64(x[i*in+k])
			}
			dw[o*in+k] = float32(s)
		}
	}
	for o := 0; o < out; o++ {
		var s float64
		for i := 0; i < n; i++ {
			s += float64(lw[i*out+o])
		}
		db[o] = float32(s)
	}
	return y, dx, dw, db
}

func TestLinear(t *testing.T) {
	cases := []struct {
		name        string
		n, in, out  int
		bias        bool
		skipNumeric bool
	}{
		{name: "bias", n: 3, in: 7, out: 5, bias: true},
		{name: "no_bias", n: 4, in: 6, out: 2},
		{name: "single_row", n: 1, in: 9, out: 4, bias: true},
		{name: "roi_head", n: 64, in: 512, out: 84, bias: true, skipNumeric: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(40 + i)))
			x := randSlice(rng, tc.n*tc.in)
			w := randSlice(rng, tc.out*tc.in)
			var b []float32
			inputs := []gradInput{
				{name: "x", shape: []int{tc.n, tc.in}, data: x},
				{name: "w", shape: []int{tc.out, tc.in}, data: w},
			}
			if tc.bias {
				b = randSlice(rng, tc.out)
				inputs = append(inputs, gradInput{name: "b", shape: []int{tc.out}, data: b})
			}
			lw := randSlice(rng, tc.n*tc.out)
			res := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				var bn *G.Node
				if tc.bias {
					bn = in[2]
				}
				return Linear(in[0], in[1], bn)
			}, inputs, gradCheckOpts{w: lw, skipNumeric: tc.skipNumeric})
			y, dx, dw, db := naiveLinear(x, w, b, lw, tc.n, tc.in, tc.out)
			expectClose(t, "y", res.out, y, 1e-5, 1e-4)
			expectClose(t, "dx", res.grads[0], dx, 1e-5, 1e-4)
			expectClose(t, "dw", res.grads[1], dw, 1e-5, 1e-4)
			if tc.bias {
				expectClose(t, "db", res.grads[2], db, 1e-5, 1e-5)
			}
		})
	}
}

func TestLinearShapeErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float32, G.WithShape(2, 3), G.WithName("x"))
	w := G.NewMatrix(g, G.Float32, G.WithShape(4, 5), G.WithName("w"))
	w2 := G.NewMatrix(g, G.Float32, G.WithShape(4, 3), G.WithName("w2"))
	b := G.NewVector(g, G.Float32, G.WithShape(3), G.WithName("b"))
	if _, err := Linear(x, w, nil); err == nil {
		t.Error("In mismatch: no error")
	}
	if _, err := Linear(x, w2, b); err == nil {
		t.Error("bias length mismatch: no error")
	}
}
