package nn

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ToBlocked converts x [N, C, H, W] from NCHW to oneDNN's blocked layout
// nChw<B>c, where B = CPU().Block is the block oneDNN's convolutions use on
// this CPU (16 with AVX-512, 8 with AVX2): element (n, c, h, w) at
// ((n*C/B + c/B)*H*W + h*W + w)*B + c%B. The shape stays [N, C, H, W]; C
// must be a multiple of 16 on every CPU. Use it in front of a chain of
// convolutions with ConvOpts.BlockedIn/BlockedOut and convert back with
// FromBlocked. Differentiable.
func ToBlocked(x *G.Node) (*G.Node, error) { return convLayout("ToBlocked", x, true, false) }

// ToBlockedBF16 converts x [N, C, H, W] (float32, NCHW) to the layout of a
// bf16 chain: bfloat16 values (rounded to nearest even) in channels-last
// order, element (n, c, h, w) at ((n*H + h)*W + w)*C + c (oneDNN's acdb),
// as a BFloat16 node of the same shape. C must be a multiple of 16. Use it
// in front of a chain of bf16 convolutions with ConvOpts.BlockedBF16 and
// convert back with FromBlocked. Differentiable: the gradient of the bf16
// chain value is float32 nChw<B>c (as ToBlocked's output), and that of x
// is the same gradient converted to NCHW (rounding passes gradients
// through unchanged).
func ToBlockedBF16(x *G.Node) (*G.Node, error) { return convLayout("ToBlockedBF16", x, true, true) }

// FromBlocked converts x [N, C, H, W] from nChw<B>c back to NCHW (the inverse
// of ToBlocked), or a BFloat16 x from the bf16 chain layout to float32 NCHW
// (the inverse of ToBlockedBF16 up to its rounding). Differentiable; the
// gradient of a BFloat16 x is float32 nChw<B>c.
func FromBlocked(x *G.Node) (*G.Node, error) {
	return convLayout("FromBlocked", x, false, x.Dtype() == BFloat16)
}

// BlockedFloat32 converts x [N, C, H, W], a value of a bf16 chain (a
// BFloat16 node in ToBlockedBF16's layout), to float32 in ToBlocked's
// layout nChw<B>c, for float32 convolutions with ConvOpts.BlockedIn after
// a bf16 chain: one reorder, where FromBlocked followed by a convolution
// on NCHW input makes two. Differentiable: the gradient of a bf16 chain
// value is float32 nChw<B>c already, so it passes through as it is.
func BlockedFloat32(x *G.Node) (*G.Node, error) {
	return convLayoutApply("BlockedFloat32", x, convLayoutOp{widen: true, bf16: true}, BFloat16)
}

func convLayout(name string, x *G.Node, toBlocked, bf16 bool) (*G.Node, error) {
	want := tensor.Float32
	if bf16 && !toBlocked {
		want = BFloat16
	}
	return convLayoutApply(name, x, convLayoutOp{toBlocked: toBlocked, bf16: bf16}, want)
}

// convLayoutApply applies op, completed with x's shape and this CPU's
// block, to x of dtype want.
func convLayoutApply(name string, x *G.Node, op convLayoutOp, want tensor.Dtype) (*G.Node, error) {
	s := x.Shape()
	if len(s) != 4 || s[1]%convBlock != 0 || x.Dtype() != want {
		return nil, fmt.Errorf("nn: %s: x %v %v: want %v [N, C, H, W] with C divisible by %d", name, s, x.Dtype(), want, convBlock)
	}
	op.block = CPU().Block
	copy(op.shape[:], s)
	y, err := G.ApplyOp(op, x)
	if err != nil {
		return nil, fmt.Errorf("nn: %s %v: %w", name, s, err)
	}
	return y, nil
}

// convLayoutOp converts between NCHW and nChw<block>c, or (bf16) between
// float32 NCHW and the bf16 chain layout, or (widen) from the bf16 chain
// layout to float32 nChw<block>c.
type convLayoutOp struct {
	HostOp
	shape     [4]int
	toBlocked bool
	block     int
	bf16      bool
	widen     bool // bf16 chain -> float32 nChw<block>c (bf16 is set too)
}

// geom is the reorder's geometry. A widening one is blocked on both sides
// (dnnl.go's reorder then writes the float32 layout of a chain value's
// gradient).
func (op convLayoutOp) geom() convGeom {
	if op.widen {
		return convGeom{X: op.shape, BlockedIn: true, BlockedOut: true, Block: op.block, ChainBF16: true}
	}
	return convGeom{X: op.shape, BlockedIn: !op.toBlocked, BlockedOut: op.toBlocked, Block: op.block, ChainBF16: op.bf16}
}

// bf16In and bf16Out say whether the op's input and output are BFloat16.
func (op convLayoutOp) bf16In() bool  { return op.geom().xBF16() }
func (op convLayoutOp) bf16Out() bool { return op.geom().yBF16() && !op.widen }

func (op convLayoutOp) Arity() int { return 1 }
func (op convLayoutOp) Type() hm.Type {
	if op.bf16 {
		return hm.NewFnType(chainType(op.bf16In()), chainType(op.bf16Out()))
	}
	return hm.NewFnType(convTensorType(4), convTensorType(4))
}
func (op convLayoutOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.shape[:]).Clone(), nil
}
func (op convLayoutOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op convLayoutOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	name := op.String()
	if len(in) != 1 {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want 1", name, len(in))
	}
	x, err := actData(name, "x", in[0], op.shape[:], op.bf16In())
	if err != nil {
		return nil, err
	}
	out, y := actOut(prealloc, op.shape[:], op.bf16Out())
	d := dnnlConv{kind: dnnlReorder, geom: op.geom()}
	if err := d.run([][]float32{x, y}, convExtra{}); err != nil {
		return nil, fmt.Errorf("nn: %s: %w", name, err)
	}
	return out, nil
}
func (op convLayoutOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op convLayoutOp) Hashcode() uint32      { return convHash(op) }
func (op convLayoutOp) String() string {
	switch {
	case op.widen:
		return fmt.Sprintf("BlockedFloat32{%v %d}", op.shape, op.block)
	case op.bf16 && op.toBlocked:
		return fmt.Sprintf("ToBlockedBF16{%v}", op.shape)
	case op.bf16:
		return fmt.Sprintf("FromBlockedBF16{%v}", op.shape)
	case op.toBlocked:
		return fmt.Sprintf("ToBlocked{%v %d}", op.shape, op.block)
	}
	return fmt.Sprintf("FromBlocked{%v %d}", op.shape, op.block)
}
func (op convLayoutOp) DiffWRT(n int) []bool { return []bool{true} }

// SymDiff converts the gradient the other way. The gradient of a bf16
// chain value is float32 nChw<block>c (see ConvOpts.BlockedBF16), so both
// directions of a bf16 conversion have the float32 conversion as gradient.
// A widening op's gradient is grad itself.
func (op convLayoutOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if grad.Graph() == nil {
		grad = output.Graph().AddNode(grad)
	}
	if op.widen {
		return G.Nodes{grad}, nil
	}
	g, err := G.ApplyOp(convLayoutOp{shape: op.shape, toBlocked: !op.toBlocked, block: op.block}, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{g}, nil
}

// MaxPool2dBlocked is max pooling (torch semantics: padding counts as -inf,
// floor mode) of x [N, C, H, W] stored in the blocked layout (see
// ToBlocked; or the bf16 chain layout of ToBlockedBF16 if x is BFloat16),
// for inference: it has no gradient. The output [N, C, OH, OW],
// OH = (H + 2*pad - kernel)/stride + 1, is in x's layout and dtype. Use it
// for the ResNet stem (3, 2, 1) in a blocked chain.
func MaxPool2dBlocked(x *G.Node, kernel, stride, pad int) (*G.Node, error) {
	s := x.Shape()
	if len(s) != 4 || s[1]%convBlock != 0 || (x.Dtype() != tensor.Float32 && x.Dtype() != BFloat16) {
		return nil, fmt.Errorf("nn: MaxPool2dBlocked: x %v %v: want float32 or %v [N, C, H, W] with C divisible by %d", s, x.Dtype(), BFloat16, convBlock)
	}
	if kernel < 1 || stride < 1 || pad < 0 || 2*pad > kernel || s[2]+2*pad < kernel || s[3]+2*pad < kernel {
		return nil, fmt.Errorf("nn: MaxPool2dBlocked: x %v with kernel %d, stride %d, pad %d: invalid", s, kernel, stride, pad)
	}
	var g convGeom
	copy(g.X[:], s)
	g.W = [4]int{1, 1, kernel, kernel}
	g.Stride = [2]int{stride, stride}
	g.Pad = [2]int{pad, pad}
	g.Y = [4]int{s[0], s[1], (s[2]+2*pad-kernel)/stride + 1, (s[3]+2*pad-kernel)/stride + 1}
	g.BlockedIn, g.BlockedOut, g.Block = true, true, CPU().Block
	g.ChainBF16 = x.Dtype() == BFloat16
	y, err := G.ApplyOp(convPoolOp{geom: g}, x)
	if err != nil {
		return nil, fmt.Errorf("nn: MaxPool2dBlocked %v: %w", s, err)
	}
	return y, nil
}

// convPoolOp is oneDNN's inference max pooling on blocked data.
type convPoolOp struct {
	HostOp
	geom convGeom
}

func (op convPoolOp) Arity() int { return 1 }
func (op convPoolOp) Type() hm.Type {
	t := chainType(op.geom.ChainBF16)
	return hm.NewFnType(t, t)
}
func (op convPoolOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.geom.Y[:]).Clone(), nil
}
func (op convPoolOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op convPoolOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	name := op.String()
	if len(in) != 1 {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want 1", name, len(in))
	}
	x, err := actData(name, "x", in[0], op.geom.X[:], op.geom.ChainBF16)
	if err != nil {
		return nil, err
	}
	out, y := actOut(prealloc, op.geom.Y[:], op.geom.ChainBF16)
	if err := (dnnlConv{kind: dnnlMaxPool, geom: op.geom}).run([][]float32{x, y}, convExtra{}); err != nil {
		return nil, fmt.Errorf("nn: %s: %w", name, err)
	}
	return out, nil
}
func (op convPoolOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op convPoolOp) Hashcode() uint32      { return convHash(op) }
func (op convPoolOp) String() string        { return fmt.Sprintf("MaxPool2dBlocked{%v}", op.geom) }
