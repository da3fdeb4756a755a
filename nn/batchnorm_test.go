package nn

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
)

// naiveBatchNorm is the float64 reference forward pass and the running
// statistics after it (in training mode).
func naiveBatchNorm(x, gamma, beta []float32, st BNStats, n, c, hw int, training bool) (y, mean1, var1 []float32) {
	y = make([]float32, len(x))
	mean1 = append([]float32(nil), st.Mean...)
	var1 = append([]float32(nil), st.Var...)
	m := float64(n * hw)
	for ch := 0; ch < c; ch++ {
		mu, v := float64(st.Mean[ch]), float64(st.Var[ch])
		if training {
			var s, q float64
			for i := 0; i < n; i++ {
				for k := 0; k < hw; k++ {
					s += float64(x[(i*c+ch)*hw+k])
				}
			}
			mu = s / m
			for i := 0; i < n; i++ {
				for k := 0; k < hw; k++ {
					d := float64(x[(i*c+ch)*hw+k]) - mu
					q += d * d
				}
			}
			v = q / m
			mom := float64(st.Momentum)
			mean1[ch] = float32((1-mom)*float64(st.Mean[ch]) + mom*mu)
			var1[ch] = float32((1-mom)*float64(st.Var[ch]) + mom*q/(m-1))
		}
		for i := 0; i < n; i++ {
			for k := 0; k < hw; k++ {
				j := (i*c+ch)*hw + k
				y[j] = float32((float64(x[j])-mu)/math.Sqrt(v+float64(st.Eps))*float64(gamma[ch]) + float64(beta[ch]))
			}
		}
	}
	return y, mean1, var1
}

func TestBatchNorm(t *testing.T) {
	cases := []struct {
		name     string
		shape    [4]int
		training bool
	}{
		{name: "train", shape: [4]int{3, 4, 5, 6}, training: true},
		{name: "train_n1", shape: [4]int{1, 2, 3, 3}, training: true},
		{name: "eval", shape: [4]int{2, 3, 4, 5}},
		{name: "train_split", shape: [4]int{2, 3, 80, 70}, training: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(10 + i)))
			n, c, h, w := tc.shape[0], tc.shape[1], tc.shape[2], tc.shape[3]
			size := n * c * h * w
			x := randSlice(rng, size)
			for j := range x {
				x[j] = 2*x[j] + 1
			}
			gamma, beta := randSlice(rng, c), randSlice(rng, c)
			st := NewBNStats(c)
			for ch := 0; ch < c; ch++ {
				st.Mean[ch] = float32(rng.NormFloat64())
				st.Var[ch] = float32(0.5 + rng.Float64())
			}
			st0 := BNStats{Mean: append([]float32(nil), st.Mean...), Var: append([]float32(nil), st.Var...),
				Momentum: st.Momentum, Eps: st.Eps}
			wantY, _, _ := naiveBatchNorm(x, gamma, beta, st0, n, c, h*w, tc.training)
			res := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return BatchNorm(in[0], in[1], in[2], st, tc.training)
			}, []gradInput{
				{name: "x", shape: []int{n, c, h, w}, data: x},
				{name: "gamma", shape: []int{c}, data: gamma},
				{name: "beta", shape: []int{c}, data: beta},
			}, gradCheckOpts{maxProbe: 30, skipNumeric: size > 10000})
			expectClose(t, "y", res.out, wantY, 1e-5, 1e-5)
		})
	}
}

// TestBatchNormRunningStats runs one forward step and checks the running
// statistics (updated in training mode, untouched otherwise).
func TestBatchNormRunningStats(t *testing.T) {
	for _, training := range []bool{true, false} {
		name := map[bool]string{true: "train", false: "eval"}[training]
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(3))
			n, c, hw := 2, 3, 20
			x := randSlice(rng, n*c*hw)
			gamma, beta := randSlice(rng, c), randSlice(rng, c)
			st := NewBNStats(c)
			st.Mean[1], st.Var[2] = 0.5, 2
			st0 := BNStats{Mean: append([]float32(nil), st.Mean...), Var: append([]float32(nil), st.Var...),
				Momentum: st.Momentum, Eps: st.Eps}
			g := G.NewGraph()
			xn := G.NewTensor(g, G.Float32, 4, G.WithShape(n, c, 4, 5), G.WithName("x"), G.WithValue(tensorOf(x, n, c, 4, 5)))
			gn := G.NewVector(g, G.Float32, G.WithShape(c), G.WithName("gamma"), G.WithValue(tensorOf(gamma, c)))
			bn := G.NewVector(g, G.Float32, G.WithShape(c), G.WithName("beta"), G.WithValue(tensorOf(beta, c)))
			y, err := BatchNorm(xn, gn, bn, st, training)
			if err != nil {
				t.Fatal(err)
			}
			vm := G.NewTapeMachine(g)
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			wantY, wantMean, wantVar := naiveBatchNorm(x, gamma, beta, st0, n, c, hw, training)
			expectClose(t, "y", y.Value().Data().([]float32), wantY, 1e-5, 1e-5)
			expectClose(t, "running mean", st.Mean, wantMean, 1e-6, 1e-7)
			expectClose(t, "running var", st.Var, wantVar, 1e-6, 1e-7)
		})
	}
}
