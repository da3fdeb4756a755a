package nn

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
)

// naiveMaxPool pads x with -inf explicitly and scans every window; it returns
// the output and, for the loss Σ y·w, the gradient (first maximum wins).
func naiveMaxPool(x, w []float32, n, c, h, wd, k, s, p int) (y, dx []float32, oh, ow int) {
	ph, pw := h+2*p, wd+2*p
	oh, ow = (ph-k)/s+1, (pw-k)/s+1
	y = make([]float32, n*c*oh*ow)
	dx = make([]float32, len(x))
	for q := 0; q < n*c; q++ {
		padded := make([]float32, ph*pw)
		for i := range padded {
			padded[i] = float32(math.Inf(-1))
		}
		for iy := 0; iy < h; iy++ {
			for ix := 0; ix < wd; ix++ {
				padded[(iy+p)*pw+ix+p] = x[q*h*wd+iy*wd+ix]
			}
		}
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				by, bx := -1, -1
				for ky := 0; ky < k; ky++ {
					for kx := 0; kx < k; kx++ {
						yy, xx := oy*s+ky, ox*s+kx
						if by < 0 || padded[yy*pw+xx] > padded[by*pw+bx] {
							by, bx = yy, xx
						}
					}
				}
				o := q*oh*ow + oy*ow + ox
				y[o] = padded[by*pw+bx]
				dx[q*h*wd+(by-p)*wd+bx-p] += w[o]
			}
		}
	}
	return y, dx, oh, ow
}

func TestMaxPool2d(t *testing.T) {
	cases := []struct {
		name             string
		n, c, h, w       int
		kernel, str, pad int
	}{
		{name: "stem_odd", n: 2, c: 3, h: 11, w: 9, kernel: 3, str: 2, pad: 1},
		{name: "stem_even", n: 1, c: 2, h: 8, w: 10, kernel: 3, str: 2, pad: 1},
		{name: "k2s2", n: 1, c: 2, h: 7, w: 6, kernel: 2, str: 2},
		{name: "k3s1p1", n: 1, c: 2, h: 5, w: 6, kernel: 3, str: 1, pad: 1},
		{name: "k1", n: 1, c: 1, h: 4, w: 4, kernel: 1, str: 1},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(20 + i)))
			// A permutation scaled by 0.1: distinct values at least 0.1 apart,
			// so the argmax is unique and stable under the finite-difference step.
			size := tc.n * tc.c * tc.h * tc.w
			x := make([]float32, size)
			for j, v := range rng.Perm(size) {
				x[j] = 0.1 * float32(v-size/2)
			}
			_, _, oh, ow := naiveMaxPool(x, make([]float32, size*4), tc.n, tc.c, tc.h, tc.w, tc.kernel, tc.str, tc.pad)
			lw := randSlice(rng, tc.n*tc.c*oh*ow)
			wantY, wantDx, _, _ := naiveMaxPool(x, lw, tc.n, tc.c, tc.h, tc.w, tc.kernel, tc.str, tc.pad)
			res := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return MaxPool2d(in[0], tc.kernel, tc.str, tc.pad)
			}, []gradInput{{name: "x", shape: []int{tc.n, tc.c, tc.h, tc.w}, data: x}},
				gradCheckOpts{w: lw, eps: 1e-2})
			expectClose(t, "y", res.out, wantY, 0, 0)
			expectClose(t, "dx", res.grads[0], wantDx, 1e-6, 1e-6)
		})
	}
}

func TestMaxPool2dTiesAndNaN(t *testing.T) {
	nan := float32(math.NaN())
	cases := []struct {
		name    string
		x       []float32 // one 3x3 plane, kernel 3, stride 1, no padding
		wantArg int
	}{
		{name: "tie_first_wins", x: []float32{0, 5, 5, 1, 5, 2, 0, 0, 0}, wantArg: 1},
		{name: "nan_wins", x: []float32{0, 5, nan, 1, 9, 2, 0, 0, 0}, wantArg: 2},
		{name: "last_nan", x: []float32{nan, 5, nan, 1, 9, 2, 0, 0, 0}, wantArg: 2},
		{name: "all_neg_inf", x: []float32{float32(math.Inf(-1)), float32(math.Inf(-1)), float32(math.Inf(-1)),
			float32(math.Inf(-1)), float32(math.Inf(-1)), float32(math.Inf(-1)),
			float32(math.Inf(-1)), float32(math.Inf(-1)), float32(math.Inf(-1))}, wantArg: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := poolGeom{n: 1, c: 1, h: 3, w: 3, k: 3, s: 1, oh: 1, ow: 1}
			if got := p.argmax(tc.x, 0, 0); got != tc.wantArg {
				t.Errorf("argmax = %d, want %d", got, tc.wantArg)
			}
			y := make([]float32, 1)
			p.maxPoolPlane(y, tc.x, make([]float32, 3))
			want := tc.x[tc.wantArg]
			if y[0] != want && !(want != want && y[0] != y[0]) {
				t.Errorf("max = %v, want %v", y[0], want)
			}
		})
	}
}

func TestMaxPool2dErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 1, 2, 2), G.WithName("x"))
	cases := []struct {
		name             string
		kernel, str, pad int
	}{
		{name: "pad_too_big", kernel: 3, str: 2, pad: 2},
		{name: "zero_stride", kernel: 3, str: 0, pad: 1},
		{name: "kernel_larger_than_input", kernel: 3, str: 1, pad: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := MaxPool2d(x, tc.kernel, tc.str, tc.pad); err == nil {
				t.Fatal("no error")
			} else {
				t.Log(err)
			}
		})
	}
}

func TestGlobalAvgPool(t *testing.T) {
	rng := rand.New(rand.NewSource(30))
	n, c, h, w := 2, 3, 4, 5
	x := randSlice(rng, n*c*h*w)
	lw := randSlice(rng, n*c)
	res := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		return GlobalAvgPool(in[0])
	}, []gradInput{{name: "x", shape: []int{n, c, h, w}, data: x}}, gradCheckOpts{w: lw})
	for q := 0; q < n*c; q++ {
		var s float64
		for k := 0; k < h*w; k++ {
			s += float64(x[q*h*w+k])
		}
		if d := math.Abs(float64(res.out[q]) - s/float64(h*w)); d > 1e-6 {
			t.Errorf("mean of plane %d: got %g, want %g", q, res.out[q], s/float64(h*w))
		}
		for k := 0; k < h*w; k++ {
			if got, want := res.grads[0][q*h*w+k], lw[q]/float32(h*w); got != want {
				t.Fatalf("dx[%d] = %g, want %g", q*h*w+k, got, want)
			}
		}
	}
}

// TestGlobalAvgPoolBlocked checks GlobalAvgPoolBlocked(ToBlocked(x)) against
// GlobalAvgPool(x): the same means and the same gradient w.r.t. x (which
// reaches x through ToBlocked's gradient), and finite differences.
func TestGlobalAvgPoolBlocked(t *testing.T) {
	cases := []struct {
		name       string
		n, c, h, w int
	}{
		{name: "one_block", n: 1, c: 16, h: 3, w: 5},
		{name: "blocks_and_images", n: 3, c: 48, h: 7, w: 7},
		{name: "one_pixel", n: 2, c: 32, h: 1, w: 1},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(40 + i)))
			in := []gradInput{{name: "x", shape: []int{tc.n, tc.c, tc.h, tc.w}, data: randSlice(rng, tc.n*tc.c*tc.h*tc.w)}}
			o := gradCheckOpts{w: randSlice(rng, tc.n*tc.c)}
			got := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				xb, err := ToBlocked(in[0])
				if err != nil {
					return nil, err
				}
				return GlobalAvgPoolBlocked(xb)
			}, in, o)
			o.skipNumeric = true
			want := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return GlobalAvgPool(in[0])
			}, in, o)
			for q := range want.out {
				if d := math.Abs(float64(got.out[q] - want.out[q])); d > 1e-6*(1+math.Abs(float64(want.out[q]))) {
					t.Errorf("mean %d: blocked %g, NCHW %g", q, got.out[q], want.out[q])
				}
			}
			for k := range want.grads[0] {
				if got.grads[0][k] != want.grads[0][k] {
					t.Fatalf("dx[%d]: blocked %g, NCHW %g", k, got.grads[0][k], want.grads[0][k])
				}
			}
		})
	}
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 8, 2, 2), G.WithName("x"))
	if _, err := GlobalAvgPoolBlocked(x); err == nil {
		t.Error("8 channels: no error")
	}
}
