package optim

import (
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// SGDConfig are the hyper-parameters of SGD other than the learning rate,
// which Step takes (it changes with the schedule).
type SGDConfig struct {
	// Momentum is the momentum factor (0.9; 0 disables the buffers).
	Momentum float32
	// WeightDecay is the L2 penalty added to the gradient, wd*p (1e-4 in
	// torchvision's and Detectron2's recipes; the original VOC code used
	// 5e-4).
	WeightDecay float32
	// Threads bounds the goroutines of Step (0: GOMAXPROCS). Results do
	// not depend on it.
	Threads int
}

// DefaultSGDConfig returns momentum 0.9 and weight decay 1e-4.
func DefaultSGDConfig() SGDConfig { return SGDConfig{Momentum: 0.9, WeightDecay: 1e-4} }

// VOCSGDConfig returns the original Faster R-CNN VOC recipe: momentum 0.9,
// weight decay 5e-4.
func VOCSGDConfig() SGDConfig { return SGDConfig{Momentum: 0.9, WeightDecay: 5e-4} }

// Validate returns an error naming a field out of range.
func (c SGDConfig) Validate() error {
	if !(c.Momentum >= 0 && c.Momentum < 1) {
		return fmt.Errorf("optim: SGDConfig.Momentum = %v, want in [0, 1)", c.Momentum)
	}
	if !(c.WeightDecay >= 0) {
		return fmt.Errorf("optim: SGDConfig.WeightDecay = %v, want >= 0", c.WeightDecay)
	}
	return nil
}

// SGD is stochastic gradient descent with momentum and weight decay, as
// torch.optim.SGD (dampening 0, no Nesterov), over a fixed list of
// parameters. For each parameter p with gradient g, a step with learning
// rate lr does, elementwise in float32 (lr and wd of the parameter's group):
//
//	d = g + wd*p
//	buf = d on the first step, else Momentum*buf + d
//	p = p - lr*buf
//
// (with Momentum 0, p = p - lr*d and no buffer is kept). Parameter values
// are updated in place. An SGD is not safe for concurrent use.
type SGD struct {
	cfg    SGDConfig
	params []G.ValueGrad
	names  []string
	shapes []tensor.Shape
	lrMult []float64
	decay  []float32
	bufs   [][]float32 // nil until a parameter's first step
	steps  int64
}

// Group is a set of parameters with their own learning-rate multiplier and
// weight decay (torch's param_groups): e.g. the original Caffe recipe's
// biases, LRMult 2 and WeightDecay 0.
type Group struct {
	Params []G.ValueGrad
	// LRMult multiplies the learning rate passed to Step (1: unchanged).
	LRMult float64
	// WeightDecay replaces SGDConfig.WeightDecay for these parameters.
	WeightDecay float32
}

// NewSGD returns an optimiser over params: gorgonia nodes on which G.Grad
// was called (their Grad() holds the accumulated gradient), or WithGrad
// pairs. Every parameter must hold a dense float32 value; names (a node's
// Name(), else "param<index>") identify parameters in the saved state and
// must be unique. It returns an error naming the parameter otherwise.
func NewSGD(params []G.ValueGrad, cfg SGDConfig) (*SGD, error) {
	return NewSGDGroups([]Group{{Params: params, LRMult: 1, WeightDecay: cfg.WeightDecay}}, cfg)
}

// NewSGDGroups is NewSGD with per-group learning-rate multipliers and weight
// decays (cfg.WeightDecay is then unused). Parameters are ordered group by
// group.
func NewSGDGroups(groups []Group, cfg SGDConfig) (*SGD, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &SGD{cfg: cfg}
	seen := map[string]int{}
	for gi, grp := range groups {
		if !(grp.LRMult >= 0) || !(grp.WeightDecay >= 0) {
			return nil, fmt.Errorf("optim: group %d: LRMult %v and WeightDecay %v, want >= 0", gi, grp.LRMult, grp.WeightDecay)
		}
		for _, p := range grp.Params {
			i := len(s.params)
			name := fmt.Sprintf("param%d", i)
			if n, ok := p.(interface{ Name() string }); ok && n.Name() != "" {
				name = n.Name()
			}
			if j, dup := seen[name]; dup {
				return nil, fmt.Errorf("optim: parameters %d and %d are both named %q", j, i, name)
			}
			seen[name] = i
			if _, err := f32Data(p.Value()); err != nil {
				return nil, fmt.Errorf("optim: parameter %q: %w", name, err)
			}
			s.params = append(s.params, p)
			s.names = append(s.names, name)
			s.shapes = append(s.shapes, p.Value().Shape().Clone())
			s.lrMult = append(s.lrMult, grp.LRMult)
			s.decay = append(s.decay, grp.WeightDecay)
		}
	}
	s.bufs = make([][]float32, len(s.params))
	return s, nil
}

// ErrNonFinite is wrapped by the error Step returns when a gradient holds a
// NaN or an infinity.
var ErrNonFinite = errors.New("non-finite gradient")

// Config returns the hyper-parameters.
func (s *SGD) Config() SGDConfig { return s.cfg }

// Steps returns the number of steps taken (including those of a restored
// state).
func (s *SGD) Steps() int64 { return s.steps }

// Step updates every parameter with learning rate lr times its group's
// LRMult (see SGD) and then zeroes its gradient. It first checks every
// gradient: if one is missing, has another shape than its parameter, or
// holds a NaN or an infinity (the error wraps ErrNonFinite), it returns an
// error naming the parameter and changes nothing (the caller may ZeroGrad
// and skip the iteration). The work is split over SGDConfig.Threads
// goroutines.
func (s *SGD) Step(lr float64) error {
	vals := make([][2][]float32, len(s.params))
	for i := range s.params {
		p, g, err := s.pair(i)
		if err != nil {
			return err
		}
		vals[i] = [2][]float32{p, g}
	}
	chunks := s.chunks(vals)
	bad := make([]int, len(chunks)) // first non-finite offset in the chunk, or -1
	s.parallel(len(chunks), func(c int) {
		ch := chunks[c]
		bad[c] = firstNonFinite(vals[ch.param][1][ch.lo:ch.hi])
	})
	for c, j := range bad {
		if j >= 0 {
			ch := chunks[c]
			v := vals[ch.param][1][ch.lo+j]
			return fmt.Errorf("optim: parameter %q: gradient element %d is %v: %w", s.names[ch.param], ch.lo+j, v, ErrNonFinite)
		}
	}
	m := s.cfg.Momentum
	first := make([]bool, len(vals))
	for i, pg := range vals {
		if s.bufs[i] == nil && m != 0 {
			s.bufs[i] = make([]float32, len(pg[0]))
			first[i] = true
		}
	}
	s.parallel(len(chunks), func(c int) {
		ch := chunks[c]
		i := ch.param
		p, g := vals[i][0][ch.lo:ch.hi], vals[i][1][ch.lo:ch.hi]
		alpha := -float32(lr * s.lrMult[i])
		switch {
		case m == 0:
			sgdPlain(p, g, s.decay[i], alpha)
		case first[i]:
			sgdFirst(p, g, s.bufs[i][ch.lo:ch.hi], s.decay[i], alpha)
		default:
			sgdMomentum(p, g, s.bufs[i][ch.lo:ch.hi], s.decay[i], m, alpha)
		}
	})
	s.steps++
	return nil
}

// chunk is a range of one parameter's elements.
type chunk struct{ param, lo, hi int }

// chunkSize bounds the elements of one unit of parallel work.
const chunkSize = 1 << 16

func (s *SGD) chunks(vals [][2][]float32) []chunk {
	var out []chunk
	for i, pg := range vals {
		for lo := 0; lo < len(pg[0]); lo += chunkSize {
			out = append(out, chunk{i, lo, min(lo+chunkSize, len(pg[0]))})
		}
	}
	return out
}

// parallel calls f(c) for c in [0, n) on up to Threads goroutines.
func (s *SGD) parallel(n int, f func(c int)) {
	t := s.cfg.Threads
	if t <= 0 {
		t = runtime.GOMAXPROCS(0)
	}
	t = min(t, n)
	if t <= 1 {
		for c := range n {
			f(c)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range t {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1) - 1)
				if c >= n {
					return
				}
				f(c)
			}
		}()
	}
	wg.Wait()
}

// firstNonFinite returns the index of the first NaN or infinity in v, or -1.
func firstNonFinite(v []float32) int {
	for j, x := range v {
		if math.Float32bits(x)&0x7f800000 == 0x7f800000 {
			return j
		}
	}
	return -1
}

// The kernels update p in place and zero g; buf is the momentum buffer.
// d = g + wd*p as torch's add(alpha=wd) (one rounding, fma32); buf =
// m*buf + d as mul_ then add_ (two roundings); p += alpha*buf (fma32).

func sgdPlain(p, g []float32, wd, alpha float32) {
	g = g[:len(p)]
	for j := range p {
		d := fma32(p[j], wd, g[j])
		p[j] = fma32(d, alpha, p[j])
		g[j] = 0
	}
}

func sgdFirst(p, g, buf []float32, wd, alpha float32) {
	g, buf = g[:len(p)], buf[:len(p)]
	for j := range p {
		d := fma32(p[j], wd, g[j])
		buf[j] = d
		p[j] = fma32(d, alpha, p[j])
		g[j] = 0
	}
}

func sgdMomentum(p, g, buf []float32, wd, m, alpha float32) {
	g, buf = g[:len(p)], buf[:len(p)]
	for j := range p {
		d := fma32(p[j], wd, g[j])
		b := float32(buf[j]*m) + d
		buf[j] = b
		p[j] = fma32(b, alpha, p[j])
		g[j] = 0
	}
}

// ZeroGrad zeroes every parameter's gradient (Step does it too).
func (s *SGD) ZeroGrad() error {
	for i := range s.params {
		_, g, err := s.pair(i)
		if err != nil {
			return err
		}
		clear(g)
	}
	return nil
}

// pair returns parameter i's value and gradient data.
func (s *SGD) pair(i int) (p, g []float32, err error) {
	p, err = f32Data(s.params[i].Value())
	if err != nil {
		return nil, nil, fmt.Errorf("optim: parameter %q: %w", s.names[i], err)
	}
	gv, err := s.params[i].Grad()
	if err != nil {
		return nil, nil, fmt.Errorf("optim: parameter %q: no gradient: %w", s.names[i], err)
	}
	if g, err = f32Data(gv); err != nil {
		return nil, nil, fmt.Errorf("optim: parameter %q: gradient: %w", s.names[i], err)
	}
	if len(g) != len(p) {
		return nil, nil, fmt.Errorf("optim: parameter %q: gradient has shape %v, parameter %v", s.names[i], gv.Shape(), s.shapes[i])
	}
	return p, g, nil
}

// fma32 returns a*b + c rounded once to float32 as the fused multiply-add
// of torch's vectorised add(alpha) (the float64 product of two float32 is
// exact; the sum is rounded to float64 and then float32, which differs
// from a single rounding only in rare double-rounding cases).
func fma32(a, b, c float32) float32 { return float32(float64(a)*float64(b) + float64(c)) }

// f32Data returns the backing []float32 of a dense float32 tensor value.
func f32Data(v G.Value) ([]float32, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("value is %T, want a dense tensor", v)
	}
	if d.Dtype() != tensor.Float32 || d.RequiresIterator() {
		return nil, fmt.Errorf("value is %v (iterator needed: %v), want contiguous float32", d.Dtype(), d.RequiresIterator())
	}
	return d.Data().([]float32), nil
}

// WithGrad pairs a parameter node with the node holding its gradient (as
// G.Grad returns them, e.g. outputs of an nn.Executor), for NewSGD. Its
// name is the parameter's.
func WithGrad(param, grad *G.Node) G.ValueGrad { return gradPair{param, grad} }

type gradPair struct{ param, grad *G.Node }

func (p gradPair) Value() G.Value { return p.param.Value() }
func (p gradPair) Grad() (G.Value, error) {
	if v := p.grad.Value(); v != nil {
		return v, nil
	}
	return nil, fmt.Errorf("gradient node %v has no value (graph not run)", p.grad.Name())
}
func (p gradPair) Name() string { return p.param.Name() }

// State is the optimiser's state: the step count and each parameter's
// momentum buffer, for checkpoints. With the parameter values, it is all
// SGD needs to resume exactly.
type State struct {
	Steps  int64
	Params []ParamState
}

// ParamState is one parameter's part of State.
type ParamState struct {
	Name  string
	Shape []int
	// Momentum is the buffer (row-major, Shape), nil before the parameter's
	// first step or with Momentum 0.
	Momentum []float32
}

// State returns a copy of the optimiser's state.
func (s *SGD) State() State {
	st := State{Steps: s.steps, Params: make([]ParamState, len(s.params))}
	for i := range s.params {
		st.Params[i] = ParamState{Name: s.names[i], Shape: slices.Clone([]int(s.shapes[i])), Momentum: slices.Clone(s.bufs[i])}
	}
	return st
}

// SetState replaces the optimiser's state with a copy of st, which must
// list the same parameters (names and shapes) in the same order. It returns
// an error naming the first mismatch and then leaves the optimiser as it
// was.
func (s *SGD) SetState(st State) error {
	if len(st.Params) != len(s.params) {
		return fmt.Errorf("optim: state has %d parameters, optimiser %d", len(st.Params), len(s.params))
	}
	if st.Steps < 0 {
		return fmt.Errorf("optim: state has %d steps", st.Steps)
	}
	bufs := make([][]float32, len(s.params))
	for i, p := range st.Params {
		if p.Name != s.names[i] {
			return fmt.Errorf("optim: state parameter %d is %q, optimiser's is %q", i, p.Name, s.names[i])
		}
		if !slices.Equal(p.Shape, []int(s.shapes[i])) {
			return fmt.Errorf("optim: state parameter %q has shape %v, optimiser's %v", p.Name, p.Shape, s.shapes[i])
		}
		if p.Momentum != nil && len(p.Momentum) != s.shapes[i].TotalSize() {
			return fmt.Errorf("optim: state parameter %q has %d momentum values, want %d", p.Name, len(p.Momentum), s.shapes[i].TotalSize())
		}
		bufs[i] = slices.Clone(p.Momentum)
	}
	s.bufs, s.steps = bufs, st.Steps
	return nil
}

// stateVersion is written first by WriteTo and checked by ReadState.
const stateVersion = "resdet-optim-sgd-v1"

// WriteTo writes st in a binary form (gob) that ReadState reads. Callers
// writing files do so atomically (temp file and rename).
func (st State) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	enc := gob.NewEncoder(cw)
	if err := enc.Encode(stateVersion); err != nil {
		return cw.n, fmt.Errorf("optim: write state: %w", err)
	}
	if err := enc.Encode(st); err != nil {
		return cw.n, fmt.Errorf("optim: write state: %w", err)
	}
	return cw.n, nil
}

// ReadState reads a State written by WriteTo.
func ReadState(r io.Reader) (State, error) {
	dec := gob.NewDecoder(r)
	var version string
	if err := dec.Decode(&version); err != nil {
		return State{}, fmt.Errorf("optim: read state: %w", err)
	}
	if version != stateVersion {
		return State{}, fmt.Errorf("optim: read state: format %q, want %q", version, stateVersion)
	}
	var st State
	if err := dec.Decode(&st); err != nil {
		return State{}, fmt.Errorf("optim: read state: %w", err)
	}
	return st, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
