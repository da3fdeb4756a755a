package nn

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// testNet is a small graph mixing this package's ops with stock gorgonia ops
// (Reshape, Sub, Add, Tanh), so the executor sees aliasing values and ops without
// UsePreallocDo.
type testNet struct {
	g       *G.ExprGraph
	x       *G.Node
	xData   []float32
	outputs []*G.Node
}

func newTestNet(t *testing.T, seed int64) *testNet {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	g := G.NewGraph()
	n, c, h, w := 2, 4, 12, 10
	param := func(name string, shape ...int) *G.Node { return randParam(g, rng, name, shape...) }
	tn := &testNet{g: g, xData: randSlice(rng, n*c*h*w)}
	tn.x = G.NewTensor(g, G.Float32, 4, G.WithShape(n, c, h, w), G.WithName("x"),
		G.WithValue(tensorOf(tn.xData, n, c, h, w)))
	must := mustNode(t)
	p := must(MaxPool2d(tn.x, 3, 2, 1)) // [2, 4, 6, 5]
	a := must(Affine(p, param("s1", c), param("b1", c), nil, true))
	// flat aliases a's memory (gorgonia's Reshape shares the backing array);
	// it is read at the very end, after a chain of ops that would reuse a's
	// buffer if the alias were not tracked.
	flat := must(G.Reshape(a, tensor.Shape{n, c * 6 * 5}))
	cur := a
	for i := 0; i < 4; i++ {
		cur = must(Affine(cur, param(fmt.Sprint("s", i), c), param(fmt.Sprint("b", i), c), cur, i%2 == 0))
	}
	cur = must(ReLU(cur))
	flat2 := must(G.Reshape(cur, tensor.Shape{n, c * 6 * 5}))
	diff := must(G.Sub(flat, flat2))              // order matters: checks the inputs' order
	sum := must(G.Add(diff, must(G.Tanh(flat2)))) // Tanh has no UsePreallocDo
	logits := must(Linear(sum, param("w", 3, c*6*5), param("lb", 3)))
	pooled := must(GlobalAvgPool(cur))
	tn.outputs = []*G.Node{logits, pooled}
	return tn
}

// tapeValues runs g with gorgonia's TapeMachine and returns copies of the
// float32 values of outs, one slice per node.
func tapeValues(t *testing.T, g *G.ExprGraph, outs ...*G.Node) [][]float32 {
	t.Helper()
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	vals := make([][]float32, len(outs))
	for i, o := range outs {
		vals[i] = append([]float32(nil), o.Value().Data().([]float32)...)
	}
	return vals
}

func TestExecutorMatchesTapeMachine(t *testing.T) {
	tn := newTestNet(t, 1)
	want := tapeValues(t, tn.g, tn.outputs...)
	e, err := NewExecutor(tn.g, tn.outputs...)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var allocs int
	for run := 0; run < 3; run++ {
		if err := e.Run(); err != nil {
			t.Fatal(err)
		}
		for i, o := range tn.outputs {
			expectClose(t, o.Name(), o.Value().Data().([]float32), want[i], 1e-6, 1e-6)
		}
		st := e.Stats()
		// Reshape's results are views of pooled buffers and Sub and Add take
		// pooled buffers through their UsePreallocDo; Tanh (no
		// UsePreallocDo) runs in place on flat2's buffer, as it is its last
		// reader once GlobalAvgPool (a reduction) has run early: with Sub
		// (into flat) and Add (into diff), three steps in place.
		if st.Unpooled != 0 || st.InPlace != 3 {
			t.Errorf("run %d: %d values allocated outside the pool and %d steps in place, want 0 and 3", run, st.Unpooled, st.InPlace)
		}
		if run == 0 {
			allocs = st.Allocs
		} else if st.Allocs != allocs {
			t.Errorf("run %d: %d pool allocations, first run made %d", run, st.Allocs, allocs)
		}
	}
	// New input values are picked up by the next run.
	for i := range tn.xData {
		tn.xData[i] = -tn.xData[i]
	}
	if err := e.Run(); err != nil {
		t.Fatal(err)
	}
	got := append([]float32(nil), tn.outputs[0].Value().Data().([]float32)...)
	want = tapeValues(t, tn.g, tn.outputs...)
	expectClose(t, "logits after new input", got, want[0], 1e-6, 1e-6)
}

// TestExecutorRecyclesBuffers checks that a long chain needs a few buffers,
// not one per op, and that repeated runs allocate nothing.
func TestExecutorRecyclesBuffers(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	g := G.NewGraph()
	c, size := 8, 8*32*32
	x := G.NewTensor(g, G.Float32, 4, G.WithShape(1, c, 32, 32), G.WithName("x"),
		G.WithValue(tensorOf(randSlice(rng, size), 1, c, 32, 32)))
	s := G.NewVector(g, G.Float32, G.WithShape(c), G.WithName("s"), G.WithValue(tensorOf(randSlice(rng, c), c)))
	b := G.NewVector(g, G.Float32, G.WithShape(c), G.WithName("b"), G.WithValue(tensorOf(randSlice(rng, c), c)))
	cur, prev := x, x
	const depth = 30
	for i := 0; i < depth; i++ {
		next, err := Affine(cur, s, b, prev, true) // residual from two steps back
		if err != nil {
			t.Fatal(err)
		}
		prev, cur = cur, next
	}
	e, err := NewExecutor(g, cur)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for run := 0; run < 4; run++ {
		if err := e.Run(); err != nil {
			t.Fatal(err)
		}
	}
	st := e.Stats()
	// Alive at once: the two inputs of a step and its output.
	if st.Allocs > 3 {
		t.Errorf("%d buffers for a chain of %d ops, want at most 3", st.Allocs, depth)
	}
	if st.PeakLiveBytes > 3*4*int64(size) {
		t.Errorf("peak %d bytes, want at most %d", st.PeakLiveBytes, 3*4*size)
	}
	if st.Runs != 4 {
		t.Errorf("Runs = %d, want 4", st.Runs)
	}
	t.Logf("chain of %d: %+v", depth, st)
}

func TestExecutorErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 2, 4, 4), G.WithName("unbound"))
	y, err := ReLU(x)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewExecutor(g); err == nil {
		t.Error("NewExecutor without outputs: no error")
	}
	e, err := NewExecutor(g, y)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(); err == nil {
		t.Error("Run with an unbound input: no error")
	} else {
		t.Log(err)
	}
	e.Close()
	if err := e.Run(); err == nil {
		t.Error("Run after Close: no error")
	}
}

// TestExecutorBackward runs the symbolic gradient graph of G.Grad through the
// Executor (gradients as outputs) and compares with central differences of
// the loss computed by a forward Executor. (The TapeMachine is no reference
// here: with gorgonia's Reshape in the graph its gradients are wrong, see
// TestReshapeTapeGradients.)
func TestExecutorBackward(t *testing.T) {
	tn := newTestNet(t, 3)
	loss, err := G.Sum(tn.outputs[0])
	if err != nil {
		t.Fatal(err)
	}
	wrt := []*G.Node{tn.x}
	for _, n := range tn.g.AllNodes() {
		if n.Name() == "s0" || n.Name() == "w" || n.Name() == "lb" {
			wrt = append(wrt, n)
		}
	}
	if len(wrt) != 4 {
		t.Fatalf("found %d parameters, want 4", len(wrt))
	}
	grads, err := G.Grad(loss, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewExecutor(tn.g, grads...)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	fwd, err := NewExecutor(tn.g, tn.outputs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	lossAt := func() float64 {
		if err := fwd.Run(); err != nil {
			t.Fatal(err)
		}
		var s float64
		for _, v := range tn.outputs[0].Value().Data().([]float32) {
			s += float64(v)
		}
		return s
	}
	for run := 0; run < 2; run++ {
		if err := e.Run(); err != nil {
			t.Fatal(err)
		}
	}
	got := make([][]float32, len(grads))
	for i, gn := range grads {
		got[i] = append([]float32(nil), gn.Value().Data().([]float32)...)
	}
	// The loss is linear in w and lb and piecewise smooth in x and s0, so
	// the central differences are off mostly by the float32 rounding of the
	// logits the loss sums: up to about half an ulp of sum|logits| per
	// evaluation for their final rounding alone, so one ulp for the
	// difference of two, divided by the step 2*eps (6.1e-3 here). The bound
	// is that, plus 1e-3 relative for the curvature of Tanh over the step.
	const eps = 1e-2
	lossAt()
	var scale float64
	for _, v := range tn.outputs[0].Value().Data().([]float32) {
		scale += abs64(float64(v))
	}
	ulp := float64(math.Nextafter32(float32(scale), float32(math.Inf(1)))) - float64(float32(scale))
	noise := ulp / (2 * eps)
	var worst, worstUlps float64
	for i, n := range wrt {
		data := n.Value().Data().([]float32)
		step := max(1, len(data)/15)
		for j := 0; j < len(data); j += step {
			num := centralDiff(data, j, eps, lossAt)
			d := abs64(num - float64(got[i][j]))
			worst, worstUlps = max(worst, d), max(worstUlps, d/noise)
			if !(d <= noise+1e-3*abs64(num)) {
				t.Errorf("d loss/d %s[%d]: executor %g, numeric %g (bound %.2e)", n.Name(), j, got[i][j], num, noise+1e-3*abs64(num))
			}
		}
	}
	t.Logf("worst |numeric-executor| %.2e = %.2f ulps of sum|logits| (%g) / (2*eps); bound 1 ulp (%.2e) + 1e-3*|numeric|",
		worst, worstUlps, scale, noise)
	t.Logf("%+v", e.Stats())
}

func abs64(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// TestExecutorGrowsBuffers makes the pool grow freed small buffers for later,
// larger values (small activations, then a wide Linear) and checks that
// repeated runs still allocate nothing and keep every value pooled.
func TestExecutorGrowsBuffers(t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 2, 4, 4), G.WithName("x"),
		G.WithValue(tensorOf(randSlice(rng, 32), 1, 2, 4, 4)))
	w := G.NewMatrix(g, G.Float32, G.WithShape(1000, 2), G.WithName("w"),
		G.WithValue(tensorOf(randSlice(rng, 2000), 1000, 2)))
	must := mustNode(t)
	r := must(ReLU(must(ReLU(x))))
	y := must(ReLU(must(Linear(must(GlobalAvgPool(r)), w, nil))))
	want := tapeValues(t, g, y)[0]
	e, err := NewExecutor(g, y)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var first ExecStats
	for run := 0; run < 3; run++ {
		if err := e.Run(); err != nil {
			t.Fatal(err)
		}
		expectClose(t, "y", y.Value().Data().([]float32), want, 1e-6, 1e-6)
		st := e.Stats()
		if st.Unpooled != 0 {
			t.Errorf("run %d: %d values outside the pool", run, st.Unpooled)
		}
		if run == 0 {
			first = st
		} else if st.Allocs != first.Allocs || st.PoolBytes != first.PoolBytes {
			t.Errorf("run %d: %+v, first run %+v", run, st, first)
		}
	}
	// Two 1000-element values are alive at most; grown buffers replace the
	// small ones instead of joining them.
	if first.PoolBytes > 2*4*1000+4*32 {
		t.Errorf("pool holds %d bytes, want at most %d", first.PoolBytes, 2*4*1000+4*32)
	}
	t.Logf("%+v", first)
}

// TestExecutorInPlace checks that gorgonia's elementwise ops write into their
// first input's buffer only when they are its last consumer: a is read by
// s first (not in place) and last by m (in place), and t then reuses m's
// buffer; s, an output, must survive. Two runs: the second replays the
// first's buffers.
func TestExecutorInPlace(t *testing.T) {
	g := G.NewGraph()
	rng := rand.New(rand.NewSource(3))
	xd, yd := randSlice(rng, 20), randSlice(rng, 20)
	x := G.NewTensor(g, G.Float32, 2, G.WithShape(4, 5), G.WithName("x"), G.WithValue(tensorOf(xd, 4, 5)))
	y := G.NewTensor(g, G.Float32, 2, G.WithShape(4, 5), G.WithName("y"), G.WithValue(tensorOf(yd, 4, 5)))
	a, err := ReLU(x)
	if err != nil {
		t.Fatal(err)
	}
	s := G.Must(G.Add(a, y))
	m := G.Must(G.HadamardProd(a, s))
	out := G.Must(G.Add(m, y))
	ex, err := NewExecutor(g, s, out)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	for run := 0; run < 2; run++ {
		if err := ex.Run(); err != nil {
			t.Fatal(err)
		}
		gotS, gotT := s.Value().Data().([]float32), out.Value().Data().([]float32)
		for i := range xd {
			r := max(xd[i], 0)
			wantS := r + yd[i]
			wantT := r*wantS + yd[i]
			if gotS[i] != wantS || gotT[i] != wantT {
				t.Fatalf("run %d element %d: s %g t %g, want %g %g", run, i, gotS[i], gotT[i], wantS, wantT)
			}
		}
		if st := ex.Stats(); st.InPlace != 2 {
			t.Errorf("run %d: %d steps in place, want 2 (m into a's buffer, t into m's)", run, st.InPlace)
		}
	}
}

// TestExecutorHoistsReductions checks that a reduction listed as a later
// output runs as soon as its input exists (hoistReductions): x -> h = ReLU(x),
// then a chain r1 = ReLU(h), r2 = ReLU(r1), r3 = ReLU(r2) and s = Sum(h). In
// the depth-first order s runs last and h stays alive beside r1 and r2 (three
// buffers); run early, h goes after r1 (two).
func TestExecutorHoistsReductions(t *testing.T) {
	g := G.NewGraph()
	const n = 4096
	xData := make([]float32, n)
	for i := range xData {
		xData[i] = float32(i%7) - 3
	}
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 4, 32, 32), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(1, 4, 32, 32), tensor.WithBacking(xData))))
	must := mustNode(t)
	h := must(ReLU(x))
	r := h
	for i := 0; i < 3; i++ {
		r = must(ReLU(r))
	}
	s := must(G.Sum(h))
	e, err := NewExecutor(g, r, s)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Run(); err != nil {
		t.Fatal(err)
	}
	var want float32
	for _, v := range xData {
		want += max(v, 0)
	}
	if got := s.Value().Data().(float32); got != want {
		t.Errorf("sum = %v, want %v", got, want)
	}
	if got, wantB := e.Stats().PeakLiveBytes, int64(2*4*n); got != wantB {
		t.Errorf("peak live bytes %d, want %d (two buffers of %d floats)", got, wantB, n)
	}
}
