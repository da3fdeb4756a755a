package optim

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/testutil"
)

var update = flag.Bool("update", false, "regenerate testdata/sgd.json with testdata/gen_optim_fixtures.py (needs torch)")

type fixtureParam struct {
	Name     string     `json:"name"`
	Shape    []int      `json:"shape"`
	Init     []uint32   `json:"init"`
	Grads    [][]uint32 `json:"grads"`
	After    [][]uint32 `json:"after"`
	Momentum []uint32   `json:"momentum"`
	LRMult   float64    `json:"lr_mult"`
	Decay    float32    `json:"weight_decay"`
}

type fixtureCase struct {
	Params      []fixtureParam `json:"params"`
	LR          []float64      `json:"lr"`
	BaseLR      float64        `json:"base_lr"`
	Momentum    float64        `json:"momentum"`
	WeightDecay float64        `json:"weight_decay"`
	Steps       []int          `json:"steps"`
	WarmupIters int            `json:"warmup_iters"`
}

func loadFixture(t *testing.T) map[string]fixtureCase {
	t.Helper()
	if *update {
		testutil.Regenerate(t, "testdata/gen_optim_fixtures.py", "testdata")
	}
	data, err := os.ReadFile(filepath.Join("testdata", "sgd.json"))
	if err != nil {
		t.Fatalf("read fixture: %v (regenerate with go test -update)", err)
	}
	var cases map[string]fixtureCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatalf("parse sgd.json: %v", err)
	}
	if len(cases) == 0 {
		t.Fatal("sgd.json has no cases")
	}
	return cases
}

func floats(b []uint32) []float32 {
	out := make([]float32, len(b))
	for i, v := range b {
		out[i] = math.Float32frombits(v)
	}
	return out
}

// pairs builds parameter and gradient nodes holding the fixture's initial
// values (gradients zero) and returns them as WithGrad pairs.
func pairs(ps []fixtureParam) (vg []G.ValueGrad, params, grads []*G.Node) {
	g := G.NewGraph()
	for _, p := range ps {
		pn := G.NewTensor(g, tensor.Float32, len(p.Shape), G.WithShape(p.Shape...), G.WithName(p.Name),
			G.WithValue(tensor.New(tensor.WithShape(p.Shape...), tensor.WithBacking(floats(p.Init)))))
		gn := G.NewTensor(g, tensor.Float32, len(p.Shape), G.WithShape(p.Shape...), G.WithName(p.Name+".grad"),
			G.WithValue(tensor.New(tensor.WithShape(p.Shape...), tensor.Of(tensor.Float32))))
		vg = append(vg, WithGrad(pn, gn))
		params = append(params, pn)
		grads = append(grads, gn)
	}
	return vg, params, grads
}

func data(n *G.Node) []float32 { return n.Value().Data().([]float32) }

// compare reports values differing by more than rtol relative and returns
// the number of bit-identical values and the largest relative difference.
func compare(t *testing.T, what string, got []float32, want []float32, rtol float64) (exact int, worst float64) {
	t.Helper()
	for i := range want {
		if got[i] == want[i] {
			exact++
			continue
		}
		d := math.Abs(float64(got[i])-float64(want[i])) / max(math.Abs(float64(want[i])), 1e-30)
		worst = max(worst, d)
		if d > rtol {
			t.Errorf("%s[%d] = %v, torch %v", what, i, got[i], want[i])
		}
	}
	return exact, worst
}

func TestSGDMatchesTorch(t *testing.T) {
	for _, name := range []string{"default", "voc", "no_momentum", "no_decay", "bias_group"} {
		t.Run(name, func(t *testing.T) {
			c, ok := loadFixture(t)[name]
			if !ok {
				t.Fatalf("no case %s", name)
			}
			vg, params, grads := pairs(c.Params)
			// One group per parameter, with the fixture's multiplier and decay.
			groups := make([]Group, len(vg))
			for i, p := range c.Params {
				groups[i] = Group{Params: vg[i : i+1], LRMult: p.LRMult, WeightDecay: p.Decay}
			}
			sgd, err := NewSGDGroups(groups, SGDConfig{Momentum: float32(c.Momentum)})
			if err != nil {
				t.Fatal(err)
			}
			sched := NewWarmupMultiStep(c.BaseLR, c.Steps, c.WarmupIters)
			if err := sched.Validate(); err != nil {
				t.Fatal(err)
			}
			var exact, total int
			var worst, lrWorst, momWorst float64
			for it, wantLR := range c.LR {
				lr := sched.LR(it)
				lrWorst = max(lrWorst, math.Abs(lr-wantLR)/wantLR)
				if math.Abs(lr-wantLR) > 1e-15*wantLR {
					t.Errorf("iteration %d: lr %.17g, torch %.17g", it, lr, wantLR)
				}
				for i, p := range c.Params {
					copy(data(grads[i]), floats(p.Grads[it]))
				}
				if err := sgd.Step(lr); err != nil {
					t.Fatal(err)
				}
				for i, p := range c.Params {
					e, w := compare(t, p.Name, data(params[i]), floats(p.After[it]), 1e-6)
					exact, total, worst = exact+e, total+len(p.After[it]), max(worst, w)
					if slices.ContainsFunc(data(grads[i]), func(v float32) bool { return v != 0 }) {
						t.Errorf("iteration %d: gradient of %s not zeroed by Step", it, p.Name)
					}
				}
			}
			st := sgd.State()
			for i, p := range c.Params {
				if p.Momentum == nil {
					if st.Params[i].Momentum != nil {
						t.Errorf("%s: momentum buffer kept with momentum 0", p.Name)
					}
					continue
				}
				_, w := compare(t, p.Name+" momentum", st.Params[i].Momentum, floats(p.Momentum), 1e-6)
				momWorst = max(momWorst, w)
			}
			if st.Steps != int64(len(c.LR)) {
				t.Errorf("%d steps counted, want %d", st.Steps, len(c.LR))
			}
			t.Logf("%d steps: %d of %d parameter values bit-identical to torch; max relative diff: parameters %.3g, momentum %.3g (bound 1e-6), lr %.3g (bound 1e-15)",
				len(c.LR), exact, total, worst, momWorst, lrWorst)
		})
	}
}

// TestSGDResumeExact stops after a few steps, saves and restores the state
// into fresh nodes, and checks that the continued run is bit-identical to
// an uninterrupted one.
func TestSGDResumeExact(t *testing.T) {
	c := loadFixture(t)["default"]
	sched := NewWarmupMultiStep(c.BaseLR, c.Steps, c.WarmupIters)
	cfg := DefaultSGDConfig()
	step := func(sgd *SGD, grads []*G.Node, it int) {
		t.Helper()
		for i, p := range c.Params {
			copy(data(grads[i]), floats(p.Grads[it]))
		}
		if err := sgd.Step(sched.LR(it)); err != nil {
			t.Fatal(err)
		}
	}
	vgA, paramsA, gradsA := pairs(c.Params)
	a, err := NewSGD(vgA, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for it := range c.LR {
		step(a, gradsA, it)
	}

	const stop = 4
	vgB, paramsB, gradsB := pairs(c.Params)
	b, err := NewSGD(vgB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for it := range stop {
		step(b, gradsB, it)
	}
	var buf bytes.Buffer
	if _, err := b.State().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	saved := make([][]float32, len(paramsB))
	for i, p := range paramsB {
		saved[i] = slices.Clone(data(p))
	}

	vgC, paramsC, gradsC := pairs(c.Params)
	for i, p := range paramsC {
		copy(data(p), saved[i])
	}
	resumed, err := NewSGD(vgC, cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ReadState(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := resumed.SetState(st); err != nil {
		t.Fatal(err)
	}
	if resumed.Steps() != stop {
		t.Errorf("resumed at step %d, want %d", resumed.Steps(), stop)
	}
	for it := stop; it < len(c.LR); it++ {
		step(resumed, gradsC, it)
	}
	for i := range paramsA {
		if !slices.Equal(data(paramsA[i]), data(paramsC[i])) {
			t.Errorf("parameter %d differs after resume", i)
		}
	}
	sa, sc := a.State(), resumed.State()
	for i := range sa.Params {
		if !slices.Equal(sa.Params[i].Momentum, sc.Params[i].Momentum) {
			t.Errorf("momentum %d differs after resume", i)
		}
	}
}

// TestSGDTapeMachine runs a real graph several times: gorgonia accumulates
// the gradient in a parameter bound to a dual value across runs, and Step
// must zero it.
func TestSGDTapeMachine(t *testing.T) {
	for _, bind := range []bool{true, false} {
		t.Run(map[bool]string{true: "bind_dual_values", false: "symbolic"}[bind], func(t *testing.T) {
			g := G.NewGraph()
			w := G.NewVector(g, tensor.Float32, G.WithShape(3), G.WithName("w"),
				G.WithValue(tensor.New(tensor.WithShape(3), tensor.WithBacking([]float32{1, -2, 0.5}))))
			x := G.NewVector(g, tensor.Float32, G.WithShape(3), G.WithName("x"),
				G.WithValue(tensor.New(tensor.WithShape(3), tensor.WithBacking([]float32{0.3, 0.7, -1.1}))))
			prod, err := G.HadamardProd(w, x)
			if err != nil {
				t.Fatal(err)
			}
			loss, err := G.Sum(prod)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := G.Grad(loss, w); err != nil {
				t.Fatal(err)
			}
			var opts []G.VMOpt
			if bind {
				opts = append(opts, G.BindDualValues(w))
			}
			vm := G.NewTapeMachine(g, opts...)
			defer vm.Close()
			sgd, err := NewSGD([]G.ValueGrad{w}, SGDConfig{Momentum: 0.9, WeightDecay: 0.01})
			if err != nil {
				t.Fatal(err)
			}
			// Expected, by the update rule, with gradient x at every step.
			want := []float32{1, -2, 0.5}
			xs := []float32{0.3, 0.7, -1.1}
			bufs := make([]float32, 3)
			for step := 0; step < 3; step++ {
				vm.Reset()
				if err := vm.RunAll(); err != nil {
					t.Fatal(err)
				}
				gv, err := w.Grad()
				if err != nil {
					t.Fatal(err)
				}
				if got := gv.Data().([]float32); !slices.Equal(got, xs) {
					t.Fatalf("step %d: gradient %v, want %v (accumulated across runs?)", step, got, xs)
				}
				if err := sgd.Step(0.1); err != nil {
					t.Fatal(err)
				}
				for j := range want {
					d := float32(float64(want[j])*0.01 + float64(xs[j]))
					if step == 0 {
						bufs[j] = d
					} else {
						bufs[j] = float32(bufs[j]*0.9) + d
					}
					want[j] = float32(float64(bufs[j])*float64(-float32(0.1)) + float64(want[j]))
				}
				if got := w.Value().Data().([]float32); !slices.Equal(got, want) {
					t.Fatalf("step %d: w = %v, want %v", step, got, want)
				}
			}
		})
	}
}

func TestSGDRejectsBadInput(t *testing.T) {
	c := loadFixture(t)["default"]
	vg, _, _ := pairs(c.Params)
	g := G.NewGraph()
	f64 := G.NewVector(g, tensor.Float64, G.WithShape(2), G.WithName("f64"),
		G.WithValue(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{1, 2}))))
	noGrad := G.NewVector(g, tensor.Float32, G.WithShape(2), G.WithName("nograd"),
		G.WithValue(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float32{1, 2}))))
	sgd, err := NewSGD(vg, DefaultSGDConfig())
	if err != nil {
		t.Fatal(err)
	}
	good := sgd.State()
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"duplicate_names", func() error { _, err := NewSGD([]G.ValueGrad{vg[0], vg[0]}, DefaultSGDConfig()); return err }, `both named "p0"`},
		{"float64", func() error { _, err := NewSGD([]G.ValueGrad{f64}, DefaultSGDConfig()); return err }, `parameter "f64"`},
		{"momentum_range", func() error { _, err := NewSGD(vg, SGDConfig{Momentum: 1}); return err }, "Momentum"},
		{"no_gradient", func() error {
			s, err := NewSGD([]G.ValueGrad{noGrad}, DefaultSGDConfig())
			if err != nil {
				return err
			}
			return s.Step(0.1)
		}, `"nograd": no gradient`},
		{"non_finite", func() error {
			vg, params, grads := pairs(c.Params)
			s, err := NewSGD(vg, DefaultSGDConfig())
			if err != nil {
				return err
			}
			data(grads[2])[4] = float32(math.NaN())
			before := slices.Clone(data(params[0]))
			err = s.Step(0.1)
			if !errors.Is(err, ErrNonFinite) {
				return fmt.Errorf("error %v does not wrap ErrNonFinite", err)
			}
			if !slices.Equal(before, data(params[0])) || s.Steps() != 0 {
				return fmt.Errorf("parameters changed by a refused step (%w)", err)
			}
			return err
		}, `"p2": gradient element 4 is NaN`},
		{"group_mult", func() error {
			_, err := NewSGDGroups([]Group{{Params: vg, LRMult: -1}}, DefaultSGDConfig())
			return err
		}, "group 0"},
		{"state_count", func() error { return sgd.SetState(State{Params: good.Params[:1]}) }, "1 parameters"},
		{"state_name", func() error {
			st := sgd.State()
			st.Params[1].Name = "other"
			return sgd.SetState(st)
		}, `"other"`},
		{"state_shape", func() error {
			st := sgd.State()
			st.Params[2].Shape = []int{7, 5}
			return sgd.SetState(st)
		}, "shape [7 5]"},
		{"state_momentum", func() error {
			st := sgd.State()
			st.Params[0].Momentum = make([]float32, 3)
			return sgd.SetState(st)
		}, "3 momentum values"},
		{"read_garbage", func() error { _, err := ReadState(strings.NewReader("not a state")); return err }, "read state"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestSGDChunks checks the parallel split on parameters spanning several
// chunks: every element is updated once whatever the thread count, and a
// non-finite gradient is reported at its own offset.
func TestSGDChunks(t *testing.T) {
	const n = 3*chunkSize + 123
	run := func(threads int, nanAt int) ([]float32, error) {
		g := G.NewGraph()
		p := make([]float32, n)
		gr := make([]float32, n)
		for i := range p {
			p[i] = float32(i%97) * 0.01
			gr[i] = float32(i%89)*0.001 + 0.5
		}
		if nanAt >= 0 {
			gr[nanAt] = float32(math.Inf(-1))
		}
		pn := G.NewVector(g, tensor.Float32, G.WithShape(n), G.WithName("p"), G.WithValue(tensor.New(tensor.WithShape(n), tensor.WithBacking(p))))
		gn := G.NewVector(g, tensor.Float32, G.WithShape(n), G.WithName("g"), G.WithValue(tensor.New(tensor.WithShape(n), tensor.WithBacking(gr))))
		s, err := NewSGD([]G.ValueGrad{WithGrad(pn, gn)}, SGDConfig{Momentum: 0.9, WeightDecay: 1e-4, Threads: threads})
		if err != nil {
			return nil, err
		}
		for step := 0; step < 2; step++ {
			if err := s.Step(0.1); err != nil {
				return nil, err
			}
			copy(gr, p) // some gradient for the second step
		}
		return p, nil
	}
	one, err := run(1, -1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range one {
		// Step 1: p - 0.1*(g + 1e-4 p); step 2 moves further: never the start.
		if start := float32(i%97) * 0.01; one[i] == start {
			t.Fatalf("element %d not updated", i)
		}
	}
	four, err := run(4, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(one, four) {
		t.Errorf("results differ between 1 and 4 threads")
	}
	at := 2*chunkSize + 7
	if _, err := run(4, at); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("element %d is -Inf", at)) {
		t.Errorf("error %v, want one naming element %d", err, at)
	}
}
