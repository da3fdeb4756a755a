package nn

import (
	"errors"
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ReLU returns max(x, 0) elementwise, computed in one pass without branches
// (-0 becomes +0; a NaN stays NaN as in torch unless its sign bit is set, then
// it becomes 0). x is a float32 tensor of any shape; the result has x's shape. The
// gradient is passed where the output is positive.
func ReLU(x *G.Node) (*G.Node, error) {
	if x == nil {
		return nil, errors.New("nn: ReLU: x is nil")
	}
	if x.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("nn: ReLU: x has dtype %v, want float32", x.Dtype())
	}
	op := &reluOp{shape: x.Shape()}
	return G.ApplyOp(op, x)
}

// reluKernel writes max(x, 0) to y (same length), split over Threads().
func reluKernel(y, x []float32) {
	parallelParts(len(x), parts(len(x)), func(_, lo, hi int) {
		reluSpan(y[lo:hi], x[lo:hi])
	})
}

func reluSpan(y, x []float32) {
	n := len(x)
	y = y[:n]
	i := 0
	for ; i+4 <= n; i += 4 {
		xx, yy := x[i:i+4:i+4], y[i:i+4:i+4]
		yy[0] = relu32(xx[0])
		yy[1] = relu32(xx[1])
		yy[2] = relu32(xx[2])
		yy[3] = relu32(xx[3])
	}
	for ; i < n; i++ {
		y[i] = relu32(x[i])
	}
}

// reluGradKernel writes gy where y > 0, else 0, to gx.
func reluGradKernel(gx, y, gy []float32) {
	parallelParts(len(y), parts(len(y)), func(_, lo, hi int) {
		reluGradSpan(gx[lo:hi], y[lo:hi], gy[lo:hi])
	})
}

func reluGradSpan(gx, y, gy []float32) {
	n := len(y)
	gx, gy = gx[:n], gy[:n]
	i := 0
	for ; i+4 <= n; i += 4 {
		yy, gg, dd := y[i:i+4:i+4], gy[i:i+4:i+4], gx[i:i+4:i+4]
		dd[0] = maskF(gg[0], yy[0])
		dd[1] = maskF(gg[1], yy[1])
		dd[2] = maskF(gg[2], yy[2])
		dd[3] = maskF(gg[3], yy[3])
	}
	for ; i < n; i++ {
		gx[i] = maskF(gy[i], y[i])
	}
}

// reluOp: y = max(x, 0).
type reluOp struct {
	HostOp
	shape tensor.Shape
}

func (op *reluOp) Arity() int    { return 1 }
func (op *reluOp) Type() hm.Type { t := tensorT(len(op.shape)); return hm.NewFnType(t, t) }
func (op *reluOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}
func (op *reluOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *reluOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	in, err := inputsF32("ReLU", vals, op.shape)
	if err != nil {
		return nil, err
	}
	t, y, err := outputF32("ReLU", prealloc, op.shape)
	if err != nil {
		return nil, err
	}
	reluKernel(y, in[0])
	return t, nil
}
func (op *reluOp) String() string        { return fmt.Sprintf("nn.ReLU%v", op.shape) }
func (op *reluOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *reluOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *reluOp) DiffWRT(int) []bool    { return []bool{true} }
func (op *reluOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	gx, err := G.ApplyOp(&reluGradOp{shape: op.shape}, output, grad)
	if err != nil {
		return nil, fmt.Errorf("nn: ReLU gradient: %w", err)
	}
	return G.Nodes{gx}, nil
}

// reluGradOp: (y, gy) -> gy where y > 0, else 0. Shared by the ops that end in
// a ReLU.
type reluGradOp struct {
	HostOp
	shape tensor.Shape
}

func (op *reluGradOp) Arity() int { return 2 }
func (op *reluGradOp) Type() hm.Type {
	t := tensorT(len(op.shape))
	return hm.NewFnType(t, t, t)
}
func (op *reluGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}
func (op *reluGradOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *reluGradOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	in, err := inputsF32("ReLU gradient", vals, op.shape, op.shape)
	if err != nil {
		return nil, err
	}
	t, gx, err := outputF32("ReLU gradient", prealloc, op.shape)
	if err != nil {
		return nil, err
	}
	reluGradKernel(gx, in[0], in[1])
	return t, nil
}
func (op *reluGradOp) String() string        { return fmt.Sprintf("nn.ReLUGrad%v", op.shape) }
func (op *reluGradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *reluGradOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *reluGradOp) DiffWRT(n int) []bool  { return make([]bool, n) }
func (op *reluGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, errors.New("nn: ReLU gradient: second derivative not implemented")
}
