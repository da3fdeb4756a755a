package nn

import (
	"errors"
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// UpsampleNearest resizes x to outH×outW by nearest-neighbour sampling, as
// torch's F.interpolate(x, size=(outH, outW), mode="nearest"): output row oy
// reads input row NearestIndex(oy, H, outH), likewise for columns. x:
// [N, C, H, W]; returns [N, C, outH, outW]. outH and outW may be smaller than
// H and W (then rows and columns are dropped). The gradient sums each output's
// gradient into the input element it was read from (zero for elements never
// read). The feature pyramid's top-down pathway uses it at exactly 2x, where
// it equals Detectron2's scale_factor=2.0.
func UpsampleNearest(x *G.Node, outH, outW int) (*G.Node, error) {
	s, err := nodeShape4("UpsampleNearest", "x", x)
	if err != nil {
		return nil, err
	}
	if outH < 1 || outW < 1 {
		return nil, fmt.Errorf("nn: UpsampleNearest: output size %dx%d for x %v: want positive sizes", outH, outW, s)
	}
	for _, d := range s {
		if d < 1 {
			return nil, fmt.Errorf("nn: UpsampleNearest: x has shape %v: want positive sizes", s)
		}
	}
	return G.ApplyOp(&upsampleOp{g: newUpGeom(s, outH, outW)}, x)
}

// NearestIndex returns the input index that output index dst reads when a
// dimension of size in is resized to size out by torch's "nearest" mode
// (0 <= dst < out). torch computes it in float32:
// min(floor(float32(dst) * (float32(in)/float32(out))), in-1), except that
// out == in gives dst and out == 2*in gives dst/2 exactly. The float32 rule
// can differ from the exact floor(dst*in/out): for in 2, out 82 it gives 0 at
// dst 41 where the exact rule gives 1.
func NearestIndex(dst, in, out int) int {
	switch {
	case out == in:
		return dst
	case out == 2*in:
		return dst >> 1
	}
	scale := float32(in) / float32(out)
	return min(int(math.Floor(float64(float32(dst)*scale))), in-1)
}

// upGeom is the geometry of a nearest resize: input [n, c, h, w], output
// [n, c, oh, ow], and the source row and column of every output row and
// column.
type upGeom struct {
	n, c, h, w, oh, ow int
	sy, sx             []int
	x2                 bool // ow == 2*w: columns are duplicated pairs
	y2                 bool // oh == 2*h: rows are duplicated pairs
}

func newUpGeom(s tensor.Shape, oh, ow int) upGeom {
	g := upGeom{n: s[0], c: s[1], h: s[2], w: s[3], oh: oh, ow: ow, x2: ow == 2*s[3], y2: oh == 2*s[2]}
	g.sy = make([]int, oh)
	for i := range g.sy {
		g.sy[i] = NearestIndex(i, g.h, oh)
	}
	g.sx = make([]int, ow)
	for i := range g.sx {
		g.sx[i] = NearestIndex(i, g.w, ow)
	}
	return g
}

func (g upGeom) in() tensor.Shape  { return tensor.Shape{g.n, g.c, g.h, g.w} }
func (g upGeom) out() tensor.Shape { return tensor.Shape{g.n, g.c, g.oh, g.ow} }
func (g upGeom) String() string {
	return fmt.Sprintf("%v->%dx%d", g.in(), g.oh, g.ow)
}

// plane writes one output plane y [oh*ow] from the input plane x [h*w]. An
// output row reading the same input row as the one before is a copy of it.
func (g upGeom) plane(y, x []float32) {
	prev := -1
	for oy, sy := range g.sy {
		row := y[oy*g.ow : (oy+1)*g.ow]
		if sy == prev {
			copy(row, y[(oy-1)*g.ow:oy*g.ow])
			continue
		}
		prev = sy
		src := x[sy*g.w : (sy+1)*g.w]
		switch {
		case g.x2:
			row = row[:2*len(src)]
			for i, v := range src {
				row[2*i] = v
				row[2*i+1] = v
			}
		case g.ow == g.w:
			copy(row, src)
		default:
			for ox, sx := range g.sx {
				row[ox] = src[sx]
			}
		}
	}
}

// gradPlane writes the gradient dx [h*w] of one plane from the output
// gradient gy [oh*ow], summing in output order (row-major) as torch does.
func (g upGeom) gradPlane(dx, gy []float32) {
	if g.x2 && g.y2 {
		// Exact 2x: each input element sums its 2x2 block in one pass (the
		// same order of additions as torch's 0 + g00 + g01 + g10 + g11).
		for iy := 0; iy < g.h; iy++ {
			dst := dx[iy*g.w : (iy+1)*g.w]
			r0 := gy[2*iy*g.ow : (2*iy+1)*g.ow][:2*len(dst)]
			r1 := gy[(2*iy+1)*g.ow : (2*iy+2)*g.ow][:2*len(dst)]
			for i := range dst {
				dst[i] = r0[2*i] + r0[2*i+1] + r1[2*i] + r1[2*i+1]
			}
		}
		return
	}
	clear(dx)
	for oy, sy := range g.sy {
		grow := gy[oy*g.ow : (oy+1)*g.ow]
		dst := dx[sy*g.w : (sy+1)*g.w]
		switch {
		case g.x2:
			grow = grow[:2*len(dst)]
			for i := range dst {
				dst[i] = dst[i] + grow[2*i] + grow[2*i+1]
			}
		case g.ow == g.w:
			for i, v := range grow {
				dst[i] += v
			}
		default:
			for ox, sx := range g.sx {
				dst[sx] += grow[ox]
			}
		}
	}
}

// upsampleOp: x [N, C, H, W] -> y [N, C, OH, OW].
type upsampleOp struct {
	HostOp
	g upGeom
}

func (op *upsampleOp) Arity() int                                     { return 1 }
func (op *upsampleOp) Type() hm.Type                                  { return hm.NewFnType(tensorT(4), tensorT(4)) }
func (op *upsampleOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.g.out(), nil }
func (op *upsampleOp) Do(vals ...G.Value) (G.Value, error)            { return op.UsePreallocDo(nil, vals...) }
func (op *upsampleOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	g := op.g
	in, err := inputsF32("UpsampleNearest", vals, g.in())
	if err != nil {
		return nil, err
	}
	t, y, err := outputF32("UpsampleNearest", prealloc, g.out())
	if err != nil {
		return nil, err
	}
	x, ip, opl := in[0], g.h*g.w, g.oh*g.ow
	parallelFor(g.n*g.c, func(lo, hi int) {
		for q := lo; q < hi; q++ {
			g.plane(y[q*opl:(q+1)*opl], x[q*ip:(q+1)*ip])
		}
	})
	return t, nil
}
func (op *upsampleOp) String() string        { return "nn.UpsampleNearest" + op.g.String() }
func (op *upsampleOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *upsampleOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *upsampleOp) DiffWRT(int) []bool    { return []bool{true} }
func (op *upsampleOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&upsampleGradOp{g: op.g}, grad)
	if err != nil {
		return nil, fmt.Errorf("nn: UpsampleNearest gradient: %w", err)
	}
	return G.Nodes{dx}, nil
}

// upsampleGradOp: gy [N, C, OH, OW] -> dx [N, C, H, W].
type upsampleGradOp struct {
	HostOp
	g upGeom
}

func (op *upsampleGradOp) Arity() int                                     { return 1 }
func (op *upsampleGradOp) Type() hm.Type                                  { return hm.NewFnType(tensorT(4), tensorT(4)) }
func (op *upsampleGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.g.in(), nil }
func (op *upsampleGradOp) Do(vals ...G.Value) (G.Value, error)            { return op.UsePreallocDo(nil, vals...) }
func (op *upsampleGradOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	g := op.g
	in, err := inputsF32("UpsampleNearest gradient", vals, g.out())
	if err != nil {
		return nil, err
	}
	t, dx, err := outputF32("UpsampleNearest gradient", prealloc, g.in())
	if err != nil {
		return nil, err
	}
	gy, ip, opl := in[0], g.h*g.w, g.oh*g.ow
	parallelFor(g.n*g.c, func(lo, hi int) {
		for q := lo; q < hi; q++ {
			g.gradPlane(dx[q*ip:(q+1)*ip], gy[q*opl:(q+1)*opl])
		}
	})
	return t, nil
}
func (op *upsampleGradOp) String() string        { return "nn.UpsampleNearestGrad" + op.g.String() }
func (op *upsampleGradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *upsampleGradOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *upsampleGradOp) DiffWRT(n int) []bool  { return make([]bool, n) }
func (op *upsampleGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, errors.New("nn: UpsampleNearest gradient: second derivative not implemented")
}
