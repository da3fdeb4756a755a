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
	eps float64 // finite-difference step; default 1e-2
	// rtol and atol bound |num-ana| <= atol + rtol*|num|; defaults
	// defaultGradRtol and defaultGradAtol.
	rtol, atol float64
	maxProbe   int // elements probed per input (evenly spaced); default 64
	seed       int64
	w          []float32 // loss weights (output's size); nil: random
	// skipNumeric only computes the output and the analytic gradients (for
	// inputs with ties or kinks, compared with a reference instead).
	skipNumeric bool
}

// The checker's default tolerances. The package's checks differ from central
// differences (eps 1e-2) by at most 1.3e-4 and a tenth of the bound: the
// float32 rounding of the loss divided by 2*eps, and the eps^2 truncation of
// smooth ops. TestGradCheckCatchesSmallErrors shows what the bound catches.
const (
	defaultGradRtol = 2e-3
	defaultGradAtol = 5e-4
)

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
	Logf(format string, args ...any)
}

// checkGradsInto is checkGrads reporting to r; corrupt, if not nil, is applied
// to the analytic gradient of each input (by index) before the comparison
// (for the checker's own tests).
func checkGradsInto(t reporter, build func(g *G.ExprGraph, in []*G.Node) (*G.Node, error),
	inputs []gradInput, o gradCheckOpts, corrupt func(input int, grad []float32)) gradResult {
	t.Helper()
	if o.eps == 0 {
		o.eps = 1e-2
	}
	if o.rtol == 0 {
		o.rtol = defaultGradRtol
	}
	if o.atol == 0 {
		o.atol = defaultGradAtol
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
			corrupt(i, grads[i])
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
		bad, probed := 0, 0
		var worstDiff, worstRatio float64
		for j := 0; j < len(data); j += step {
			num := centralDiff(data, j, float32(o.eps), run)
			ana := float64(grads[i][j])
			d := math.Abs(num - ana)
			probed++
			worstDiff = max(worstDiff, d)
			worstRatio = max(worstRatio, d/(o.atol+o.rtol*math.Abs(num)))
			if !(d <= o.atol+o.rtol*math.Abs(num)) {
				bad++
				if bad <= 5 {
					t.Errorf("gradcheck: d loss/d %s[%d]: analytic %.6g, numeric %.6g", in.name, j, ana, num)
				}
			}
		}
		if bad > 5 {
			t.Errorf("gradcheck: %s: %d mismatches in total", in.name, bad)
		}
		t.Logf("gradcheck: %s: %d elements probed, worst |numeric-analytic| %.2e, worst ratio to the bound (%g + %g*|numeric|) %.3f",
			in.name, probed, worstDiff, o.atol, o.rtol, worstRatio)
	}
	return res
}

// centralDiff returns the central difference (loss(x+eps) - loss(x-eps)) / h
// with respect to data[j], h being the actual step after rounding to float32,
// and leaves data[j] as it was.
func centralDiff(data []float32, j int, eps float32, loss func() float64) float64 {
	orig := data[j]
	data[j] = orig + eps
	up := loss()
	data[j] = orig - eps
	down := loss()
	data[j] = orig
	return (up - down) / (float64(orig+eps) - float64(orig-eps))
}

// runChecker runs checkGradsInto, recording instead of failing the test, and
// returns the recorder.
func runChecker(build func(g *G.ExprGraph, in []*G.Node) (*G.Node, error), inputs []gradInput,
	o gradCheckOpts, corrupt func(int, []float32)) *recorder {
	rec := &recorder{}
	func() {
		defer func() {
			if r := recover(); r != nil && r != rec {
				panic(r)
			}
		}()
		checkGradsInto(rec, build, inputs, o, corrupt)
	}()
	return rec
}

// TestGradCheckCatchesSmallErrors makes sure the checker fails gradients that
// are slightly wrong, not only grossly wrong ones, with its default bound
// |numeric-analytic| <= 5e-4 + 2e-3*|numeric|: one element of a Linear's weight
// gradient off by 1% of the gradient's norm (at its largest and at its
// smallest element), every element 1% too large, and a ReLU gradient scaled by
// 2. The same gradients off by 1e-4 relative (below the bound) pass, so the
// failures come from the corruption, not from the op.
func TestGradCheckCatchesSmallErrors(t *testing.T) {
	rng := rand.New(rand.NewSource(21))
	linear := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Linear(in[0], in[1], in[2]) }
	linearInputs := []gradInput{
		{name: "x", shape: []int{3, 8}, data: randSlice(rng, 24)},
		{name: "w", shape: []int{5, 8}, data: randSlice(rng, 40)},
		{name: "b", shape: []int{5}, data: randSlice(rng, 5)},
	}
	reluX := make([]float32, 24)
	for i := range reluX {
		reluX[i] = float32(i%7) - 2.5
	}
	relu := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		y, err := ReLU(in[0])
		if err != nil {
			return nil, err
		}
		return G.Mul(y, G.NewConstant(float32(1)))
	}
	reluInputs := []gradInput{{name: "x", shape: []int{2, 3, 4}, data: reluX}}

	// oneElement adds frac*||g|| to the element of input 1 (w) whose gradient
	// has the largest (or the smallest) magnitude.
	oneElement := func(frac float64, largest bool) func(int, []float32) {
		return func(input int, g []float32) {
			if input != 1 {
				return
			}
			var norm float64
			at := 0
			for j, v := range g {
				norm += float64(v) * float64(v)
				a, b := math.Abs(float64(v)), math.Abs(float64(g[at]))
				if largest && a > b || !largest && a < b {
					at = j
				}
			}
			g[at] += float32(frac * math.Sqrt(norm))
		}
	}
	scale := func(f float32) func(int, []float32) {
		return func(_ int, g []float32) {
			for j := range g {
				g[j] *= f
			}
		}
	}
	cases := []struct {
		name    string
		build   func(g *G.ExprGraph, in []*G.Node) (*G.Node, error)
		inputs  []gradInput
		corrupt func(int, []float32)
		caught  bool
	}{
		{name: "linear w largest element +1% of norm", build: linear, inputs: linearInputs, corrupt: oneElement(1e-2, true), caught: true},
		{name: "linear w smallest element +1% of norm", build: linear, inputs: linearInputs, corrupt: oneElement(1e-2, false), caught: true},
		{name: "linear all gradients 1% too large", build: linear, inputs: linearInputs, corrupt: scale(1.01), caught: true},
		{name: "relu gradient doubled", build: relu, inputs: reluInputs, corrupt: scale(2), caught: true},
		{name: "linear w largest element +0.01% of norm", build: linear, inputs: linearInputs, corrupt: oneElement(1e-4, true)},
		{name: "linear all gradients 0.01% too large", build: linear, inputs: linearInputs, corrupt: scale(1.0001)},
		{name: "linear exact", build: linear, inputs: linearInputs},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := runChecker(tc.build, tc.inputs, gradCheckOpts{}, tc.corrupt)
			if rec.fatal != "" {
				t.Fatalf("checker failed: %s", rec.fatal)
			}
			t.Logf("bound %g + %g*|numeric|: %d mismatches reported", defaultGradAtol, defaultGradRtol, rec.errors)
			if tc.caught && rec.errors == 0 {
				t.Error("checker accepted the corrupted gradient")
			}
			if !tc.caught && rec.errors != 0 {
				t.Errorf("checker reported %d mismatches for an error below its bound", rec.errors)
			}
		})
	}
}

// recorder counts reported errors.
type recorder struct {
	errors int
	fatal  string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Logf(string, ...any)       {}
func (r *recorder) Errorf(string, ...any)     { r.errors++ }
func (r *recorder) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...); panic(r) }
