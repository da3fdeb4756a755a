package nn

import (
	"errors"
	"fmt"
	"hash"
	"math"
	"math/bits"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/vec"
)

// MaxPool2d returns the maximum over kernel×kernel windows moved by stride,
// with torch.nn.MaxPool2d's semantics: x is padded with -inf by pad on every
// side, the output size is floor((H + 2*pad - kernel)/stride) + 1 (floor mode,
// no dilation), a NaN in a window wins, and among equal maxima the first in
// row-major window order is the one that receives the gradient. x:
// [N, C, H, W]; returns [N, C, OH, OW]. The ResNet stem uses (3, 2, 1).
// It returns an error unless kernel >= 1, stride >= 1 and 0 <= pad <= kernel/2
// (torch's limit) and the output is not empty.
func MaxPool2d(x *G.Node, kernel, stride, pad int) (*G.Node, error) {
	s, err := nodeShape4("MaxPool2d", "x", x)
	if err != nil {
		return nil, err
	}
	if kernel < 1 || stride < 1 || pad < 0 || pad > kernel/2 {
		return nil, fmt.Errorf("nn: MaxPool2d: kernel %d, stride %d, pad %d: want kernel >= 1, stride >= 1, 0 <= pad <= kernel/2",
			kernel, stride, pad)
	}
	p := poolGeom{n: s[0], c: s[1], h: s[2], w: s[3], k: kernel, s: stride, p: pad}
	p.oh = (p.h+2*pad-kernel)/stride + 1
	p.ow = (p.w+2*pad-kernel)/stride + 1
	if p.h+2*pad < kernel || p.w+2*pad < kernel {
		return nil, fmt.Errorf("nn: MaxPool2d: x %v padded by %d is smaller than the kernel %d", s, pad, kernel)
	}
	return G.ApplyOp(&maxPoolOp{g: p}, x)
}

// poolGeom is the geometry of a max pooling: input [n, c, h, w], square
// kernel k, stride s, padding p, output [n, c, oh, ow].
type poolGeom struct {
	n, c, h, w, k, s, p, oh, ow int
}

func (p poolGeom) in() tensor.Shape  { return tensor.Shape{p.n, p.c, p.h, p.w} }
func (p poolGeom) out() tensor.Shape { return tensor.Shape{p.n, p.c, p.oh, p.ow} }

// window returns the input rows [y0, y1) covered by output row oy (clipped to
// the image), and likewise for columns.
func (p poolGeom) window(o, size int) (int, int) {
	a := o*p.s - p.p
	return max(a, 0), min(a+p.k, size)
}

// argmax returns the index in x (one plane) of the maximum of the window of
// output (oy, ox), torch's way: the first maximum in row-major order, or the
// last NaN.
func (p poolGeom) argmax(x []float32, oy, ox int) int {
	y0, y1 := p.window(oy, p.h)
	x0, x1 := p.window(ox, p.w)
	best := y0*p.w + x0
	m := float32(math.Inf(-1))
	for iy := y0; iy < y1; iy++ {
		row := x[iy*p.w+x0 : iy*p.w+x1]
		for j, v := range row {
			if v > m || v != v {
				m = v
				best = iy*p.w + x0 + j
			}
		}
	}
	return best
}

// maxPoolPlane writes the pooled plane y [oh*ow] of x [h*w]. It is
// separable: for each output row the maximum over the window's rows goes to
// tmp [w] first (a NaN wins: Go's max propagates NaN like torch's comparison),
// then each output takes the maximum of its columns in tmp.
func (p poolGeom) maxPoolPlane(y, x, tmp []float32) {
	tmp = tmp[:p.w]
	for oy := 0; oy < p.oh; oy++ {
		y0, y1 := p.window(oy, p.h)
		copy(tmp, x[y0*p.w:(y0+1)*p.w])
		for iy := y0 + 1; iy < y1; iy++ {
			maxInto(tmp, x[iy*p.w:(iy+1)*p.w])
		}
		yrow := y[oy*p.ow : (oy+1)*p.ow]
		if p.k == 3 {
			p.rowMax3(yrow, tmp)
			continue
		}
		for ox := range yrow {
			x0, x1 := p.window(ox, p.w)
			m := tmp[x0]
			for _, v := range tmp[x0+1 : x1] {
				m = max(m, v)
			}
			yrow[ox] = m
		}
	}
}

// maxInto sets dst[i] = max(dst[i], src[i]).
func maxInto(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range dst {
		dst[i] = max(v, src[i])
	}
}

// rowMax3 is the horizontal pass for kernel 3: the columns ox*s-p .. +2,
// clipped to the row.
func (p poolGeom) rowMax3(yrow, t []float32) {
	s := p.s
	for ox := range yrow {
		a := ox*s - p.p
		if a >= 0 && a+3 <= len(t) {
			w := t[a : a+3 : a+3]
			yrow[ox] = max(w[0], w[1], w[2])
			continue
		}
		x0, x1 := p.window(ox, p.w)
		m := t[x0]
		for _, v := range t[x0+1 : x1] {
			m = max(m, v)
		}
		yrow[ox] = m
	}
}

// maxPoolGradPlane routes one plane's output gradients gy to dx.
func (p poolGeom) maxPoolGradPlane(dx, x, y, gy []float32) {
	clear(dx)
	w := p.w
	// Offsets of a 3x3 window's elements in row-major order.
	off := [9]int{0, 1, 2, w, w + 1, w + 2, 2 * w, 2*w + 1, 2*w + 2}
	for oy := 0; oy < p.oh; oy++ {
		y0, y1 := p.window(oy, p.h)
		for ox := 0; ox < p.ow; ox++ {
			o := oy*p.ow + ox
			m := y[o]
			if a := ox*p.s - p.p; p.k == 3 && y1-y0 == 3 && a >= 0 && a+3 <= w && m == m {
				// Interior 3x3 window: the first element equal to m, found
				// from a bit mask without data-dependent branches.
				base := y0*w + a
				r0 := x[base : base+3 : base+3]
				r1 := x[base+w : base+w+3 : base+w+3]
				r2 := x[base+2*w : base+2*w+3 : base+2*w+3]
				mask := eqBit(r0[0], m) | eqBit(r0[1], m)<<1 | eqBit(r0[2], m)<<2 |
					eqBit(r1[0], m)<<3 | eqBit(r1[1], m)<<4 | eqBit(r1[2], m)<<5 |
					eqBit(r2[0], m)<<6 | eqBit(r2[1], m)<<7 | eqBit(r2[2], m)<<8
				if mask != 0 {
					dx[base+off[bits.TrailingZeros32(mask)]] += gy[o]
					continue
				}
			}
			if m != m {
				dx[p.argmax(x, oy, ox)] += gy[o]
				continue
			}
			x0, x1 := p.window(ox, p.w)
			idx := -1
		search:
			for iy := y0; iy < y1; iy++ {
				for j, v := range x[iy*p.w+x0 : iy*p.w+x1] {
					if v == m {
						idx = iy*p.w + x0 + j
						break search
					}
				}
			}
			if idx < 0 { // y does not come from x: fall back to the scan
				idx = p.argmax(x, oy, ox)
			}
			dx[idx] += gy[o]
		}
	}
}

// eqBit returns 1 if a == b, else 0.
func eqBit(a, b float32) uint32 {
	var r uint32
	if a == b {
		r = 1
	}
	return r
}

// maxPoolOp: x -> y.
type maxPoolOp struct {
	HostOp
	g poolGeom
}

func (op *maxPoolOp) Arity() int                                     { return 1 }
func (op *maxPoolOp) Type() hm.Type                                  { return hm.NewFnType(tensorT(4), tensorT(4)) }
func (op *maxPoolOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.g.out(), nil }
func (op *maxPoolOp) Do(vals ...G.Value) (G.Value, error)            { return op.UsePreallocDo(nil, vals...) }
func (op *maxPoolOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	p := op.g
	in, err := inputsF32("MaxPool2d", vals, p.in())
	if err != nil {
		return nil, err
	}
	t, y, err := outputF32("MaxPool2d", prealloc, p.out())
	if err != nil {
		return nil, err
	}
	x := in[0]
	ip, opl := p.h*p.w, p.oh*p.ow
	parallelFor(p.n*p.c, func(lo, hi int) {
		tmp := make([]float32, p.w)
		for q := lo; q < hi; q++ {
			p.maxPoolPlane(y[q*opl:(q+1)*opl], x[q*ip:(q+1)*ip], tmp)
		}
	})
	return t, nil
}
func (op *maxPoolOp) String() string {
	return fmt.Sprintf("nn.MaxPool2d%v(k=%d,s=%d,p=%d)", op.g.in(), op.g.k, op.g.s, op.g.p)
}
func (op *maxPoolOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *maxPoolOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *maxPoolOp) DiffWRT(int) []bool    { return []bool{true} }
func (op *maxPoolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("nn: MaxPool2d gradient: got %d inputs, want 1", len(inputs))
	}
	dx, err := G.ApplyOp(&maxPoolGradOp{g: op.g}, inputs[0], output, grad)
	if err != nil {
		return nil, fmt.Errorf("nn: MaxPool2d gradient: %w", err)
	}
	return G.Nodes{dx}, nil
}

// maxPoolGradOp: (x, y, gy) -> dx: each output's gradient goes to its
// window's argmax, found as the first element equal to the output y (the last
// NaN if y is NaN), which is the forward's choice.
type maxPoolGradOp struct {
	HostOp
	g poolGeom
}

func (op *maxPoolGradOp) Arity() int { return 3 }
func (op *maxPoolGradOp) Type() hm.Type {
	return hm.NewFnType(tensorT(4), tensorT(4), tensorT(4), tensorT(4))
}
func (op *maxPoolGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.g.in(), nil }
func (op *maxPoolGradOp) Do(vals ...G.Value) (G.Value, error)            { return op.UsePreallocDo(nil, vals...) }
func (op *maxPoolGradOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	p := op.g
	in, err := inputsF32("MaxPool2d gradient", vals, p.in(), p.out(), p.out())
	if err != nil {
		return nil, err
	}
	t, dx, err := outputF32("MaxPool2d gradient", prealloc, p.in())
	if err != nil {
		return nil, err
	}
	x, y, gy := in[0], in[1], in[2]
	ip, opl := p.h*p.w, p.oh*p.ow
	parallelFor(p.n*p.c, func(lo, hi int) {
		for q := lo; q < hi; q++ {
			p.maxPoolGradPlane(dx[q*ip:(q+1)*ip], x[q*ip:(q+1)*ip], y[q*opl:(q+1)*opl], gy[q*opl:(q+1)*opl])
		}
	})
	return t, nil
}
func (op *maxPoolGradOp) String() string {
	return fmt.Sprintf("nn.MaxPool2dGrad%v(k=%d,s=%d,p=%d)", op.g.in(), op.g.k, op.g.s, op.g.p)
}
func (op *maxPoolGradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *maxPoolGradOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *maxPoolGradOp) DiffWRT(n int) []bool  { return make([]bool, n) }
func (op *maxPoolGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, errors.New("nn: MaxPool2d gradient: second derivative not implemented")
}

// GlobalAvgPool returns the mean of x over H and W (accumulated in float64).
// x: [N, C, H, W]; returns [N, C]. The gradient spreads each output's
// gradient evenly over its plane.
func GlobalAvgPool(x *G.Node) (*G.Node, error) {
	s, err := nodeShape4("GlobalAvgPool", "x", x)
	if err != nil {
		return nil, err
	}
	return G.ApplyOp(&gapOp{shape: s}, x)
}

// GlobalAvgPoolBlocked is GlobalAvgPool of x [N, C, H, W] stored in the
// blocked layout (nChw16c or nChw8c, see ToBlocked; C divisible by 16):
// returns the mean over H and W as [N, C] (plain), and its gradient is
// blocked like x. It saves the FromBlocked copy of x (and ToBlocked of the
// gradient) at the end of a blocked chain, e.g. the C4 box head's res5 on
// 512 RoIs: [512, 2048, 7, 7], 196 MiB each. A BFloat16 x (the bf16 chain
// layout, ToBlockedBF16) gives the float32 means of its bf16 values; its
// gradient is float32 blocked (nChw16c or nChw8c), as a bf16 chain value's.
func GlobalAvgPoolBlocked(x *G.Node) (*G.Node, error) {
	if x.Dtype() == BFloat16 {
		s := x.Shape()
		if len(s) != 4 || s[1]%convBlock != 0 {
			return nil, fmt.Errorf("nn: GlobalAvgPoolBlocked: x %v: want [N, C, H, W] with C divisible by %d", s, convBlock)
		}
		return G.ApplyOp(&gapOp{shape: s.Clone(), bf16: true}, x)
	}
	s, err := nodeShape4("GlobalAvgPoolBlocked", "x", x)
	if err != nil {
		return nil, err
	}
	if s[1]%convBlock != 0 {
		return nil, fmt.Errorf("nn: GlobalAvgPoolBlocked: x %v: want C divisible by %d", s, convBlock)
	}
	return G.ApplyOp(&gapOp{shape: s, block: CPU().Block}, x)
}

// gapOp: [N, C, H, W] -> [N, C]. block is 0 for NCHW x, else the channel
// block of x's blocked layout (nChw<block>c); bf16 says x is a BFloat16
// tensor in the bf16 chain layout (channels-last).
type gapOp struct {
	HostOp
	shape tensor.Shape
	block int
	bf16  bool
}

func (op *gapOp) out() tensor.Shape { return tensor.Shape{op.shape[0], op.shape[1]} }
func (op *gapOp) Arity() int        { return 1 }
func (op *gapOp) Type() hm.Type {
	if op.bf16 {
		return hm.NewFnType(chainType(true), G.TensorType{Dims: 2, Of: tensor.Float32})
	}
	return hm.NewFnType(tensorT(4), tensorT(2))
}
func (op *gapOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.out(), nil }
func (op *gapOp) Do(vals ...G.Value) (G.Value, error)            { return op.UsePreallocDo(nil, vals...) }
func (op *gapOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	if op.bf16 {
		return op.doBF16(prealloc, vals)
	}
	in, err := inputsF32("GlobalAvgPool", vals, op.shape)
	if err != nil {
		return nil, err
	}
	t, y, err := outputF32("GlobalAvgPool", prealloc, op.out())
	if err != nil {
		return nil, err
	}
	x, hw := in[0], op.shape[2]*op.shape[3]
	if op.block == 0 {
		parallelFor(len(y), func(lo, hi int) {
			for q := lo; q < hi; q++ {
				y[q] = float32(sumSeg(x[q*hw:(q+1)*hw]) / float64(hw))
			}
		})
		return t, nil
	}
	// Blocked: x[((n*C/B + cb)*H*W + p)*B + j] is channel cb*B+j of image
	// n at position p, so group (n, cb) is one contiguous [H*W, B] run whose
	// means are y[n*C + cb*B : +B].
	b := op.block
	parallelFor(len(y)/b, func(lo, hi int) {
		acc := make([]float64, b)
		for q := lo; q < hi; q++ {
			clear(acc)
			run := x[q*hw*b : (q+1)*hw*b]
			for p := 0; p < hw; p++ {
				for j, v := range run[p*b : (p+1)*b] {
					acc[j] += float64(v)
				}
			}
			for j, s := range acc {
				y[q*b+j] = float32(s / float64(hw))
			}
		}
	})
	return t, nil
}

// doBF16 averages a bf16 chain tensor: x[((n*H*W + p)*C + c] is channel c
// of image n at position p, so image n is one [H*W, C] run whose column
// means are y[n*C : (n+1)*C].
func (op *gapOp) doBF16(prealloc G.Value, vals []G.Value) (G.Value, error) {
	name := op.String()
	if len(vals) != 1 {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want 1", name, len(vals))
	}
	xw, err := actData(name, "x", vals[0], op.shape, true)
	if err != nil {
		return nil, err
	}
	t, y, err := outputF32(name, prealloc, op.out())
	if err != nil {
		return nil, err
	}
	n, c, hw := op.shape[0], op.shape[1], op.shape[2]*op.shape[3]
	x := bf16Of(xw, n*c*hw)
	parallelFor(n, func(lo, hi int) {
		acc := make([]float64, c)
		for i := lo; i < hi; i++ {
			clear(acc)
			run := x[i*hw*c : (i+1)*hw*c]
			for p := 0; p < hw; p++ {
				vec.AccumBF16(acc, run[p*c:(p+1)*c])
			}
			for j, s := range acc {
				y[i*c+j] = float32(s / float64(hw))
			}
		}
	})
	return t, nil
}

func (op *gapOp) String() string {
	if op.bf16 {
		return fmt.Sprintf("nn.GlobalAvgPoolBlockedBF16%v", op.shape)
	}
	if op.block != 0 {
		return fmt.Sprintf("nn.GlobalAvgPoolBlocked%v/%d", op.shape, op.block)
	}
	return fmt.Sprintf("nn.GlobalAvgPool%v", op.shape)
}
func (op *gapOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *gapOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *gapOp) DiffWRT(int) []bool    { return []bool{true} }
func (op *gapOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	block := op.block
	if op.bf16 { // the gradient of a bf16 chain value: float32 blocked
		block = CPU().Block
	}
	dx, err := G.ApplyOp(&gapGradOp{shape: op.shape, block: block}, grad)
	if err != nil {
		return nil, fmt.Errorf("nn: GlobalAvgPool gradient: %w", err)
	}
	return G.Nodes{dx}, nil
}

// gapGradOp: gy [N, C] -> dx [N, C, H, W] = gy/(H*W), in the layout of
// gapOp's x (block).
type gapGradOp struct {
	HostOp
	shape tensor.Shape
	block int
}

func (op *gapGradOp) Arity() int                                     { return 1 }
func (op *gapGradOp) Type() hm.Type                                  { return hm.NewFnType(tensorT(2), tensorT(4)) }
func (op *gapGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }
func (op *gapGradOp) Do(vals ...G.Value) (G.Value, error)            { return op.UsePreallocDo(nil, vals...) }
func (op *gapGradOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	in, err := inputsF32("GlobalAvgPool gradient", vals, tensor.Shape{op.shape[0], op.shape[1]})
	if err != nil {
		return nil, err
	}
	t, dx, err := outputF32("GlobalAvgPool gradient", prealloc, op.shape)
	if err != nil {
		return nil, err
	}
	gy, hw := in[0], op.shape[2]*op.shape[3]
	if op.block == 0 {
		parallelFor(len(gy), func(lo, hi int) {
			for q := lo; q < hi; q++ {
				v := gy[q] / float32(hw) // as torch's mean backward
				d := dx[q*hw : (q+1)*hw]
				for i := range d {
					d[i] = v
				}
			}
		})
		return t, nil
	}
	b := op.block // layout as in gapOp.UsePreallocDo
	parallelFor(len(gy)/b, func(lo, hi int) {
		v := make([]float32, b)
		for q := lo; q < hi; q++ {
			for j := range v {
				v[j] = gy[q*b+j] / float32(hw)
			}
			run := dx[q*hw*b : (q+1)*hw*b]
			for p := 0; p < hw; p++ {
				copy(run[p*b:(p+1)*b], v)
			}
		}
	})
	return t, nil
}
func (op *gapGradOp) String() string {
	if op.block != 0 {
		return fmt.Sprintf("nn.GlobalAvgPoolBlockedGrad%v/%d", op.shape, op.block)
	}
	return fmt.Sprintf("nn.GlobalAvgPoolGrad%v", op.shape)
}
func (op *gapGradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *gapGradOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *gapGradOp) DiffWRT(n int) []bool  { return make([]bool, n) }
func (op *gapGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, errors.New("nn: GlobalAvgPool gradient: second derivative not implemented")
}
