package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/vec"
	"resdet/nn"
)

// RoIAlignBF16 is RoIAlign with its output in the layout of a bf16 chain
// (nn.ToBlockedBF16): an nn.BFloat16 node [K, C, OH, OW] (o.OutSize) whose
// element (k, c, h, w), rounded to nearest even (nn.RoundBF16), is at
// ((k*OH + h)*OW + w)*C + c. The values are RoIAlign's, rounded: the
// same as nn.ToBlockedBF16 of RoIAlign's output, without the float32
// output and its reorder. A box head that runs as a bf16 chain (the res5
// head of a bf16 detector, backbone.Stage.ForwardMeanBlocked) takes it as
// is. feat and rois are as for RoIAlign (float32, feat NCHW). C must be a
// multiple of 16, as for every chain value.
//
// Differentiable with respect to feat: the gradient of a chain value is
// float32 nChw<B>c (nn.ConvOpts.BlockedBF16), which RoIAlign's backward
// pass reads as it is; the map's gradient is NCHW, the values and order of
// RoIAlign's.
func RoIAlignBF16(feat, rois *G.Node, o RoIAlignOpts) (*G.Node, error) {
	return roiAlignBlocked("RoIAlignBF16", feat, rois, o, true)
}

// RoIAlignBlocked is RoIAlign with its output in oneDNN's blocked layout
// for this CPU (float32 nChw<B>c, B = nn.CPU().Block, the layout of
// nn.ToBlocked's output): element (k, c, h, w) at
// ((k*C/B + c/B)*OH*OW + h*OW + w)*B + c%B ([K, C, OH, OW] = o.OutSize).
// The values are
// RoIAlign's, bit for bit, without its NCHW output and the reorder to the
// blocked layout: the input of a float32 blocked box head (the res5 head
// of a detector with frozen BN, backbone.Stage.ForwardMeanBlocked). C must
// be a multiple of 16. Differentiable with respect to feat, as
// RoIAlignBF16: its output gradient comes in the same blocked layout.
func RoIAlignBlocked(feat, rois *G.Node, o RoIAlignOpts) (*G.Node, error) {
	return roiAlignBlocked("RoIAlignBlocked", feat, rois, o, false)
}

func roiAlignBlocked(name string, feat, rois *G.Node, o RoIAlignOpts, bf16 bool) (*G.Node, error) {
	g, err := o.shapes(name, feat, rois, o.SpatialScale)
	if err != nil {
		return nil, err
	}
	if g.C%16 != 0 {
		return nil, fmt.Errorf("ops: %s: feat %v: %d channels, want a multiple of 16 (a blocked value)", name, feat.Shape(), g.C)
	}
	return G.ApplyOp(alignBlockedOp{g: g, o: o, bf16: bf16, block: nn.CPU().Block, buf: new(scratch)}, feat, rois)
}

// alignBlockedOp is the op of RoIAlignBF16 (bf16) and RoIAlignBlocked.
// Inputs: feat [N, C, H, W], rois [K, 5]; output [K, C, OH, OW] in the
// bf16 chain layout (bf16) or float32 nChw<block>c.
type alignBlockedOp struct {
	nn.HostOp
	g     roiGeom
	o     RoIAlignOpts
	bf16  bool
	block int      // float32 output: the channel block
	buf   *scratch // alignForward's buffer between runs
}

func (op alignBlockedOp) Arity() int { return 2 }
func (op alignBlockedOp) Type() hm.Type {
	out := tensor.Dtype(tensor.Float32)
	if op.bf16 {
		out = nn.BFloat16
	}
	return hm.NewFnType(G.TensorType{Dims: 4, Of: tensor.Float32}, G.TensorType{Dims: 2, Of: tensor.Float32},
		G.TensorType{Dims: 4, Of: out})
}
func (op alignBlockedOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.g.outShape()), nil
}
func (op alignBlockedOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

// UsePreallocDo writes the output into prealloc if it fits (a BFloat16
// tensor of the output's shape, nn.BF16Tensor, or a float32 one), else into
// a new tensor.
func (op alignBlockedOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	v, err := op.g.values(op.String(), op.o, []roiInput{inFeat, inRoIs}, in)
	if err != nil {
		return nil, err
	}
	if op.bf16 {
		out, y := nn.BF16Tensor(prealloc, op.g.outShape())
		op.forwardBF16(v.feat, v.rois, y)
		return out, nil
	}
	out, y := outTensor(prealloc, op.g.outShape())
	roiAlignForward(op.g, op.o, v.feat, v.rois, y, op.buf, op.block)
	return out, nil
}

// forwardBF16 writes the chain value y [K, OH, OW, C] (bf16 bits) from
// feat and rois.
func (op alignBlockedOp) forwardBF16(feat, rois []float32, y []uint16) {
	C, bins := op.g.C, op.g.OH*op.g.OW
	alignForward(op.g, op.o, feat, rois, op.buf, func(k, c0, c1 int, _ *alignScratch) binWriter {
		return binWriter{bin: func(bin int, v []float32, count float32) {
			vec.DivBF16(y[(k*bins+bin)*C+c0:(k*bins+bin)*C+c1], v, count)
		}}
	})
}

func (op alignBlockedOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op alignBlockedOp) Hashcode() uint32      { return hashOf(op) }
func (op alignBlockedOp) String() string {
	if op.bf16 {
		return fmt.Sprintf("RoIAlignBF16{%v %v}", op.o, op.g)
	}
	return fmt.Sprintf("RoIAlignBlocked{%v %v block=%d}", op.o, op.g, op.block)
}

// DiffWRT: differentiable with respect to feat, not rois.
func (op alignBlockedOp) DiffWRT(n int) []bool { return []bool{true, false} }

// SymDiff returns the gradient of feat (NCHW) and nil for rois, from grad
// (float32 nChw<B>c, the gradient layout of a chain value and of a float32
// blocked one) as it is.
func (op alignBlockedOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("ops: %v: SymDiff got %d inputs, want 2", op, len(in))
	}
	if grad.Graph() == nil {
		grad = output.Graph().AddNode(grad)
	}
	if s := grad.Shape(); grad.Dtype() != tensor.Float32 || !s.Eq(tensor.Shape(op.g.outShape())) {
		return nil, fmt.Errorf("ops: %v: gradient %v %v, want float32 %v (nChw<B>c)", op, grad.Dtype(), s, op.g.outShape())
	}
	df, err := G.ApplyOp(roiGradOp{g: op.g, k: blockedGradAlign{RoIAlignOpts: op.o, block: op.block}, buf: op.buf}, in[1], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{df, nil}, nil
}

// blockedGradAlign is RoIAlign whose output gradient comes in nChw<block>c
// (the chain's gradient layout): as a roiKernel, RoIAlignBF16's gradient
// op (roiGradOp), which reads that layout as it is, with no NCHW copy.
type blockedGradAlign struct {
	RoIAlignOpts
	block int
}

func (k blockedGradAlign) name() string { return "RoIAlignBF16" }
func (k blockedGradAlign) String() string {
	return fmt.Sprintf("%v grad-block=%d", k.RoIAlignOpts, k.block)
}
func (k blockedGradAlign) backward(g roiGeom, v roiValues, gradFeat []float32, buf *scratch) {
	roiAlignBackward(g, k.RoIAlignOpts, v.rois, v.grad, gradFeat, k.block, buf)
}
