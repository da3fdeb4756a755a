package nn

import (
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"unsafe"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Executor runs a gorgonia graph forward only (inference), recycling
// activation memory: every float32 tensor an op produces lives in a buffer
// from the executor's pool, and a buffer goes back to the pool as soon as the
// last op reading it has run. Peak memory is therefore about the largest set
// of activations alive at one time, not their sum, and after the first Run no
// further activation memory is allocated (ExecStats.Allocs stays put).
//
// Ops that implement G.UsePreallocDoer (every op of this package, and some of
// gorgonia's own) write into a pooled buffer; other ops (e.g. gorgonia's
// Reshape) run through Do and their results are tracked but not pooled. An op
// may return a value sharing memory with an input (Reshape does): the buffer
// then stays alive as long as either value is needed.
//
// Executors that run one after the other (stages of one model) can share one
// pool (SharePool): a stage then reuses what the stages before it freed
// instead of holding memory of its own.
//
// Only the nodes the outputs depend on run. Input nodes must have values
// (G.Let or G.WithValue). After Run, outputs[i].Value() holds the result; it
// stays valid until the next Run, which reuses its memory. Values of
// intermediate nodes are not bound to their nodes. An Executor is not safe for
// concurrent use.
type Executor struct {
	outputs []*G.Node
	steps   []execStep
	leaves  []execLeaf
	nslots  int
	keep    []int // output slots, in the order of outputs

	values   []G.Value
	slotBuf  []*poolBuf // buffer a slot's value lives in, or nil
	useCount []int      // remaining consumers per slot during a run
	uses     []int      // consumers per slot (+1 for outputs)

	pool  *execPool
	stats ExecStats
}

// execPool is the buffers of one or more executors (SharePool).
type execPool struct {
	bufs  []*poolBuf
	bytes int64       // total size of bufs
	users []*Executor // the executors sharing the pool, for dropHeaders
	// dropped is the bytes of grown buffers' old memory since get last
	// ran the garbage collector (collectDropped).
	dropped int64
}

// collectDropped is how much memory of grown buffers get lets become
// garbage before it runs the garbage collector and returns the memory to
// the system (debug.FreeOSMemory). Grown buffers are given up
// during a run (the first runs, while the pool finds its sizes), when the
// heap is mostly the pool's live buffers: the collector's next target is
// then far above it, and the garbage would stay until after the peak.
var collectDropped int64 = 64 << 20 // a variable for tests

// ExecStats reports the executor's memory use.
type ExecStats struct {
	Allocs        int   // buffers this executor allocated (new or grown) since NewExecutor
	PoolBytes     int64 // bytes held by the pool (free or in use; shared pools: all of it)
	PeakLiveBytes int64 // largest total size of the pool's buffers in use at one time during this executor's runs
	Runs          int   // completed runs
	// InPlace counts the steps of the last run that wrote into their first
	// input's buffer (see execInPlace).
	InPlace int
	// Unpooled counts the values of the last run that ops allocated
	// themselves (ops without UsePreallocDo, or that refused the buffer),
	// excluding values sharing memory with an input.
	Unpooled int
	// UnpooledBytes is their total size.
	UnpooledBytes int64
}

type poolBuf struct {
	id   int
	data []float32
	refs int // live values using the buffer
	// A buffer is whole or a part carved out of a whole one's memory (see
	// get). A whole buffer is free only while none of its parts is in use
	// (inUse counts them), a part only while its parent is not in use.
	parent *poolBuf
	carved int // whole buffers: elements of data given to parts so far
	inUse  int // whole buffers: parts in use
}

// free reports whether b can be handed out.
func (b *poolBuf) free() bool {
	return b.refs == 0 && b.inUse == 0 && (b.parent == nil || b.parent.refs == 0)
}

type execStep struct {
	node     *G.Node
	op       G.Op
	prealloc G.UsePreallocDoer // nil if the op cannot write into a buffer
	args     []int             // slots of the inputs
	slot     int
	shape    tensor.Shape
	pooled   bool          // output is a float32 or BFloat16 tensor that gets a pooled buffer
	words    int           // float32 words of the pooled output (half the elements for BFloat16, rounded up)
	prefBuf  int           // buffer used on the previous run, -1 if none
	hdr      *tensor.Dense // header over the buffer used last, reused while it is the same
	// unsafe is set for gorgonia's elementwise ops (the only UnsafeDoers)
	// whose first input has the output's shape: they may run in place.
	unsafe G.UnsafeDoer
	maxIn  int // elements of the largest input
}

type execLeaf struct {
	node *G.Node
	slot int
}

// NewExecutor plans the forward run of the nodes that outputs depend on. It
// returns an error if there are no outputs, if they are from different
// graphs, or if the graph has a cycle.
func NewExecutor(g *G.ExprGraph, outputs ...*G.Node) (*Executor, error) {
	if len(outputs) == 0 {
		return nil, errors.New("nn: NewExecutor: no outputs")
	}
	for i, o := range outputs {
		if o == nil {
			return nil, fmt.Errorf("nn: NewExecutor: output %d is nil", i)
		}
		if g != nil && o.Graph() != g {
			return nil, fmt.Errorf("nn: NewExecutor: output %d (%s) is not in the given graph", i, o.Name())
		}
	}
	e := &Executor{outputs: append([]*G.Node(nil), outputs...), pool: &execPool{}}
	e.pool.users = []*Executor{e}
	slot := map[*G.Node]int{}
	const visiting = -1
	var visit func(n *G.Node) error
	visit = func(n *G.Node) error {
		if s, ok := slot[n]; ok {
			if s == visiting {
				return fmt.Errorf("nn: NewExecutor: cycle through %s", n.Name())
			}
			return nil
		}
		slot[n] = visiting
		children, err := nodeChildren(n)
		if err != nil {
			return err
		}
		args := make([]int, len(children))
		for i, c := range children {
			if err := visit(c); err != nil {
				return err
			}
			args[i] = slot[c]
		}
		s := e.nslots
		e.nslots++
		slot[n] = s
		if len(children) == 0 && (n.Op() == nil || n.Value() != nil) {
			e.leaves = append(e.leaves, execLeaf{node: n, slot: s})
			return nil
		}
		st := execStep{node: n, op: n.Op(), args: args, slot: s, shape: n.Shape(), prefBuf: -1}
		for _, c := range children {
			st.maxIn = max(st.maxIn, c.Shape().TotalSize())
		}
		st.prealloc, _ = n.Op().(G.UsePreallocDoer)
		st.pooled = (n.Dtype() == tensor.Float32 || n.Dtype() == BFloat16) && len(st.shape) > 0 && st.shape.TotalSize() > 0
		st.words = st.shape.TotalSize()
		if n.Dtype() == BFloat16 {
			st.words = (st.words + 1) / 2
		}
		if u, ok := n.Op().(G.UnsafeDoer); ok && st.pooled && len(children) > 0 && children[0].Shape().Eq(st.shape) && children[0].Dtype() == tensor.Float32 {
			st.unsafe = u
		}
		e.steps = append(e.steps, st)
		return nil
	}
	for _, o := range outputs {
		if err := visit(o); err != nil {
			return nil, err
		}
	}
	e.steps = hoistReductions(e.steps, e.nslots)
	e.uses = make([]int, e.nslots)
	for _, st := range e.steps {
		for _, a := range st.args {
			e.uses[a]++
		}
	}
	for _, o := range outputs {
		e.keep = append(e.keep, slot[o])
		e.uses[slot[o]]++
	}
	e.values = make([]G.Value, e.nslots)
	e.slotBuf = make([]*poolBuf, e.nslots)
	e.useCount = make([]int, e.nslots)
	return e, nil
}

// hoistReductions reorders steps (a topological order) so that every pure
// reduction runs as soon as its inputs exist instead of where the depth-first
// order put it. A reduction is a step of a gorgonia or nn op (pure functions
// of their inputs; other packages' ops may draw random numbers or keep
// state, so their order is kept) whose output is at most half the size of
// its largest input. In a backward pass the weight and bias gradients are
// such steps: the depth-first order from the outputs runs the whole chain of
// input gradients down to the first parameter before any of them, keeping
// every activation they read alive meanwhile (on an R101-C4 training step,
// res5's activations on 512 RoIs through the backward pass of res4 and
// res3). Run early, they release those as soon as the input gradient has
// passed. Moving a step earlier lengthens only its own (small) output's
// life. The result is still a topological order: a hoisted step runs once
// its inputs are produced, and no later than its old place.
func hoistReductions(steps []execStep, nslots int) []execStep {
	producer := make([]int, nslots) // step index + 1, 0 for leaves
	for i, st := range steps {
		producer[st.slot] = i + 1
	}
	hoist := make([]bool, len(steps))
	pending := make([]int, len(steps)) // unproduced inputs of a hoisted step
	waiters := map[int][]int{}         // slot -> hoisted steps waiting for it
	var ready []int                    // hoisted steps with every input produced at the start
	n := 0
	for i, st := range steps {
		if !isReduction(st) {
			continue
		}
		hoist[i] = true
		n++
		for _, a := range st.args {
			if producer[a] > 0 {
				pending[i]++
				waiters[a] = append(waiters[a], i)
			}
		}
		if pending[i] == 0 {
			ready = append(ready, i)
		}
	}
	if n == 0 {
		return steps
	}
	out := make([]execStep, 0, len(steps))
	done := make([]bool, len(steps))
	var emit func(i int)
	emit = func(i int) {
		done[i] = true
		out = append(out, steps[i])
		ws := waiters[steps[i].slot]
		delete(waiters, steps[i].slot)
		for _, w := range ws {
			if pending[w]--; pending[w] == 0 && !done[w] {
				emit(w)
			}
		}
	}
	for _, i := range ready {
		emit(i)
	}
	for i := range steps {
		if !hoist[i] {
			emit(i)
		}
	}
	return out
}

// isReduction reports whether st is a pure step whose output is at most
// half its largest input (hoistReductions).
func isReduction(st execStep) bool {
	if len(st.args) == 0 {
		return false
	}
	t := reflect.TypeOf(st.op)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if p := t.PkgPath(); p != "gorgonia.org/gorgonia" && p != "resdet/nn" {
		return false
	}
	return 2*max(st.shape.TotalSize(), 1) <= st.maxIn
}

// nodeChildren returns n's inputs in order. gorgonia v0.9.18 keeps them in an
// unexported field and exports no accessor; the graph's edge set loses their
// order and repeats, so the field is read through reflection.
func nodeChildren(n *G.Node) ([]*G.Node, error) {
	f := reflect.ValueOf(n).Elem().FieldByName("children")
	if !f.IsValid() || f.Kind() != reflect.Slice {
		return nil, errors.New("nn: NewExecutor: this gorgonia version has no Node.children field")
	}
	out := make([]*G.Node, f.Len())
	for i := range out {
		out[i] = (*G.Node)(unsafe.Pointer(f.Index(i).Pointer()))
	}
	return out, nil
}

// Run executes the graph once. On error the outputs are not updated.
func (e *Executor) Run() error {
	if e.values == nil {
		return errors.New("nn: Executor: Run after Close")
	}
	// The previous run's outputs go back to the pool.
	for s := range e.values {
		e.release(s)
		e.values[s] = nil
	}
	copy(e.useCount, e.uses)
	e.stats.Unpooled, e.stats.UnpooledBytes, e.stats.InPlace = 0, 0, 0
	for _, l := range e.leaves {
		v := l.node.Value()
		if v == nil {
			return fmt.Errorf("nn: Executor: input %s has no value (bind one with G.Let)", l.node.Name())
		}
		e.values[l.slot] = v
	}
	inputs := make([]G.Value, 0, 8)
	for i := range e.steps {
		st := &e.steps[i]
		inputs = inputs[:0]
		for _, a := range st.args {
			inputs = append(inputs, e.values[a])
		}
		v, err := e.exec(st, inputs)
		if err != nil {
			e.abort()
			return fmt.Errorf("nn: Executor: %s (%v): %w", st.node.Name(), st.op, err)
		}
		e.values[st.slot] = v
		for _, a := range st.args {
			e.useCount[a]--
			if e.useCount[a] == 0 {
				e.release(a)
				e.values[a] = nil // a header over a buffer get may grow
			}
		}
	}
	for i, o := range e.outputs {
		if o.Op() == nil {
			continue // an input: its value is already bound
		}
		if err := G.UnsafeLet(o, e.values[e.keep[i]]); err != nil {
			return fmt.Errorf("nn: Executor: bind output %s: %w", o.Name(), err)
		}
	}
	e.stats.Runs++
	return nil
}

// exec runs one step and records which buffer its value lives in.
func (e *Executor) exec(st *execStep, inputs []G.Value) (G.Value, error) {
	if st.unsafe != nil {
		if v, ok, err := e.execInPlace(st, inputs); ok || err != nil {
			return v, err
		}
	}
	if st.pooled && st.prealloc != nil {
		b := e.get(st.words, st.prefBuf)
		if st.hdr == nil || !sameData(st.hdr, b.data) || !st.hdr.Shape().Eq(st.shape) {
			if st.node.Dtype() == BFloat16 {
				st.hdr = tensor.New(tensor.WithShape(st.shape...), tensor.WithBacking(bf16Of(b.data, st.shape.TotalSize())))
			} else {
				st.hdr = tensor.New(tensor.WithShape(st.shape...), tensor.WithBacking(b.data[:st.words]))
			}
		}
		v, err := st.prealloc.UsePreallocDo(st.hdr, inputs...)
		if err == nil && sameData(v, b.data) {
			st.prefBuf = b.id
			b.refs = 1
			e.slotBuf[st.slot] = b
			return v, nil
		}
		// The op refused the buffer or wrote elsewhere: give it back and
		// fall back to Do.
		e.put(b)
		if err == nil {
			e.track(st, v, inputs)
			return v, nil
		}
	}
	v, err := st.op.Do(inputs...)
	if err != nil {
		return nil, err
	}
	e.track(st, v, inputs)
	return v, nil
}

// execInPlace runs an elementwise step into its first input's buffer when
// this step is that input's last consumer and nothing else shares the
// buffer (gradient sums in backward passes: a full-size buffer less at the
// peak). ok is false if the step must run the ordinary way.
func (e *Executor) execInPlace(st *execStep, inputs []G.Value) (v G.Value, ok bool, err error) {
	a := st.args[0]
	b := e.slotBuf[a]
	if b == nil || b.refs != 1 || e.useCount[a] != 1 || !sameData(inputs[0], b.data) {
		return nil, false, nil
	}
	for _, o := range st.args[1:] {
		if o == a {
			return nil, false, nil
		}
	}
	if v, err = st.unsafe.UnsafeDo(inputs...); err != nil {
		return nil, false, err
	}
	if !sameData(v, b.data) {
		// Not written in place after all: an ordinary unpooled value.
		e.track(st, v, inputs)
		return v, true, nil
	}
	b.refs++ // the input's reference goes when its use count reaches 0
	e.slotBuf[st.slot] = b
	e.stats.InPlace++
	return v, true, nil
}

// track records the buffer of a value the executor did not allocate: if it
// shares memory with an input's pooled buffer, that buffer stays alive with it.
func (e *Executor) track(st *execStep, v G.Value, inputs []G.Value) {
	for _, a := range st.args {
		if b := e.slotBuf[a]; b != nil && overlaps(v, b.data) {
			b.refs++
			e.slotBuf[st.slot] = b
			return
		}
	}
	for _, in := range inputs {
		if t, ok := in.(tensor.Tensor); ok && overlapsRange(v, t.Uintptr(), t.Uintptr()+t.MemSize()) {
			return // a view of an input the executor does not own
		}
	}
	e.stats.Unpooled++
	e.stats.UnpooledBytes += int64(v.MemSize())
}

// release drops slot s's reference to its buffer.
func (e *Executor) release(s int) {
	b := e.slotBuf[s]
	if b == nil {
		return
	}
	e.slotBuf[s] = nil
	b.refs--
	if b.refs == 0 {
		e.put(b)
	}
}

// abort releases every buffer after a failed run.
func (e *Executor) abort() {
	for s := range e.values {
		e.release(s)
		e.values[s] = nil
	}
}

// get returns a free buffer of at least n elements: pref if it is free and
// fits, else the smallest free one that fits and is at most 1.5 times as
// big (on an R101-C4 detector training step the pool held 3.9 GB with this
// bound, 4.0 GB with 2x, 5.0 GB with 4x: looser bounds let small values
// hold large buffers), else a part carved out of a free whole buffer's
// unused room, else the largest free buffer grown to n, else a new one.
// Replaying last run's choices (pref) makes later runs allocate nothing:
// every buffer is free at the same points as before. A grown buffer's old
// memory is garbage at once, and get runs the garbage collector and hands
// the freed memory back to the system (debug.FreeOSMemory) whenever
// collectDropped bytes were given up that way: on an R101-C4 training step
// in bf16, whose pool grows about 330 MB of buffers in its first run, the
// process peaked at 2631 MB without the collections and 2367 MB with them
// (two of about 2 ms each); at 600x1000, where the pool grows 396 MB since
// the RoI features are bf16 from the start (ops.RoIAlignBF16), 2607 MB with
// collections alone (the collector frees the memory but the runtime keeps
// it resident) and 2445 MB when it is also handed back.
//
// Parts let a free large buffer hold several smaller values at once (on the
// fp32 R101-C4 training step, the RoI features' NCHW copy [512, 1024, 14, 14],
// free once converted to the blocked layout, holds res5's first two
// [512, 2048, 7, 7] values instead of sitting idle until the backward pass).
// A part is at least a quarter of its parent: small values (weight
// gradients, which live to the end of the run) would keep the parent busy
// for long. Parts stay in the pool with their place; a parent and its parts
// are never in use at the same time.
func (e *Executor) get(n, pref int) *poolBuf {
	p := e.pool
	if pref >= 0 && pref < len(p.bufs) {
		if b := p.bufs[pref]; b.free() && len(b.data) >= n {
			return e.reserve(b)
		}
	}
	var best *poolBuf
	for _, b := range p.bufs {
		if b.free() && len(b.data) >= n && len(b.data) <= 3*n/2 &&
			(best == nil || len(b.data) < len(best.data)) {
			best = b
		}
	}
	if best != nil {
		return e.reserve(best)
	}
	const align = 16 // parts start on 64-byte boundaries
	var room *poolBuf
	for _, b := range p.bufs {
		if b.parent == nil && b.refs == 0 && 4*n >= len(b.data) && len(b.data)-roundUp(b.carved, align) >= n &&
			(room == nil || len(b.data)-roundUp(b.carved, align) < len(room.data)-roundUp(room.carved, align)) {
			room = b
		}
	}
	if room != nil {
		off := roundUp(room.carved, align)
		room.carved = off + n
		part := &poolBuf{id: len(p.bufs), data: room.data[off : off+n : off+n], parent: room}
		p.bufs = append(p.bufs, part)
		return e.reserve(part)
	}
	// Grow the largest free buffer that is too small, if any, rather than
	// keep it beside a new one: the pool then holds fewer, larger buffers.
	// Its id, and so the steps that preferred it, stay valid (they get
	// more room). Parts and buffers with parts keep their memory.
	var grow *poolBuf
	for _, b := range p.bufs {
		if b.free() && b.parent == nil && b.carved == 0 && len(b.data) < n && (grow == nil || len(b.data) > len(grow.data)) {
			grow = b
		}
	}
	if grow != nil {
		p.bytes -= int64(4 * len(grow.data))
		p.dropHeaders(grow.data)
		p.dropped += int64(4 * len(grow.data))
		grow.data = nil
		if p.dropped >= collectDropped {
			debug.FreeOSMemory()
			p.dropped = 0
		}
		grow.data = make([]float32, n)
		best = grow
	} else {
		best = &poolBuf{id: len(p.bufs), data: make([]float32, n)}
		p.bufs = append(p.bufs, best)
	}
	e.stats.Allocs++
	p.bytes += int64(4 * n)
	return e.reserve(best)
}

// dropHeaders forgets the headers the pool's executors keep over data, a
// free buffer's memory that get is about to replace, so that the garbage
// collector can take it back during the run that grows the buffer. (Free
// buffers' values are dropped as they are freed; see Run.)
func (p *execPool) dropHeaders(data []float32) {
	for _, e := range p.users {
		for i := range e.steps {
			if h := e.steps[i].hdr; h != nil && overlaps(h, data) {
				e.steps[i].hdr = nil
			}
		}
	}
}

// reserve marks the free buffer b in use until the step records its value
// (refs -1).
func (e *Executor) reserve(b *poolBuf) *poolBuf {
	b.refs = -1
	if b.parent != nil {
		b.parent.inUse++
	}
	e.noteLive()
	return b
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// put returns b to the free pool (refs 0 means free; get marks a buffer it
// hands out with -1 until the step records its value).
func (e *Executor) put(b *poolBuf) {
	b.refs = 0
	if b.parent != nil {
		b.parent.inUse--
	}
}

// noteLive updates the peak of bytes in use.
func (e *Executor) noteLive() {
	var live int64
	for _, b := range e.pool.bufs {
		if b.refs != 0 {
			live += int64(4 * len(b.data))
		}
	}
	e.stats.PeakLiveBytes = max(e.stats.PeakLiveBytes, live)
}

// Stats returns the memory statistics so far.
func (e *Executor) Stats() ExecStats {
	s := e.stats
	if e.pool != nil {
		s.PoolBytes = e.pool.bytes
	}
	return s
}

// SharePool makes e take its buffers from other's pool, for executors that
// run one after the other (e.g. a model's stages): a buffer is free for
// either while no value of either lives in it, so e reuses what other's
// last run freed, and other e's, instead of both holding their peaks. Each
// executor's outputs keep their buffers until its own next Run (or Close),
// so e may read other's outputs as inputs. Call it before e's first Run;
// it returns an error otherwise, or if either executor is closed. Like a
// single Executor, executors sharing a pool are not safe for concurrent
// use.
func (e *Executor) SharePool(other *Executor) error {
	if e.values == nil || other.values == nil {
		return errors.New("nn: Executor.SharePool: executor closed")
	}
	if e.stats.Runs > 0 || len(e.pool.bufs) > 0 {
		return errors.New("nn: Executor.SharePool: executor has run")
	}
	e.pool.users = nil
	e.pool = other.pool
	e.pool.users = append(e.pool.users, e)
	return nil
}

// FLOPs returns the floating-point operations one Run does in convolutions
// (forward, backward-data and backward-weights) and matrix multiplies
// (Linear and its gradients): two per multiply-add, as torch profilers
// count them; batch norm, ReLU, pooling, additions and the ops of other
// packages are left out.
func (e *Executor) FLOPs() float64 {
	var f float64
	for _, st := range e.steps {
		if c, ok := st.op.(flopCounter); ok {
			f += c.flops()
		}
	}
	return f
}

// flopCounter is an op that reports its FLOPs for Executor.FLOPs.
type flopCounter interface{ flops() float64 }

func (op convOp) flops() float64           { return op.geom.flops() }
func (op convBwdDataOp) flops() float64    { return op.geom.flops() }
func (op convBwdWeightsOp) flops() float64 { return op.geom.flops() }
func (op *linearOp) flops() float64        { return 2 * float64(op.n) * float64(op.in) * float64(op.out) }
func (op *gemmOp) flops() float64          { return 2 * float64(op.m) * float64(op.n) * float64(op.k) }

// Close drops the pool and the values. The outputs' values stay readable
// (in a shared pool their buffers are therefore never reused).
func (e *Executor) Close() {
	if e.pool != nil {
		e.stats.PoolBytes = e.pool.bytes
		e.pool.users = slices.DeleteFunc(e.pool.users, func(u *Executor) bool { return u == e })
	}
	e.pool, e.values, e.slotBuf = nil, nil, nil
	for i := range e.steps {
		e.steps[i].hdr = nil
	}
}

// sameData reports whether v is a dense float32 or BFloat16 tensor backed by
// data's first element.
func sameData(v G.Value, data []float32) bool {
	d, ok := v.(*tensor.Dense)
	if !ok || (d.Dtype() != tensor.Float32 && d.Dtype() != BFloat16) || d.DataSize() == 0 {
		return false
	}
	return d.Uintptr() == uintptr(unsafe.Pointer(&data[0]))
}

// overlaps reports whether v's memory intersects data's.
func overlaps(v G.Value, data []float32) bool {
	if len(data) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(&data[0]))
	return overlapsRange(v, lo, lo+uintptr(4*len(data)))
}

// overlapsRange reports whether v's memory intersects [lo, hi).
func overlapsRange(v G.Value, lo, hi uintptr) bool {
	t, ok := v.(tensor.Tensor)
	if !ok || t.MemSize() == 0 || lo == hi {
		return false
	}
	vlo := t.Uintptr()
	return vlo < hi && lo < vlo+t.MemSize()
}
