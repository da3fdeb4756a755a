package nn

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file holds a finite-difference gradient checker that any op of the
// package can use:
//
//	checkGrads(t, build, []gradInput{{name: "x", shape: []int{2, 3, 4, 5}, data: x}}, gradCheckOpts{})
//
// build gets the graph and one node per input (in order) and returns the op's
// output. The checker differentiates loss = Σ out·w (w fixed, random) with
// G.Grad and a TapeMachine, and compares every input's gradient with central
// differences of the same loss, computed in float64 from the forward output.

// gradInput is one input of the graph under test.
type gradInput struct {
	name  string
	shape []int
	data  []float32 // copied; nil means standard normal values from the checker's rng
	// noGrad excludes the input from G.Grad and from the check (constants,
	// indices, frozen parameters).
	noGrad bool
}

// gradCheckOpts tunes checkGrads. Zero values select the defaults.
type gradCheckOpts struct {
	eps        float64 // finite-difference step; default 1e-2
	rtol, atol float64 // |num-ana| <= atol + rtol*|num|; defaults 2e-2, 2e-3
	maxProbe   int     // elements probed per input (evenly spaced); default 64
	seed       int64
	w          []float32 // loss weights (output's size); nil: random
	// skipNumeric only computes the output and the analytic gradients (for
	// inputs with ties or kinks, compared with a reference instead).
	skipNumeric bool
}

// gradResult is what checkGrads computed: the output and the analytic
// gradient of each input (nil for noGrad inputs).
type gradResult struct {
	out   []float32
	grads [][]float32
}

// checkGrads runs the check described above and reports every mismatch with
// t.Errorf. It returns the analytic gradients (nil for noGrad inputs) so the
// caller can also compare them with a reference.
func checkGrads(t *testing.T, build func(g *G.ExprGraph, in []*G.Node) (*G.Node, error),
	inputs []gradInput, o gradCheckOpts) gradResult {
	t.Helper()
	return checkGradsInto(t, build, inputs, o, nil)
}

// reporter is the part of testing.TB the checker uses.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// checkGradsInto is checkGrads reporting to r; corrupt, if not nil, is applied
// to each analytic gradient before the comparison (for the checker's own test).
func checkGradsInto(t reporter, build func(g *G.ExprGraph, in []*G.Node) (*G.Node, error),
	inputs []gradInput, o gradCheckOpts, corrupt func([]float32)) gradResult {
	t.Helper()
	if o.eps == 0 {
		o.eps = 1e-2
	}
	if o.rtol == 0 {
		o.rtol = 2e-2
	}
	if o.atol == 0 {
		o.atol = 2e-3
	}
	if o.maxProbe == 0 {
		o.maxProbe = 64
	}
	rng := rand.New(rand.NewSource(o.seed + 1))

	g := G.NewGraph()
	nodes := make([]*G.Node, len(inputs))
	datas := make([][]float32, len(inputs))
	var wrt []*G.Node
	for i, in := range inputs {
		n := 1
		for _, d := range in.shape {
			n *= d
		}
		data := make([]float32, n)
		if in.data != nil {
			if len(in.data) != n {
				t.Fatalf("gradcheck: input %s has %d values, shape %v needs %d", in.name, len(in.data), in.shape, n)
			}
			copy(data, in.data)
		} else {
			for j := range data {
				data[j] = float32(rng.NormFloat64())
			}
		}
		datas[i] = data
		v := tensor.New(tensor.WithShape(in.shape...), tensor.WithBacking(data))
		nodes[i] = G.NewTensor(g, tensor.Float32, len(in.shape), G.WithShape(in.shape...),
			G.WithName(in.name), G.WithValue(v))
		if !in.noGrad {
			wrt = append(wrt, nodes[i])
		}
	}
	out, err := build(g, nodes)
	if err != nil {
		t.Fatalf("gradcheck: build: %v", err)
	}
	oshape := out.Shape()
	w := o.w
	if w == nil {
		w = make([]float32, oshape.TotalSize())
		for j := range w {
			w[j] = float32(rng.NormFloat64())
		}
	} else if len(w) != oshape.TotalSize() {
		t.Fatalf("gradcheck: %d loss weights for output shape %v", len(w), oshape)
	}
	wn := G.NewTensor(g, tensor.Float32, oshape.Dims(), G.WithShape(oshape...), G.WithName("gradcheck.w"),
		G.WithValue(tensor.New(tensor.WithShape(oshape...), tensor.WithBacking(w))))
	prod, err := G.HadamardProd(out, wn)
	if err != nil {
		t.Fatalf("gradcheck: loss: %v", err)
	}
	loss, err := G.Sum(prod)
	if err != nil {
		t.Fatalf("gradcheck: loss: %v", err)
	}
	if _, err := G.Grad(loss, wrt...); err != nil {
		t.Fatalf("gradcheck: Grad: %v", err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	run := func() float64 {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatalf("gradcheck: run: %v", err)
		}
		y := out.Value().Data().([]float32)
		var s float64
		for j, v := range y {
			s += float64(v) * float64(w[j])
		}
		return s
	}
	run()
	res := gradResult{out: append([]float32(nil), out.Value().Data().([]float32)...)}
	grads := make([][]float32, len(inputs))
	for i, n := range nodes {
		if inputs[i].noGrad {
			continue
		}
		gv, err := n.Grad()
		if err != nil {
			t.Fatalf("gradcheck: gradient of %s: %v", inputs[i].name, err)
		}
		grads[i] = append([]float32(nil), gv.Data().([]float32)...)
		if corrupt != nil {
			corrupt(grads[i])
		}
	}
	res.grads = grads
	if o.skipNumeric {
		return res
	}
	for i, in := range inputs {
		if in.noGrad {
			continue
		}
		data := datas[i]
		step := max(1, len(data)/o.maxProbe)
		bad := 0
		for j := 0; j < len(data); j += step {
			orig := data[j]
			data[j] = orig + float32(o.eps)
			up := run()
			data[j] = orig - float32(o.eps)
			down := run()
			data[j] = orig
			// The actual step after rounding to float32.
			h := float64(orig+float32(o.eps)) - float64(orig-float32(o.eps))
			num := (up - down) / h
			ana := float64(grads[i][j])
			if d := math.Abs(num - ana); !(d <= o.atol+o.rtol*math.Abs(num)) {
				bad++
				if bad <= 5 {
					t.Errorf("gradcheck: d loss/d %s[%d]: analytic %.6g, numeric %.6g", in.name, j, ana, num)
				}
			}
		}
		if bad > 5 {
			t.Errorf("gradcheck: %s: %d mismatches in total", in.name, bad)
		}
	}
	return res
}

// TestGradCheckCatchesWrongGradient makes sure the checker can fail: a ReLU
// whose gradient is scaled by 2 must be reported.
func TestGradCheckCatchesWrongGradient(t *testing.T) {
	x := make([]float32, 24)
	for i := range x {
		x[i] = float32(i%7) - 2.5
	}
	var rec recorder
	func() {
		defer func() {
			if r := recover(); r != nil && r != &rec {
				panic(r)
			}
		}()
		checkGradsInto(&rec, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			y, err := ReLU(in[0])
			if err != nil {
				return nil, err
			}
			return G.Mul(y, G.NewConstant(float32(1)))
		}, []gradInput{{name: "x", shape: []int{2, 3, 4}, data: x}}, gradCheckOpts{}, func(g []float32) {
			for i := range g {
				g[i] *= 2
			}
		})
	}()
	if rec.fatal != "" {
		t.Fatalf("checker failed: %s", rec.fatal)
	}
	if rec.errors == 0 {
		t.Fatal("checker accepted a gradient scaled by 2")
	}
}

// recorder counts reported errors.
type recorder struct {
	errors int
	fatal  string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Errorf(string, ...any)     { r.errors++ }
func (r *recorder) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...); panic(r) }
