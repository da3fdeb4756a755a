package nn

import (
	"math"
	"math/rand"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"
)

// TestExecutorSharePool runs two stages, the second reading the first's
// output, with and without a shared pool: the same results bit for bit, the
// first stage's output intact after the second runs, no allocation after
// the first pair of runs, and a shared pool smaller than the two separate
// ones (the second stage's large intermediate reuses the first's).
func TestExecutorSharePool(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	must := mustNode(t)
	type stages struct {
		e1, e2 *Executor
		out1   *G.Node // stage 1 output [1000, 8]
		in2    *G.Node // stage 2 input, bound to out1's value
		out2   *G.Node // stage 2 output [1000, 4]
	}
	x := randSlice(rng, 1000*16)
	ws := [][]float32{randSlice(rng, 64*16), randSlice(rng, 8*64), randSlice(rng, 64*8), randSlice(rng, 4*64)}
	build := func(share bool) stages {
		g := G.NewGraph()
		param := func(name string, data []float32, shape ...int) *G.Node {
			return G.NewTensor(g, G.Float32, len(shape), G.WithShape(shape...), G.WithName(name),
				G.WithValue(tensorOf(append([]float32(nil), data...), shape...)))
		}
		var s stages
		xn := param("x", x, 1000, 16)
		a := must(ReLU(must(Linear(xn, param("w1", ws[0], 64, 16), nil))))
		s.out1 = must(Linear(a, param("w2", ws[1], 8, 64), nil))
		s.in2 = param("in2", make([]float32, 8000), 1000, 8)
		c := must(ReLU(must(Linear(s.in2, param("w3", ws[2], 64, 8), nil))))
		s.out2 = must(Linear(c, param("w4", ws[3], 4, 64), nil))
		var err error
		if s.e1, err = NewExecutor(g, s.out1); err != nil {
			t.Fatal(err)
		}
		if s.e2, err = NewExecutor(g, s.out2); err != nil {
			t.Fatal(err)
		}
		if share {
			if err := s.e2.SharePool(s.e1); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	run := func(s stages) (out1, out2 []float32) {
		if err := s.e1.Run(); err != nil {
			t.Fatal(err)
		}
		if err := G.Let(s.in2, s.out1.Value()); err != nil {
			t.Fatal(err)
		}
		before := append([]float32(nil), s.out1.Value().Data().([]float32)...)
		if err := s.e2.Run(); err != nil {
			t.Fatal(err)
		}
		after := s.out1.Value().Data().([]float32)
		for i := range before {
			if before[i] != after[i] {
				t.Fatalf("stage 1 output[%d] changed from %v to %v when stage 2 ran", i, before[i], after[i])
			}
		}
		return before, append([]float32(nil), s.out2.Value().Data().([]float32)...)
	}
	sep, shared := build(false), build(true)
	defer sep.e1.Close()
	defer sep.e2.Close()
	defer shared.e1.Close()
	defer shared.e2.Close()
	var allocs [2]int
	for r := 0; r < 3; r++ {
		a1, a2 := run(sep)
		b1, b2 := run(shared)
		for i := range a1 {
			if math.Float32bits(a1[i]) != math.Float32bits(b1[i]) {
				t.Fatalf("run %d: stage 1 output[%d] %v shared, %v separate", r, i, b1[i], a1[i])
			}
		}
		for i := range a2 {
			if math.Float32bits(a2[i]) != math.Float32bits(b2[i]) {
				t.Fatalf("run %d: stage 2 output[%d] %v shared, %v separate", r, i, b2[i], a2[i])
			}
		}
		n := [2]int{shared.e1.Stats().Allocs, shared.e2.Stats().Allocs}
		if r > 0 && n != allocs {
			t.Errorf("run %d: allocations %v, after the first run %v", r, n, allocs)
		}
		allocs = n
	}
	sepBytes := sep.e1.Stats().PoolBytes + sep.e2.Stats().PoolBytes
	sh := shared.e1.Stats().PoolBytes
	t.Logf("pool bytes: separate %d + %d, shared %d", sep.e1.Stats().PoolBytes, sep.e2.Stats().PoolBytes, sh)
	if shared.e2.Stats().PoolBytes != sh {
		t.Errorf("the stages report pools of %d and %d bytes, want one", sh, shared.e2.Stats().PoolBytes)
	}
	if sh >= sepBytes {
		t.Errorf("shared pool %d bytes, separate pools %d", sh, sepBytes)
	}
	if err := shared.e2.SharePool(shared.e1); err == nil {
		t.Error("SharePool after a run: no error")
	}
}

// TestExecutorPoolParts checks that values fitting a free, larger buffer
// share it as parts: x [R, 8] -> a = Linear [R, 64] -> b = Linear [R, 8]
// (a is then free) -> c, d = two Linears [R, 32] from b (live together) ->
// e = c + d -> out = Linear [R, 4]. c and d are half of a, over the 1.5x
// best-fit bound: without parts each gets a new buffer (pool >= a + b + c +
// d); as parts they live in a's memory. The results match gorgonia's
// TapeMachine bit for bit on every run, and runs after the first allocate
// nothing.
func TestExecutorPoolParts(t *testing.T) {
	const r = 256
	rng := rand.New(rand.NewSource(21))
	g := G.NewGraph()
	param := func(name string, shape ...int) *G.Node { return randParam(g, rng, name, shape...) }
	must := mustNode(t)
	x := param("x", r, 8)
	a := must(Linear(x, param("wa", 64, 8), nil))
	b := must(Linear(a, param("wb", 8, 64), nil))
	c := must(Linear(b, param("wc", 32, 8), nil))
	d := must(Linear(b, param("wd", 32, 8), nil))
	out := must(Linear(must(G.Add(c, d)), param("wo", 4, 32), nil))

	want := tapeValues(t, g, out)[0]

	e, err := NewExecutor(g, out)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var allocs int
	for run := 0; run < 3; run++ {
		if err := e.Run(); err != nil {
			t.Fatal(err)
		}
		got := out.Value().Data().([]float32)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("run %d: out[%d] = %v, TapeMachine %v", run, i, got[i], want[i])
			}
		}
		st := e.Stats()
		if run > 0 && st.Allocs != allocs {
			t.Errorf("run %d: %d allocations, %d after the first run", run, st.Allocs, allocs)
		}
		allocs = st.Allocs
		// a, b and the output (at most b's size); c and d inside a.
		if limit := int64(4 * r * (64 + 8 + 8)); st.PoolBytes > limit {
			t.Errorf("run %d: pool %d bytes, want at most %d (c and d as parts of a's buffer)", run, st.PoolBytes, limit)
		}
		t.Logf("run %d: %+v", run, st)
	}
}

// TestExecutorFreesGrownBuffers runs a stage with small intermediates and
// then one sharing its pool whose values are too large for them: the second
// grows the first's free buffers, and their old memory must become garbage
// at once (no header or value of either executor still pointing at it) and
// be collected during the run once collectDropped bytes were given up.
func TestExecutorFreesGrownBuffers(t *testing.T) {
	defer func(v int64) { collectDropped = v }(collectDropped)
	collectDropped = 1
	rng := rand.New(rand.NewSource(4))
	must := mustNode(t)
	g := G.NewGraph()
	param := func(name string, shape ...int) *G.Node { return randParam(g, rng, name, shape...) }
	x := param("x", 10, 16)
	out1 := must(Linear(must(ReLU(must(Linear(x, param("w1", 64, 16), nil)))), param("w2", 8, 64), nil))
	in2 := param("in2", 10, 8)
	out2 := must(Linear(must(ReLU(must(Linear(in2, param("w3", 4000, 8), nil)))), param("w4", 4, 4000), nil))
	e1, err := NewExecutor(g, out1)
	if err != nil {
		t.Fatal(err)
	}
	defer e1.Close()
	e2, err := NewExecutor(g, out2)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if err := e2.SharePool(e1); err != nil {
		t.Fatal(err)
	}
	if err := e1.Run(); err != nil {
		t.Fatal(err)
	}
	var collected atomic.Int32
	old := map[*poolBuf]*float32{}
	for _, b := range e1.pool.bufs {
		if b.free() && b.parent == nil && b.carved == 0 {
			old[b] = &b.data[0]
			runtime.SetFinalizer(&b.data[0], func(*float32) { collected.Add(1) })
		}
	}
	if len(old) == 0 {
		t.Fatal("stage 1 left no free buffer")
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	forced := ms.NumForcedGC
	if err := e2.Run(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&ms)
	if ms.NumForcedGC == forced {
		t.Error("stage 2 gave up buffers and ran no garbage collection")
	}
	grown := 0
	for b, p := range old {
		if &b.data[0] != p {
			grown++
		}
	}
	if grown == 0 {
		t.Fatal("stage 2 grew none of stage 1's free buffers")
	}
	for i := 0; i < 100 && int(collected.Load()) < grown; i++ {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if n := int(collected.Load()); n < grown {
		t.Errorf("%d of the %d grown buffers' old memory collected", n, grown)
	}
}
