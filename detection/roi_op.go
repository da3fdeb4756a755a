package detection

import (
	"fmt"
	"hash/fnv"
	"math"
	"sync"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/nn"
)

// This file holds what RoIAlign and RoIPool share: shape checks, value
// access, and the parallel loops.

// roiGeom is the geometry of a RoI op: feature map [N, C, H, W], K RoIs,
// output [K, C, OH, OW].
type roiGeom struct {
	N, C, H, W int
	K          int
	OH, OW     int
}

func (g roiGeom) featShape() []int { return []int{g.N, g.C, g.H, g.W} }
func (g roiGeom) roisShape() []int { return []int{g.K, 5} }
func (g roiGeom) outShape() []int  { return []int{g.K, g.C, g.OH, g.OW} }

func (g roiGeom) String() string {
	return fmt.Sprintf("feat=[%d %d %d %d] rois=[%d 5] out=[%d %d %d %d]", g.N, g.C, g.H, g.W, g.K, g.K, g.C, g.OH, g.OW)
}

// newRoIGeom checks the node shapes of a RoI op named op.
func newRoIGeom(op string, feat, rois *G.Node, oh, ow int) (roiGeom, error) {
	fs, rs := feat.Shape(), rois.Shape()
	if feat.Dtype() != tensor.Float32 || rois.Dtype() != tensor.Float32 {
		return roiGeom{}, fmt.Errorf("detection: %s: feat is %v and rois %v, want float32", op, feat.Dtype(), rois.Dtype())
	}
	if len(fs) != 4 {
		return roiGeom{}, fmt.Errorf("detection: %s: feat has shape %v, want [N, C, H, W]", op, fs)
	}
	if len(rs) != 2 || rs[1] != 5 || rs[0] < 1 {
		return roiGeom{}, fmt.Errorf("detection: %s: rois have shape %v, want [K, 5] with K >= 1 (feat %v)", op, rs, fs)
	}
	if oh < 1 || ow < 1 {
		return roiGeom{}, fmt.Errorf("detection: %s: output size %dx%d, want >= 1x1", op, oh, ow)
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
				return fmt.Errorf("detection: %s: roi %d: value %d is %v", op, k, j, v)
			}
		}
		if b := int(r[0]); b < 0 || b >= g.N || float32(b) != r[0] {
			return fmt.Errorf("detection: %s: roi %d: batch index %v, feat has N=%d", op, k, r[0], g.N)
		}
	}
	return nil
}

// roiData returns the float32 data of v, which must have the given shape.
func roiData(op, arg string, v G.Value, shape []int) ([]float32, error) {
	t, ok := v.(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("detection: %s: %s is %T, want a tensor", op, arg, v)
	}
	if t.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("detection: %s: %s has dtype %v, want float32", op, arg, t.Dtype())
	}
	if !t.Shape().Eq(tensor.Shape(shape)) {
		return nil, fmt.Errorf("detection: %s: %s has shape %v, want %v", op, arg, t.Shape(), shape)
	}
	if d, ok := t.(*tensor.Dense); ok && d.RequiresIterator() {
		t = d.Materialize()
	}
	data, ok := t.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("detection: %s: %s holds %T, want []float32", op, arg, t.Data())
	}
	return data, nil
}

// roiOut returns prealloc if it is a dense float32 tensor of the given shape,
// else a new one.
func roiOut(prealloc G.Value, shape []int) (*tensor.Dense, []float32) {
	if d, ok := prealloc.(*tensor.Dense); ok && d.Dtype() == tensor.Float32 &&
		d.Shape().Eq(tensor.Shape(shape)) && !d.RequiresIterator() {
		return d, d.Data().([]float32)
	}
	d := tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
	return d, d.Data().([]float32)
}

func tensorType(dims int) hm.Type { return G.TensorType{Dims: dims, Of: hm.TypeVariable('a')} }

func hashOf(s fmt.Stringer) uint32 {
	h := fnv.New32a()
	fmt.Fprint(h, s.String())
	return h.Sum32()
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
	t := workers(n)
	if t <= 1 {
		if n > 0 {
			f(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < t; w++ {
		lo, hi := w*n/t, (w+1)*n/t
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}

func workers(n int) int { return max(1, min(nn.Threads(), n)) }
