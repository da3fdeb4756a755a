package nn

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// convRef is a naive float64 convolution used as the reference.
type convRef struct{ g convGeom }

// idx calls f for every (output, input, weight) index triple of the
// convolution that touches the input (padding taps are skipped).
func (r convRef) each(f func(yi, xi, wi int)) {
	g := r.g
	N, C, H, W := g.X[0], g.X[1], g.X[2], g.X[3]
	OC, CG, KH, KW := g.W[0], g.W[1], g.W[2], g.W[3]
	OH, OW := g.Y[2], g.Y[3]
	ocg := OC / g.Groups
	for n := 0; n < N; n++ {
		for oc := 0; oc < OC; oc++ {
			grp := oc / ocg
			for oh := 0; oh < OH; oh++ {
				for ow := 0; ow < OW; ow++ {
					yi := ((n*OC+oc)*OH+oh)*OW + ow
					for ci := 0; ci < CG; ci++ {
						c := grp*CG + ci
						for kh := 0; kh < KH; kh++ {
							ih := oh*g.Stride[0] - g.Pad[0] + kh*g.Dil[0]
							if ih < 0 || ih >= H {
								continue
							}
							for kw := 0; kw < KW; kw++ {
								iw := ow*g.Stride[1] - g.Pad[1] + kw*g.Dil[1]
								if iw < 0 || iw >= W {
									continue
								}
								f(yi, ((n*C+c)*H+ih)*W+iw, ((oc*CG+ci)*KH+kh)*KW+kw)
							}
						}
					}
				}
			}
		}
	}
}

func (r convRef) forward(x, w, b, res []float32, relu bool) []float32 {
	acc := make([]float64, convNum(r.g.Y))
	r.each(func(yi, xi, wi int) { acc[yi] += float64(x[xi]) * float64(w[wi]) })
	hw := r.g.Y[2] * r.g.Y[3]
	y := make([]float32, len(acc))
	for i, v := range acc {
		if b != nil {
			v += float64(b[(i/hw)%r.g.Y[1]])
		}
		if res != nil {
			v += float64(res[i])
		}
		if relu && v < 0 {
			v = 0
		}
		y[i] = float32(v)
	}
	return y
}

func (r convRef) backward(x, w, dy []float32) (dx, dw, db []float32) {
	ax := make([]float64, len(x))
	aw := make([]float64, len(w))
	r.each(func(yi, xi, wi int) {
		ax[xi] += float64(w[wi]) * float64(dy[yi])
		aw[wi] += float64(x[xi]) * float64(dy[yi])
	})
	hw := r.g.Y[2] * r.g.Y[3]
	ab := make([]float64, r.g.Y[1])
	for i, v := range dy {
		ab[(i/hw)%r.g.Y[1]] += float64(v)
	}
	return convF32(ax), convF32(aw), convF32(ab)
}

func convF32(v []float64) []float32 {
	r := make([]float32, len(v))
	for i, x := range v {
		r[i] = float32(x)
	}
	return r
}

func convNum(s [4]int) int { return s[0] * s[1] * s[2] * s[3] }

// convMaxRelErr returns max|got-want| / max(1, max|want|).
func convMaxRelErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d, m float64
	for i := range got {
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = math.Max(m, math.Abs(float64(want[i])))
	}
	return d / math.Max(1, m)
}

func convDense(shape []int, v []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float32(nil), v...)))
}

type convCase struct {
	name string
	x, w [4]int
	o    ConvOpts
}

var convCases = []convCase{
	{name: "3x3_pad1", x: [4]int{2, 3, 7, 6}, w: [4]int{5, 3, 3, 3}, o: ConvOpts{Pad: [2]int{1, 1}}},
	{name: "1x1", x: [4]int{1, 16, 5, 5}, w: [4]int{8, 16, 1, 1}},
	{name: "3x3_stride2_odd", x: [4]int{1, 4, 9, 7}, w: [4]int{6, 4, 3, 3}, o: ConvOpts{Stride: [2]int{2, 2}, Pad: [2]int{1, 1}}},
	{name: "7x7_stride2_pad3", x: [4]int{1, 3, 17, 13}, w: [4]int{8, 3, 7, 7}, o: ConvOpts{Stride: [2]int{2, 2}, Pad: [2]int{3, 3}}},
	{name: "1x1_stride2", x: [4]int{2, 8, 7, 9}, w: [4]int{16, 8, 1, 1}, o: ConvOpts{Stride: [2]int{2, 2}}},
	{name: "dilation2", x: [4]int{1, 4, 10, 11}, w: [4]int{4, 4, 3, 3}, o: ConvOpts{Pad: [2]int{2, 2}, Dilation: [2]int{2, 2}}},
	{name: "rect_kernel_mixed", x: [4]int{1, 5, 8, 12}, w: [4]int{3, 5, 3, 5}, o: ConvOpts{Stride: [2]int{1, 2}, Pad: [2]int{0, 2}, Dilation: [2]int{1, 2}}},
	{name: "groups2", x: [4]int{1, 6, 6, 6}, w: [4]int{4, 3, 3, 3}, o: ConvOpts{Pad: [2]int{1, 1}, Groups: 2}},
	{name: "depthwise", x: [4]int{2, 8, 5, 7}, w: [4]int{8, 1, 3, 3}, o: ConvOpts{Stride: [2]int{2, 2}, Pad: [2]int{1, 1}, Groups: 8}},
	{name: "channels_17_to_33", x: [4]int{1, 17, 6, 5}, w: [4]int{33, 17, 3, 3}, o: ConvOpts{Pad: [2]int{1, 1}}},
}

// TestConvOpsMatchReference runs the forward, backward-data, backward-weights
// and bias-gradient ops directly against the naive reference.
func TestConvOpsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, tc := range convCases {
		for _, fused := range []bool{false, true} {
			name := tc.name
			if fused {
				name += "/bias_residual_relu"
			}
			t.Run(name, func(t *testing.T) {
				g, err := newConvGeom("test", tc.x[:], tc.w[:], tc.o)
				if err != nil {
					t.Fatal(err)
				}
				x := randSlice(rng, convNum(g.X))
				w := randSlice(rng, convNum(g.W))
				dy := randSlice(rng, convNum(g.Y))
				var b, res []float32
				in := []G.Value{convDense(g.X[:], x), convDense(g.W[:], w)}
				if fused {
					b = randSlice(rng, g.W[0])
					res = randSlice(rng, convNum(g.Y))
					in = append(in, convDense([]int{g.W[0]}, b), convDense(g.Y[:], res))
				}
				op := convOp{geom: g, bias: fused, residual: fused, relu: fused}
				yv, err := op.Do(in...)
				if err != nil {
					t.Fatal(err)
				}
				ref := convRef{g}
				want := ref.forward(x, w, b, res, fused)
				if e := convMaxRelErr(yv.Data().([]float32), want); e > 1e-5 {
					t.Errorf("forward: max rel error %g", e)
				}

				dxv, err := convBwdDataOp{geom: g}.Do(convDense(g.W[:], w), convDense(g.Y[:], dy))
				if err != nil {
					t.Fatal(err)
				}
				dwv, err := convBwdWeightsOp{geom: g}.Do(convDense(g.X[:], x), convDense(g.Y[:], dy))
				if err != nil {
					t.Fatal(err)
				}
				dbv, err := convBiasGradOp{shape: g.Y}.Do(convDense(g.Y[:], dy))
				if err != nil {
					t.Fatal(err)
				}
				dx, dw, db := ref.backward(x, w, dy)
				for _, c := range []struct {
					name      string
					got, want []float32
				}{
					{"dx", dxv.Data().([]float32), dx},
					{"dw", dwv.Data().([]float32), dw},
					{"db", dbv.Data().([]float32), db},
				} {
					if e := convMaxRelErr(c.got, c.want); e > 1e-5 {
						t.Errorf("%s: max rel error %g", c.name, e)
					}
				}
			})
		}
	}
}

// skipWithoutBF16 skips the test when err is oneDNN's "unimplemented" for a
// bf16 convolution: oneDNN 2.6 has bf16 convolutions only on CPUs with
// AVX-512 (ConvOpts.BF16 is meant for those).
func skipWithoutBF16(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "bf16=true") && strings.Contains(err.Error(), "unimplemented") {
		t.Skipf("oneDNN has no bf16 convolution on this CPU: %v", err)
	}
}

// TestConvBF16 checks the bf16 forward path against the float32 reference
// within bf16 rounding (8 mantissa bits on x and w).
func TestConvBF16(t *testing.T) {
	convSkipWithoutBF16(t)
	rng := rand.New(rand.NewSource(2))
	g, err := newConvGeom("test", []int{1, 32, 9, 9}, []int{32, 32, 3, 3}, ConvOpts{Pad: [2]int{1, 1}, BF16: true})
	if err != nil {
		t.Fatal(err)
	}
	x := randSlice(rng, convNum(g.X))
	w := randSlice(rng, convNum(g.W))
	y, err := convOp{geom: g}.Do(convDense(g.X[:], x), convDense(g.W[:], w))
	skipWithoutBF16(t, err)
	if err != nil {
		t.Fatal(err)
	}
	want := convRef{g}.forward(x, w, nil, nil, false)
	e := convMaxRelErr(y.Data().([]float32), want)
	// Each product carries ~2*2^-9 relative error; 288 terms of random sign.
	if e > 2e-2 || e < 1e-5 {
		t.Errorf("bf16 forward: max rel error %g, want between 1e-5 (really rounded) and 2e-2", e)
	}
}

func TestConv2dShapeErrors(t *testing.T) {
	tests := []struct {
		name string
		x, w []int
		b    []int
		o    ConvOpts
	}{
		{name: "channels", x: []int{1, 3, 8, 8}, w: []int{4, 2, 3, 3}},
		{name: "groups", x: []int{1, 4, 8, 8}, w: []int{3, 2, 3, 3}, o: ConvOpts{Groups: 2}},
		{name: "kernel_too_big", x: []int{1, 3, 2, 2}, w: []int{4, 3, 3, 3}},
		{name: "rank", x: []int{3, 8, 8}, w: []int{4, 3, 3, 3}},
		{name: "bias", x: []int{1, 3, 8, 8}, w: []int{4, 3, 3, 3}, b: []int{3}},
		{name: "negative_pad", x: []int{1, 3, 8, 8}, w: []int{4, 3, 3, 3}, o: ConvOpts{Pad: [2]int{-1, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := G.NewGraph()
			x := G.NewTensor(g, tensor.Float32, len(tc.x), G.WithShape(tc.x...), G.WithName("x"))
			w := G.NewTensor(g, tensor.Float32, len(tc.w), G.WithShape(tc.w...), G.WithName("w"))
			var b *G.Node
			if tc.b != nil {
				b = G.NewTensor(g, tensor.Float32, 1, G.WithShape(tc.b...), G.WithName("b"))
			}
			if _, err := Conv2d(x, w, b, tc.o); err == nil {
				t.Errorf("Conv2d(x %v, w %v, b %v, %+v): no error", tc.x, tc.w, tc.b, tc.o)
			}
		})
	}
}

// convGraph builds cost = sum(Conv2dFused(x, w, b, res) * r) for a random
// constant r and returns the machine-free pieces.
type convGraph struct {
	g              *G.ExprGraph
	x, w, b, res   *G.Node
	cost           *G.Node
	grads          G.Nodes
	xv, wv, bv, rv []float32
	weight         []float32 // r in the cost
}

func newConvGraph(t *testing.T, rng *rand.Rand, tc convCase, relu bool) *convGraph {
	t.Helper()
	geom, err := newConvGeom("test", tc.x[:], tc.w[:], tc.o)
	if err != nil {
		t.Fatal(err)
	}
	c := &convGraph{g: G.NewGraph()}
	c.xv = randSlice(rng, convNum(geom.X))
	c.wv = randSlice(rng, convNum(geom.W))
	c.bv = randSlice(rng, geom.W[0])
	c.rv = randSlice(rng, convNum(geom.Y))
	c.x = G.NewTensor(c.g, tensor.Float32, 4, G.WithShape(geom.X[:]...), G.WithName("x"), G.WithValue(convDense(geom.X[:], c.xv)))
	c.w = G.NewTensor(c.g, tensor.Float32, 4, G.WithShape(geom.W[:]...), G.WithName("w"), G.WithValue(convDense(geom.W[:], c.wv)))
	c.b = G.NewTensor(c.g, tensor.Float32, 1, G.WithShape(geom.W[0]), G.WithName("b"), G.WithValue(convDense([]int{geom.W[0]}, c.bv)))
	c.res = G.NewTensor(c.g, tensor.Float32, 4, G.WithShape(geom.Y[:]...), G.WithName("res"), G.WithValue(convDense(geom.Y[:], c.rv)))
	y, err := Conv2dFused(c.x, c.w, c.b, c.res, tc.o, relu)
	if err != nil {
		t.Fatal(err)
	}
	c.weight = randSlice(rng, convNum(geom.Y))
	r := G.NewConstant(convDense(geom.Y[:], c.weight), G.WithName("r"))
	c.cost = G.Must(G.Sum(G.Must(G.HadamardProd(y, r))))
	if c.grads, err = G.Grad(c.cost, c.x, c.w, c.b, c.res); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConv2dFiniteDifference checks G.Grad through Conv2dFused against
// central differences of the cost, computed by re-running the graph.
func TestConv2dFiniteDifference(t *testing.T) {
	cases := []convCase{
		{name: "3x3_stride2", x: [4]int{1, 2, 5, 6}, w: [4]int{3, 2, 3, 3}, o: ConvOpts{Stride: [2]int{2, 2}, Pad: [2]int{1, 1}}},
		{name: "groups_dilation", x: [4]int{1, 4, 6, 5}, w: [4]int{2, 2, 2, 3}, o: ConvOpts{Dilation: [2]int{2, 1}, Groups: 2, Pad: [2]int{1, 0}}},
	}
	rng := rand.New(rand.NewSource(3))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newConvGraph(t, rng, tc, false)
			m := G.NewTapeMachine(c.g)
			defer m.Close()
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			var analytic [][]float32
			for _, gn := range c.grads {
				analytic = append(analytic, append([]float32(nil), gn.Value().Data().([]float32)...))
			}
			cost := func() float64 {
				m.Reset()
				if err := m.RunAll(); err != nil {
					t.Fatal(err)
				}
				return float64(c.cost.Value().Data().(float32))
			}
			for k, n := range []*G.Node{c.x, c.w, c.b, c.res} {
				v := n.Value().Data().([]float32)
				const eps = 1e-2
				var maxErr float64
				for i := range v {
					num := centralDiff(v, i, eps, cost)
					maxErr = math.Max(maxErr, math.Abs(num-float64(analytic[k][i]))/math.Max(1, math.Abs(num)))
				}
				// The float32 cost's rounding over the step 2*eps gives
				// errors near 2.4e-4; the bound leaves a margin of 8.
				t.Logf("%s: max error vs finite differences relative to max(1, |numeric|) %.2e (bound 2e-3)", n.Name(), maxErr)
				if !(maxErr <= 2e-3) {
					t.Errorf("%s: max rel error vs finite differences %g > 2e-3", n.Name(), maxErr)
				}
			}
		})
	}
}

// TestConv2dGradMatchesReference checks G.Grad of the fused conv with ReLU
// (mask, bias and residual gradients) against the reference.
func TestConv2dGradMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for _, tc := range convCases[:4] {
		t.Run(tc.name, func(t *testing.T) {
			c := newConvGraph(t, rng, tc, true)
			m := G.NewTapeMachine(c.g)
			defer m.Close()
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			geom, _ := newConvGeom("test", tc.x[:], tc.w[:], tc.o)
			ref := convRef{geom}
			y := ref.forward(c.xv, c.wv, c.bv, c.rv, true)
			r := c.weight
			dy := make([]float32, len(y))
			for i := range y {
				if y[i] > 0 {
					dy[i] = r[i]
				}
			}
			dx, dw, db := ref.backward(c.xv, c.wv, dy)
			for k, want := range [][]float32{dx, dw, db, dy} {
				got := c.grads[k].Value().Data().([]float32)
				if e := convMaxRelErr(got, want); e > 1e-5 {
					t.Errorf("gradient %d (%s): max rel error %g", k, []string{"x", "w", "b", "res"}[k], e)
				}
			}
		})
	}
}

func TestFoldConvBN(t *testing.T) {
	w := []float32{1, 2, 3, 4}
	wf, bf := FoldConvBN(w, []float32{1, -1}, []float32{2, 0.5}, []float32{10, 20})
	wantW := []float32{2, 4, 1.5, 2}
	wantB := []float32{12, 19.5}
	if fmt.Sprint(wf) != fmt.Sprint(wantW) || fmt.Sprint(bf) != fmt.Sprint(wantB) {
		t.Errorf("FoldConvBN = %v, %v; want %v, %v", wf, bf, wantW, wantB)
	}
	// In place: w and b overwritten by the folded values.
	b := []float32{1, -1}
	FoldConvBNInto(w, b, w, b, []float32{2, 0.5}, []float32{10, 20})
	if fmt.Sprint(w) != fmt.Sprint(wantW) || fmt.Sprint(b) != fmt.Sprint(wantB) {
		t.Errorf("FoldConvBNInto in place = %v, %v; want %v, %v", w, b, wantW, wantB)
	}
}

// convOSThreads counts the threads of this process.
func convOSThreads(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("cannot count threads: %v", err)
	}
	return len(ents)
}

// TestConvThreadsStayBounded calls convolutions from many goroutines with a
// high GOMAXPROCS: all oneDNN calls run on the engine's lanes (at most
// NumCPU/Threads() of them), so the OpenMP teams are created once and the
// thread count must not grow with the callers
// (calling oneDNN directly from each goroutine created a team per OS thread).
func TestConvThreadsStayBounded(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(16))
	g, err := newConvGeom("test", []int{1, 32, 24, 24}, []int{32, 32, 3, 3}, ConvOpts{Pad: [2]int{1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(5))
	x := convDense(g.X[:], randSlice(rng, convNum(g.X)))
	w := convDense(g.W[:], randSlice(rng, convNum(g.W)))
	op := convOp{geom: g}
	if _, err := op.Do(x, w); err != nil {
		t.Fatal(err)
	}
	before := convOSThreads(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				if _, err := op.Do(x, w); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The Go runtime may add up to one thread per P; an OpenMP team per
	// calling OS thread would add Threads()-1 more for each of them.
	if after := convOSThreads(t); after > before+16+Threads() {
		t.Errorf("threads grew from %d to %d with concurrent callers", before, after)
	}
	t.Logf("threads: %d before, %d after", before, convOSThreads(t))
}

// TestConv2dNoInputGrad checks that NoInputGrad leaves the backward-data
// convolution out of the graph, keeps the weight gradient exact, and makes a
// gradient w.r.t. x an error.
func TestConv2dNoInputGrad(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	o := ConvOpts{Stride: [2]int{2, 2}, Pad: [2]int{3, 3}, NoInputGrad: true}
	geom, err := newConvGeom("test", []int{1, 3, 15, 13}, []int{4, 3, 7, 7}, o)
	if err != nil {
		t.Fatal(err)
	}
	build := func() (*G.ExprGraph, *G.Node, *G.Node, *G.Node, []float32, []float32, []float32) {
		g := G.NewGraph()
		xv, wv, rv := randSlice(rng, convNum(geom.X)), randSlice(rng, convNum(geom.W)), randSlice(rng, convNum(geom.Y))
		x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(geom.X[:]...), G.WithName("x"), G.WithValue(convDense(geom.X[:], xv)))
		w := G.NewTensor(g, tensor.Float32, 4, G.WithShape(geom.W[:]...), G.WithName("w"), G.WithValue(convDense(geom.W[:], wv)))
		y, err := Conv2d(x, w, nil, o)
		if err != nil {
			t.Fatal(err)
		}
		r := G.NewConstant(convDense(geom.Y[:], rv), G.WithName("r"))
		return g, x, w, G.Must(G.Sum(G.Must(G.HadamardProd(y, r)))), xv, wv, rv
	}
	g, _, w, cost, xv, wv, rv := build()
	grads, err := G.Grad(cost, w)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.AllNodes() {
		if n.Op() != nil && strings.HasPrefix(n.Op().String(), "Conv2dBwdData") {
			t.Errorf("graph has %v despite NoInputGrad", n.Op())
		}
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	_, dw, _ := convRef{geom}.backward(xv, wv, rv)
	if e := convMaxRelErr(grads[0].Value().Data().([]float32), dw); e > 1e-5 {
		t.Errorf("dw: max rel error %g", e)
	}

	_, x, _, cost, _, _, _ := build()
	if _, err := G.Grad(cost, x); err == nil {
		t.Error("G.Grad w.r.t. x with NoInputGrad: no error")
	}
}

// TestConvBF16Accuracy measures the bf16 forward against float32 on the
// kernels of the four benchmark layers (small spatial sizes: the error
// depends on the reduction length C*KH*KW). Inputs are post-ReLU-like
// (|N(0,1)|) and the weights Kaiming-normal, as in a trained ResNet.
func TestConvBF16Accuracy(t *testing.T) {
	convSkipWithoutBF16(t)
	rng := rand.New(rand.NewSource(10))
	for _, l := range convBenchLayers {
		t.Run(l.name, func(t *testing.T) {
			x, w := l.x, l.w
			x[2], x[3] = 20, 24
			g32, err := newConvGeom("test", x[:], w[:], l.o)
			if err != nil {
				t.Fatal(err)
			}
			g16 := g32
			g16.BF16 = true
			xv := randSlice(rng, convNum(g32.X))
			for i := range xv {
				xv[i] = float32(math.Abs(float64(xv[i])))
			}
			wv := randSlice(rng, convNum(g32.W))
			std := float32(math.Sqrt(2 / float64(w[1]*w[2]*w[3])))
			for i := range wv {
				wv[i] *= std
			}
			in := []G.Value{convDense(g32.X[:], xv), convDense(g32.W[:], wv)}
			y32, err := convOp{geom: g32}.Do(in...)
			if err != nil {
				t.Fatal(err)
			}
			y16, err := convOp{geom: g16}.Do(in...)
			skipWithoutBF16(t, err)
			if err != nil {
				t.Fatal(err)
			}
			a, b := y32.Data().([]float32), y16.Data().([]float32)
			var maxDiff, maxAbs, sumRel float64
			for i := range a {
				d := math.Abs(float64(a[i]) - float64(b[i]))
				maxDiff = math.Max(maxDiff, d)
				maxAbs = math.Max(maxAbs, math.Abs(float64(a[i])))
				sumRel += d / math.Max(math.Abs(float64(a[i])), 1e-3)
			}
			t.Logf("bf16 vs fp32: max |diff| %.3g = %.3g of max |y| %.3g; mean rel diff %.3g",
				maxDiff, maxDiff/maxAbs, maxAbs, sumRel/float64(len(a)))
			if maxDiff/maxAbs > 1e-2 || maxDiff == 0 {
				t.Errorf("bf16 max |diff| / max |y| = %g, want in (0, 1e-2]", maxDiff/maxAbs)
			}
		})
	}
}

// TestConvTrainingThroughExecutor runs the gradient nodes of a small
// residual block (Conv2dBN with ReLU, blocked layout, stem without input
// gradient) through the package's Executor, which recycles intermediates,
// and compares the gradients with the TapeMachine's.
func TestConvTrainingThroughExecutor(t *testing.T) {
	build := func() (*G.ExprGraph, G.Nodes) {
		rng := rand.New(rand.NewSource(11))
		g := G.NewGraph()
		param := func(name string, shape ...int) *G.Node { return randParam(g, rng, name, shape...) }
		x := param("x", 1, 3, 17, 15)
		w1, w2, w3 := param("w1", 16, 3, 7, 7), param("w2", 16, 16, 3, 3), param("w3", 16, 16, 1, 1)
		sc, sh := G.NewConstant(convDense([]int{16}, randSlice(rng, 16))), param("shift", 16)
		y1 := G.Must(Conv2dBN(x, w1, sc, sh, nil, ConvOpts{Stride: [2]int{2, 2}, Pad: [2]int{3, 3}, BlockedOut: true, NoInputGrad: true}, true))
		blk := ConvOpts{Pad: [2]int{1, 1}, BlockedIn: true, BlockedOut: true}
		y2 := G.Must(Conv2dBN(y1, w2, sc, sh, nil, blk, true))
		y3 := G.Must(Conv2dBN(y2, w3, sc, sh, y1, ConvOpts{BlockedIn: true, BlockedOut: true}, true))
		cost := G.Must(G.Sum(G.Must(FromBlocked(y3))))
		grads, err := G.Grad(cost, w1, w2, w3, sh)
		if err != nil {
			t.Fatal(err)
		}
		return g, grads
	}
	g, tapeGrads := build()
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	g2, execGrads := build()
	e, err := NewExecutor(g2, execGrads...)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for run := 0; run < 2; run++ { // the second run reuses the pooled buffers
		if err := e.Run(); err != nil {
			t.Fatal(err)
		}
		for i := range tapeGrads {
			want := tapeGrads[i].Value().Data().([]float32)
			got := execGrads[i].Value().Data().([]float32)
			if e := convMaxRelErr(got, want); e > 1e-6 {
				t.Errorf("run %d: gradient %d differs from the tape's by %g", run, i, e)
			}
		}
	}
}

// TestConvReLUGradInPlace checks the gradient of a convolution with a fused
// ReLU run through the Executor: the masked output gradient is written into
// the forward output's buffer (convReLUGradOp.UnsafeDo) once nothing else
// reads it, and the gradients equal those of the same net with the ReLU as
// a separate op (nn.ReLU's own gradient). Net: y1 = ReLU(conv3x3(x, w1) +
// b1), y2 = conv1x1(y1, w2), cost = sum(y2 * r).
func TestConvReLUGradInPlace(t *testing.T) {
	build := func(fused bool) (G.Nodes, *Executor) {
		rng := rand.New(rand.NewSource(17))
		g := G.NewGraph()
		param := func(name string, shape ...int) *G.Node { return randParam(g, rng, name, shape...) }
		x, w1, b1 := param("x", 2, 8, 9, 11), param("w1", 16, 8, 3, 3), param("b1", 16)
		w2, r := param("w2", 8, 16, 1, 1), param("r", 2, 8, 9, 11)
		o := ConvOpts{Pad: [2]int{1, 1}}
		var y1 *G.Node
		if fused {
			y1 = G.Must(Conv2dFused(x, w1, b1, nil, o, true))
		} else {
			y1 = G.Must(ReLU(G.Must(Conv2d(x, w1, b1, o))))
		}
		y2 := G.Must(Conv2d(y1, w2, nil, ConvOpts{}))
		cost := G.Must(G.Sum(G.Must(G.HadamardProd(y2, r))))
		grads, err := G.Grad(cost, x, w1, b1, w2)
		if err != nil {
			t.Fatal(err)
		}
		e, err := NewExecutor(g, grads...)
		if err != nil {
			t.Fatal(err)
		}
		return grads, e
	}
	want, ref := build(false)
	defer ref.Close()
	if err := ref.Run(); err != nil {
		t.Fatal(err)
	}
	got, e := build(true)
	defer e.Close()
	for run := 0; run < 2; run++ {
		if err := e.Run(); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if d := convMaxRelErr(got[i].Value().Data().([]float32), want[i].Value().Data().([]float32)); d > 1e-6 {
				t.Errorf("run %d: gradient %d differs from the separate ReLU's by %g", run, i, d)
			}
		}
		// The separate ReLU's gradient does not run in place; the rest of
		// the two graphs is the same.
		if n, m := e.Stats().InPlace, ref.Stats().InPlace; n != m+1 {
			t.Errorf("run %d: %d steps in place, want %d (the separate ReLU's %d and the ReLU mask into y1's buffer)", run, n, m+1, m)
		}
	}
}

// TestConvConstWeights checks that ConstWeights gives the same results as
// converting the weights on every run, keeps two weight tensors of the same
// geometry apart, and really reuses the packed copy (an in-place change of w
// is not seen, as documented).
func TestConvConstWeights(t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	for _, bf16 := range []bool{false, true} {
		for _, scaled := range []bool{false, true} {
			t.Run(fmt.Sprintf("bf16=%v/scaled=%v", bf16, scaled), func(t *testing.T) {
				if bf16 {
					convSkipWithoutBF16(t)
				}
				o := ConvOpts{Pad: [2]int{1, 1}, BF16: bf16, BlockedIn: true, BlockedOut: true}
				g, err := newConvGeom("test", []int{1, 32, 9, 11}, []int{32, 32, 3, 3}, o)
				if err != nil {
					t.Fatal(err)
				}
				x := convDense(g.X[:], randSlice(rng, convNum(g.X)))
				w1 := convDense(g.W[:], randSlice(rng, convNum(g.W)))
				w2 := convDense(g.W[:], randSlice(rng, convNum(g.W)))
				b := convDense([]int{32}, randSlice(rng, 32))
				sc := convDense([]int{32}, randSlice(rng, 32))
				in := func(w G.Value) []G.Value {
					if scaled {
						return []G.Value{x, w, sc, b}
					}
					return []G.Value{x, w, b}
				}
				plain := convOp{geom: g, scaled: scaled, bias: true, relu: true}
				packed := plain
				packed.constWeights = true
				for round := 0; round < 2; round++ {
					for k, w := range []G.Value{w1, w2} {
						want, err := plain.Do(in(w)...)
						if bf16 {
							skipWithoutBF16(t, err)
						}
						if err != nil {
							t.Fatal(err)
						}
						got, err := packed.Do(in(w)...)
						if err != nil {
							t.Fatal(err)
						}
						if e := convMaxRelErr(got.Data().([]float32), want.Data().([]float32)); e != 0 {
							t.Errorf("round %d, weights %d: packed differs by %g", round, k, e)
						}
					}
				}
				before, err := packed.Do(in(w1)...)
				if err != nil {
					t.Fatal(err)
				}
				w1.Data().([]float32)[0] += 100
				after, err := packed.Do(in(w1)...)
				if err != nil {
					t.Fatal(err)
				}
				if e := convMaxRelErr(after.Data().([]float32), before.Data().([]float32)); e != 0 {
					t.Errorf("in-place change of constant weights changed the output by %g: the packed copy is not used", e)
				}
			})
		}
	}
	if convPackedCount() == 0 {
		t.Error("no packed weights kept")
	}
	ReleaseConvBuffers()
	if n := convPackedCount(); n != 0 {
		t.Errorf("ReleaseConvBuffers left %d packed weights", n)
	}
}
