package nn

import (
	"errors"
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Reshape returns a copy of x with the given shape (same number of
// elements). Unlike gorgonia's Reshape, whose result shares x's memory, the
// copy is safe under the TapeMachine's in-place gradient accumulation:
// gorgonia v0.9.18 computes wrong gradients when a gradient flowing through
// its Reshape is accumulated in place (TestReshapeTapeGradients). Gradients
// flow to x.
func Reshape(x *G.Node, shape ...int) (*G.Node, error) {
	if x == nil {
		return nil, errors.New("nn: Reshape: x is nil")
	}
	if x.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("nn: Reshape: x has dtype %v, want float32", x.Dtype())
	}
	to := tensor.Shape(append([]int(nil), shape...))
	if len(to) == 0 || to.TotalSize() != x.Shape().TotalSize() {
		return nil, fmt.Errorf("nn: Reshape: cannot reshape %v to %v", x.Shape(), to)
	}
	for _, d := range to {
		if d < 1 {
			return nil, fmt.Errorf("nn: Reshape: cannot reshape %v to %v", x.Shape(), to)
		}
	}
	return G.ApplyOp(&reshapeCopyOp{from: x.Shape(), to: to}, x)
}

// reshapeCopyOp: x [from] -> copy [to].
type reshapeCopyOp struct {
	HostOp
	from, to tensor.Shape
}

func (op *reshapeCopyOp) Arity() int { return 1 }
func (op *reshapeCopyOp) Type() hm.Type {
	return hm.NewFnType(tensorT(len(op.from)), tensorT(len(op.to)))
}
func (op *reshapeCopyOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.to.Clone(), nil }
func (op *reshapeCopyOp) Do(vals ...G.Value) (G.Value, error)            { return op.UsePreallocDo(nil, vals...) }
func (op *reshapeCopyOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	in, err := inputsF32("Reshape", vals, op.from)
	if err != nil {
		return nil, err
	}
	t, y, err := outputF32("Reshape", prealloc, op.to)
	if err != nil {
		return nil, err
	}
	copy(y, in[0])
	return t, nil
}
func (op *reshapeCopyOp) String() string {
	return fmt.Sprintf("nn.Reshape(%v->%v)", op.from, op.to)
}
func (op *reshapeCopyOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *reshapeCopyOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *reshapeCopyOp) DiffWRT(int) []bool    { return []bool{true} }
func (op *reshapeCopyOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&reshapeCopyOp{from: op.to, to: op.from}, grad)
	if err != nil {
		return nil, fmt.Errorf("nn: Reshape gradient: %w", err)
	}
	return G.Nodes{dx}, nil
}
