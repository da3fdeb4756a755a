package nn

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
)

// naiveAffine is the reference: y = x*s[c] + b[c] (+ r) (ReLU) and, for the
// loss Σ y·w, the gradients w.r.t. x, s, b and r, in float64.
func naiveAffine(x, s, b, r, w []float32, n, c, hw int, relu bool) (y, dx, ds, db, dr []float32) {
	y = make([]float32, len(x))
	dx = make([]float32, len(x))
	dr = make([]float32, len(x))
	ds64 := make([]float64, c)
	db64 := make([]float64, c)
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			for k := 0; k < hw; k++ {
				j := (i*c+ch)*hw + k
				v := float64(x[j])*float64(s[ch]) + float64(b[ch])
				if r != nil {
					v += float64(r[j])
				}
				g := float64(w[j])
				if relu && v <= 0 {
					v, g = 0, 0
				}
				y[j] = float32(v)
				dx[j] = float32(g * float64(s[ch]))
				dr[j] = float32(g)
				ds64[ch] += g * float64(x[j])
				db64[ch] += g
			}
		}
	}
	ds = make([]float32, c)
	db = make([]float32, c)
	for ch := range ds {
		ds[ch], db[ch] = float32(ds64[ch]), float32(db64[ch])
	}
	return y, dx, ds, db, dr
}

func randSlice(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// randParam returns a learnable float32 node of g named name with the
// given shape, its values standard normal draws from rng (as randSlice).
func randParam(g *G.ExprGraph, rng *rand.Rand, name string, shape ...int) *G.Node {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return G.NewTensor(g, G.Float32, len(shape), G.WithShape(shape...), G.WithName(name),
		G.WithValue(tensorOf(randSlice(rng, n), shape...)))
}

// mustNode returns a function that fails t on a non-nil error and else
// returns the node: for building test graphs in one expression.
func mustNode(t testing.TB) func(*G.Node, error) *G.Node {
	return func(n *G.Node, err error) *G.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
}

// awayFromZero moves the pre-activations of a ReLU at least d away from the
// kink so that finite differences are valid: it nudges x where |x*s+b+r| < d.
func awayFromZero(x, s, b, r []float32, c, hw int, d float32) {
	for j := range x {
		ch := (j / hw) % c
		v := x[j]*s[ch] + b[ch]
		if r != nil {
			v += r[j]
		}
		if v > -d && v < d {
			x[j] += 3 * d / s[ch]
		}
	}
}

func TestAffine(t *testing.T) {
	cases := []struct {
		name     string
		shape    [4]int
		relu     bool
		residual bool
		frozen   bool
	}{
		{name: "plain", shape: [4]int{2, 3, 4, 5}},
		{name: "relu", shape: [4]int{2, 3, 4, 5}, relu: true},
		{name: "residual", shape: [4]int{1, 4, 3, 3}, residual: true},
		{name: "residual_relu", shape: [4]int{2, 3, 5, 4}, relu: true, residual: true},
		{name: "frozen_residual_relu", shape: [4]int{2, 3, 5, 4}, relu: true, residual: true, frozen: true},
		// Planes split across threads mid-plane (more than minPartElems elements).
		{name: "large_relu", shape: [4]int{1, 3, 200, 110}, relu: true, residual: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(i)))
			n, c, h, w := tc.shape[0], tc.shape[1], tc.shape[2], tc.shape[3]
			size := n * c * h * w
			x := randSlice(rng, size)
			s := randSlice(rng, c)
			b := randSlice(rng, c)
			var r []float32
			if tc.residual {
				r = randSlice(rng, size)
			}
			for j := range s {
				if math.Abs(float64(s[j])) < 0.3 {
					s[j] += 0.5
				}
			}
			if tc.relu {
				awayFromZero(x, s, b, r, c, h*w, 0.05)
			}
			lw := randSlice(rng, size)
			shape := []int{n, c, h, w}
			inputs := []gradInput{
				{name: "x", shape: shape, data: x},
				{name: "scale", shape: []int{c}, data: s, noGrad: tc.frozen},
				{name: "shift", shape: []int{c}, data: b, noGrad: tc.frozen},
			}
			if tc.residual {
				inputs = append(inputs, gradInput{name: "residual", shape: shape, data: r})
			}
			res := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				var rn *G.Node
				if tc.residual {
					rn = in[3]
				}
				return AffineWith(in[0], in[1], in[2], rn, AffineOpts{ReLU: tc.relu, FrozenParams: tc.frozen})
			}, inputs, gradCheckOpts{w: lw, maxProbe: 40, skipNumeric: size > 10000})
			y, dx, ds, db, dr := naiveAffine(x, s, b, r, lw, n, c, h*w, tc.relu)
			expectClose(t, "y", res.out, y, 1e-6, 1e-6)
			expectClose(t, "dx", res.grads[0], dx, 1e-6, 1e-6)
			if !tc.frozen {
				expectClose(t, "dscale", res.grads[1], ds, 1e-4, 1e-4)
				expectClose(t, "dshift", res.grads[2], db, 1e-4, 1e-4)
			}
			if tc.residual {
				expectClose(t, "dresidual", res.grads[3], dr, 0, 0)
			}
		})
	}
}

func TestAffineShapeErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 3, 4, 4), G.WithName("x"))
	v3 := G.NewVector(g, G.Float32, G.WithShape(3), G.WithName("v3"))
	v4 := G.NewVector(g, G.Float32, G.WithShape(4), G.WithName("v4"))
	r := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 3, 4, 5), G.WithName("r"))
	m := G.NewMatrix(g, G.Float32, G.WithShape(3, 4), G.WithName("m"))
	cases := []struct {
		name                 string
		x, scale, shift, res *G.Node
	}{
		{name: "scale_length", x: x, scale: v4, shift: v3},
		{name: "shift_length", x: x, scale: v3, shift: v4},
		{name: "residual_shape", x: x, scale: v3, shift: v3, res: r},
		{name: "x_not_4d", x: m, scale: v3, shift: v3},
		{name: "nil_scale", x: x, shift: v3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Affine(tc.x, tc.scale, tc.shift, tc.res, true); err == nil {
				t.Fatal("no error")
			} else {
				t.Log(err)
			}
		})
	}
}

func TestFoldBN(t *testing.T) {
	gamma := []float32{1, 2, -0.5}
	beta := []float32{0, 1, 3}
	mean := []float32{0.5, -1, 2}
	variance := []float32{1, 4, 0.25}
	scale, shift := FoldBN(gamma, beta, mean, variance, 1e-5)
	for c := range gamma {
		// BN(x) = (x-mean)/sqrt(var+eps)*gamma + beta must equal x*scale+shift.
		for _, x := range []float64{-2, 0, 1.5} {
			want := (x-float64(mean[c]))/math.Sqrt(float64(variance[c])+1e-5)*float64(gamma[c]) + float64(beta[c])
			got := x*float64(scale[c]) + float64(shift[c])
			if math.Abs(got-want) > 1e-6 {
				t.Errorf("channel %d, x=%g: folded %g, batch norm %g", c, x, got, want)
			}
		}
	}
}

// TestAffineConstantParamsAreFrozen checks that constant scale and shift
// build no parameter gradients (fewer nodes) and leave dx unchanged.
func TestAffineConstantParamsAreFrozen(t *testing.T) {
	build := func(constant bool) (int, []float32) {
		g := G.NewGraph()
		x := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 2, 3, 3), G.WithName("x"),
			G.WithValue(tensorOf(randSlice(rand.New(rand.NewSource(1)), 18), 1, 2, 3, 3)))
		var s, b *G.Node
		if constant {
			s = G.NewConstant(tensorOf([]float32{1.5, -2}, 2), G.WithName("s"))
			b = G.NewConstant(tensorOf([]float32{0.5, 1}, 2), G.WithName("b"))
		} else {
			s = G.NewVector(g, G.Float32, G.WithShape(2), G.WithName("s"), G.WithValue(tensorOf([]float32{1.5, -2}, 2)))
			b = G.NewVector(g, G.Float32, G.WithShape(2), G.WithName("b"), G.WithValue(tensorOf([]float32{0.5, 1}, 2)))
		}
		y, err := Affine(x, s, b, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		loss, err := G.Sum(y)
		if err != nil {
			t.Fatal(err)
		}
		grads, err := G.Grad(loss, x)
		if err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(g)
		defer vm.Close()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		return len(g.AllNodes()), append([]float32(nil), grads[0].Value().Data().([]float32)...)
	}
	nConst, dxConst := build(true)
	nVar, dxVar := build(false)
	if nConst >= nVar {
		t.Errorf("constant scale/shift: %d nodes, variables: %d; want fewer with constants", nConst, nVar)
	}
	expectClose(t, "dx", dxConst, dxVar, 0, 0)
}
