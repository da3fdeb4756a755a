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
// (nn.ToBlockedBF16): an nn.BFloat16 node [K, C, OutH, OutW] whose element
// (k, c, h, w), rounded to nearest even (nn.RoundBF16), is at
// ((k*OutH + h)*OutW + w)*C + c. The values are RoIAlign's, rounded: the
// same as nn.ToBlockedBF16 of RoIAlign's output, without the float32
// output and its reorder. A box head that runs as a bf16 chain (the res5
// head of a bf16 detector, backbone.Stage.ForwardMean) takes it as is.
// feat and rois are as for RoIAlign (float32, feat NCHW). C must be a
// multiple of 16, as for every chain value.
//
// Differentiable with respect to feat: the gradient of a chain value is
// float32 nChw<B>c (nn.ConvOpts.BlockedBF16), which RoIAlign's backward
// pass reads as it is; the map's gradient is NCHW, the values and order of
// RoIAlign's.
func RoIAlignBF16(feat, rois *G.Node, o RoIAlignOpts) (*G.Node, error) {
	g, err := roiShapes("RoIAlignBF16", feat, rois, o.OutH, o.OutW, o.SpatialScale)
	if err != nil {
		return nil, err
	}
	if g.C%16 != 0 {
		return nil, fmt.Errorf("ops: RoIAlignBF16: feat %v: %d channels, want a multiple of 16 (a bf16 chain value)", feat.Shape(), g.C)
	}
	return G.ApplyOp(alignBF16Op{g: g, o: o, buf: new(scratch)}, feat, rois)
}

// alignBF16Op is RoIAlignBF16's op. Inputs: feat [N, C, H, W], rois
// [K, 5]; output the chain value [K, C, OH, OW].
type alignBF16Op struct {
	nn.HostOp
	g   roiGeom
	o   RoIAlignOpts
	buf *scratch // alignForward's buffer between runs
}

func (op alignBF16Op) Arity() int { return 2 }
func (op alignBF16Op) Type() hm.Type {
	return hm.NewFnType(G.TensorType{Dims: 4, Of: tensor.Float32}, G.TensorType{Dims: 2, Of: tensor.Float32},
		G.TensorType{Dims: 4, Of: nn.BFloat16})
}
func (op alignBF16Op) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.g.outShape()), nil
}
func (op alignBF16Op) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

// UsePreallocDo writes the output into prealloc if it is a BFloat16 tensor
// of the output's shape (nn.BF16Tensor), else into a new tensor.
func (op alignBF16Op) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	v, err := op.g.values(op.String(), op.o, []roiInput{inFeat, inRoIs}, in)
	if err != nil {
		return nil, err
	}
	out, y := nn.BF16Tensor(prealloc, op.g.outShape())
	op.forward(v.feat, v.rois, y)
	return out, nil
}

// forward writes the chain value y [K, OH, OW, C] (bf16 bits) from feat
// and rois.
func (op alignBF16Op) forward(feat, rois []float32, y []uint16) {
	C, bins := op.g.C, op.g.OH*op.g.OW
	alignForward(op.g, op.o, feat, rois, op.buf, func(k, c0, c1 int, _ *alignScratch) binWriter {
		return binWriter{bin: func(bin int, v []float32, count float32) {
			vec.DivBF16(y[(k*bins+bin)*C+c0:(k*bins+bin)*C+c1], v, count)
		}}
	})
}

func (op alignBF16Op) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op alignBF16Op) Hashcode() uint32      { return hashOf(op) }
func (op alignBF16Op) String() string        { return fmt.Sprintf("RoIAlignBF16{%v %v}", op.o, op.g) }

// DiffWRT: differentiable with respect to feat, not rois.
func (op alignBF16Op) DiffWRT(n int) []bool { return []bool{true, false} }

// SymDiff returns the gradient of feat (NCHW) and nil for rois, from grad
// (float32 nChw<B>c, the chain's gradient layout) as it is.
func (op alignBF16Op) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("ops: %v: SymDiff got %d inputs, want 2", op, len(in))
	}
	if grad.Graph() == nil {
		grad = output.Graph().AddNode(grad)
	}
	if s := grad.Shape(); grad.Dtype() != tensor.Float32 || !s.Eq(tensor.Shape(op.g.outShape())) {
		return nil, fmt.Errorf("ops: %v: gradient %v %v, want float32 %v (nChw<B>c)", op, grad.Dtype(), s, op.g.outShape())
	}
	df, err := G.ApplyOp(roiGradOp{g: op.g, k: blockedGradAlign{RoIAlignOpts: op.o, block: nn.CPU().Block}, buf: op.buf}, in[1], grad)
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
