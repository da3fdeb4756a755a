package nn

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
)

func TestReLU(t *testing.T) {
	cases := []struct {
		name  string
		shape []int
	}{
		{name: "4d", shape: []int{2, 3, 4, 5}},
		{name: "2d", shape: []int{7, 9}},
		{name: "split", shape: []int{1, 2, 200, 100}}, // more than one part
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(i)))
			n := 1
			for _, d := range tc.shape {
				n *= d
			}
			x := randSlice(rng, n)
			for j := range x { // keep finite differences off the kink
				if math.Abs(float64(x[j])) < 0.05 {
					x[j] += 0.2
				}
			}
			w := randSlice(rng, n)
			res := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return ReLU(in[0])
			}, []gradInput{{name: "x", shape: tc.shape, data: x}},
				gradCheckOpts{w: w, skipNumeric: n > 10000})
			wantY := make([]float32, n)
			wantDx := make([]float32, n)
			for j, v := range x {
				if v > 0 {
					wantY[j], wantDx[j] = v, w[j]
				}
			}
			expectClose(t, "y", res.out, wantY, 0, 0)
			expectClose(t, "dx", res.grads[0], wantDx, 0, 0)
		})
	}
}

func TestReLUNaN(t *testing.T) {
	x := []float32{float32(math.NaN()), -1, 0, 2} // math.NaN() has the sign bit clear
	y := make([]float32, len(x))
	reluKernel(y, x)
	if !math.IsNaN(float64(y[0])) || y[1] != 0 || y[2] != 0 || y[3] != 2 {
		t.Errorf("ReLU(%v) = %v, want [NaN 0 0 2]", x, y)
	}
}
