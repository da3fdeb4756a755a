package ops

import (
	"fmt"
	"hash"
	"math"
	"sync"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/nn"
)

// This file holds what RoIAlign and RoIPool share: shape checks, the
// forward and gradient ops (each kernel plugs in as a roiKernel), and the
// parallel loops.

// roiGeom is the geometry of a RoI op: feature map [N, C, H, W], K RoIs,
// output [K, C, OH, OW].
type roiGeom struct {
	N, C, H, W int
	K          int
	OH, OW     int
}

func (g roiGeom) featShape() []int { return []int{g.N, g.C, g.H, g.W} }
func (g roiGeom) outShape() []int  { return []int{g.K, g.C, g.OH, g.OW} }

func (g roiGeom) String() string {
	return fmt.Sprintf("feat=[%d %d %d %d] rois=[%d 5] out=[%d %d %d %d]", g.N, g.C, g.H, g.W, g.K, g.K, g.C, g.OH, g.OW)
}

// roiInput names an input of a RoI op or of its gradient op.
type roiInput int

const (
	inFeat   roiInput = iota // feature map [N, C, H, W]
	inRoIs                   // RoIs [K, 5]
	inOutput                 // forward output [K, C, OH, OW]
	inGrad                   // output gradient [K, C, OH, OW]
)

func (in roiInput) String() string { return [...]string{"feat", "rois", "output", "grad"}[in] }

// shape returns the shape input in must have.
func (g roiGeom) shape(in roiInput) []int {
	switch in {
	case inFeat:
		return g.featShape()
	case inRoIs:
		return []int{g.K, 5}
	default:
		return g.outShape()
	}
}

// roiValues holds the data of a RoI op's inputs (nil when not an input).
type roiValues struct{ feat, rois, out, grad []float32 }

func (v *roiValues) set(in roiInput, d []float32) {
	switch in {
	case inFeat:
		v.feat = d
	case inRoIs:
		v.rois = d
	case inOutput:
		v.out = d
	default:
		v.grad = d
	}
}

// roiKernel is a RoI feature op's arithmetic (RoIAlignOpts, RoIPoolOpts);
// roiOp and roiGradOp wrap it as gorgonia ops. String describes the options.
type roiKernel interface {
	fmt.Stringer
	name() string
	// check returns an error for RoIs the kernel refuses (after the
	// batch-index and finiteness checks).
	check(op string, rois []float32, k int) error
	// forward writes out; buf is the op's scratch (nil: allocate).
	forward(g roiGeom, v roiValues, out []float32, buf *scratch)
	// gradInputs lists the inputs of the gradient op, in order.
	gradInputs() []roiInput
	// backward writes gradFeat; buf is the op's scratch (nil: allocate).
	backward(g roiGeom, v roiValues, gradFeat []float32, buf *scratch)
}

// applyRoI checks the node shapes and the options common to the RoI ops
// and builds k's forward op on feat and rois.
func applyRoI(k roiKernel, feat, rois *G.Node, oh, ow int, scale float32) (*G.Node, error) {
	g, err := roiShapes(k.name(), feat, rois, oh, ow, scale)
	if err != nil {
		return nil, err
	}
	return G.ApplyOp(roiOp{g: g, k: k, buf: new(scratch)}, feat, rois)
}

// roiShapes checks the node shapes and the options common to the RoI ops
// (op names the op in errors) and returns the op's geometry.
func roiShapes(op string, feat, rois *G.Node, oh, ow int, scale float32) (roiGeom, error) {
	fs, rs := feat.Shape(), rois.Shape()
	if feat.Dtype() != tensor.Float32 || rois.Dtype() != tensor.Float32 {
		return roiGeom{}, fmt.Errorf("ops: %s: feat is %v and rois %v, want float32", op, feat.Dtype(), rois.Dtype())
	}
	if len(fs) != 4 {
		return roiGeom{}, fmt.Errorf("ops: %s: feat has shape %v, want [N, C, H, W]", op, fs)
	}
	if len(rs) != 2 || rs[1] != 5 || rs[0] < 1 {
		return roiGeom{}, fmt.Errorf("ops: %s: rois have shape %v, want [K, 5] with K >= 1 (feat %v)", op, rs, fs)
	}
	if oh < 1 || ow < 1 {
		return roiGeom{}, fmt.Errorf("ops: %s: output size %dx%d, want >= 1x1", op, oh, ow)
	}
	if !(scale > 0) {
		return roiGeom{}, fmt.Errorf("ops: %s: spatial scale %v, want > 0", op, scale)
	}
	return roiGeom{N: fs[0], C: fs[1], H: fs[2], W: fs[3], K: rs[0], OH: oh, OW: ow}, nil
}

// checkRoIs returns an error naming the first RoI with a batch index outside
// [0, N) or a non-finite coordinate.
func (g roiGeom) checkRoIs(op string, rois []float32) error {
	for k := 0; k < g.K; k++ {
		r := rois[5*k : 5*k+5]
		for j, v := range r {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("ops: %s: roi %d: value %d is %v", op, k, j, v)
			}
		}
		if b := int(r[0]); b < 0 || b >= g.N || float32(b) != r[0] {
			return fmt.Errorf("ops: %s: roi %d: batch index %v, feat has N=%d", op, k, r[0], g.N)
		}
	}
	return nil
}

// values reads the inputs ins from in (checking their shapes) and the
// RoIs, for the op named name.
func (g roiGeom) values(name string, k roiKernel, ins []roiInput, in []G.Value) (roiValues, error) {
	var v roiValues
	if len(in) != len(ins) {
		return v, fmt.Errorf("ops: %s: got %d inputs, want %d", name, len(in), len(ins))
	}
	for i, which := range ins {
		d, err := tensorData(name, which.String(), in[i], g.shape(which))
		if err != nil {
			return v, err
		}
		v.set(which, d)
	}
	if err := g.checkRoIs(name, v.rois); err != nil {
		return v, err
	}
	return v, k.check(name, v.rois, g.K)
}

// roiOp is the forward op. Inputs: feat [N, C, H, W], rois [K, 5]; output
// [K, C, OH, OW].
type roiOp struct {
	nn.HostOp
	g   roiGeom
	k   roiKernel
	buf *scratch // the kernel's buffer between runs
}

func (op roiOp) Arity() int { return 2 }
func (op roiOp) Type() hm.Type {
	return hm.NewFnType(tensorType(4), tensorType(2), tensorType(4))
}
func (op roiOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.g.outShape()), nil
}
func (op roiOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

// UsePreallocDo writes the output into prealloc if it is a float32 tensor of
// the output's shape, else into a new tensor.
func (op roiOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	v, err := op.g.values(op.String(), op.k, []roiInput{inFeat, inRoIs}, in)
	if err != nil {
		return nil, err
	}
	out, y := outTensor(prealloc, op.g.outShape())
	op.k.forward(op.g, v, y, op.buf)
	return out, nil
}
func (op roiOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op roiOp) Hashcode() uint32      { return hashOf(op) }
func (op roiOp) String() string        { return fmt.Sprintf("%s{%v %v}", op.k.name(), op.k, op.g) }

// DiffWRT: differentiable with respect to feat, not rois.
func (op roiOp) DiffWRT(n int) []bool { return []bool{true, false} }

// SymDiff returns the gradient of feat and nil for rois.
func (op roiOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("ops: %v: SymDiff got %d inputs, want 2", op, len(in))
	}
	nodes := map[roiInput]*G.Node{inFeat: in[0], inRoIs: in[1], inOutput: output, inGrad: grad}
	var args G.Nodes
	for _, which := range op.k.gradInputs() {
		args = append(args, nodes[which])
	}
	df, err := G.ApplyOp(roiGradOp(op), args...)
	if err != nil {
		return nil, err
	}
	return G.Nodes{df, nil}, nil
}

// roiGradOp computes the gradient of feat [N, C, H, W] from the inputs the
// kernel's gradInputs lists.
type roiGradOp roiOp

func (op roiGradOp) Arity() int { return len(op.k.gradInputs()) }
func (op roiGradOp) Type() hm.Type {
	ts := make([]hm.Type, 0, op.Arity()+1)
	for _, which := range op.k.gradInputs() {
		ts = append(ts, tensorType(len(op.g.shape(which))))
	}
	return hm.NewFnType(append(ts, tensorType(4))...)
}
func (op roiGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.g.featShape()), nil
}
func (op roiGradOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op roiGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	v, err := op.g.values(op.String(), op.k, op.k.gradInputs(), in)
	if err != nil {
		return nil, err
	}
	out, gx := outTensor(prealloc, op.g.featShape())
	op.k.backward(op.g, v, gx, op.buf)
	return out, nil
}
func (op roiGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op roiGradOp) Hashcode() uint32      { return hashOf(op) }
func (op roiGradOp) String() string        { return fmt.Sprintf("%sGrad{%v %v}", op.k.name(), op.k, op.g) }

// planes4 returns the four consecutive planes of n values at off in s (four
// channels processed together).
func planes4(s []float32, off, n int) (a, b, c, d []float32) {
	return s[off : off+n], s[off+n : off+2*n], s[off+2*n : off+3*n], s[off+3*n : off+4*n]
}

// parallelItems calls f(worker, item) for every item in [0, n), items handed
// out dynamically to up to nn.Threads() goroutines; worker identifies the
// goroutine (for per-worker scratch) and is in [0, workers(n)).
func parallelItems(n int, f func(worker, item int)) {
	t := workers(n)
	if t <= 1 {
		for i := 0; i < n; i++ {
			f(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < t; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(w, i)
			}
		}()
	}
	wg.Wait()
}

// parallelRanges splits [0, n) into workers(n) contiguous ranges and calls
// f(lo, hi) on each concurrently.
func parallelRanges(n int, f func(lo, hi int)) {
	parallelWorkers(n, func(_, lo, hi int) { f(lo, hi) })
}

// parallelWorkers is parallelRanges with the worker's index (0 to
// workers(n)-1) passed to f, for per-goroutine scratch.
func parallelWorkers(n int, f func(worker, lo, hi int)) {
	t := workers(n)
	if t <= 1 {
		if n > 0 {
			f(0, 0, n)
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < t; w++ {
		lo, hi := w*n/t, (w+1)*n/t
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(w, lo, hi)
		}()
	}
	wg.Wait()
}

func workers(n int) int { return max(1, min(nn.Threads(), n)) }
