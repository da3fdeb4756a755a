package ops

import (
	"fmt"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file holds the value access every op here shares.

// tensorData returns the float32 data of v, the input arg of op, which must
// have the given shape.
func tensorData(op, arg string, v G.Value, shape []int) ([]float32, error) {
	t, ok := v.(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("ops: %s: %s is %T, want a tensor", op, arg, v)
	}
	if t.Dtype() != tensor.Float32 || !t.Shape().Eq(tensor.Shape(shape)) {
		return nil, fmt.Errorf("ops: %s: %s is %v %v, want float32 %v", op, arg, t.Dtype(), t.Shape(), shape)
	}
	if d, ok := t.(*tensor.Dense); ok && d.RequiresIterator() {
		t = d.Materialize()
	}
	data, ok := t.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("ops: %s: %s holds %T, want []float32", op, arg, t.Data())
	}
	return data, nil
}

// outTensor returns prealloc if it is a dense float32 tensor of the given
// shape, else a new one, with its data.
func outTensor(prealloc G.Value, shape []int) (*tensor.Dense, []float32) {
	if d, ok := prealloc.(*tensor.Dense); ok && d.Dtype() == tensor.Float32 &&
		d.Shape().Eq(tensor.Shape(shape)) && !d.RequiresIterator() {
		return d, d.Data().([]float32)
	}
	d := tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
	return d, d.Data().([]float32)
}

// Scalar returns the value of a float32 scalar (or one-element tensor), such
// as a loss node's value after a run.
func Scalar(v G.Value) (float32, error) {
	switch s := v.(type) {
	case *G.F32:
		return float32(*s), nil
	case tensor.Tensor:
		if s.Shape().TotalSize() == 1 {
			if d, ok := s.Data().([]float32); ok {
				return d[0], nil
			}
			if f, ok := s.Data().(float32); ok {
				return f, nil
			}
		}
	}
	return 0, fmt.Errorf("ops: value is %T, want a float32 scalar", v)
}

func tensorType(dims int) hm.Type { return G.TensorType{Dims: dims, Of: hm.TypeVariable('a')} }

func hashOf(s fmt.Stringer) uint32 {
	h := fnv.New32a()
	fmt.Fprint(h, s.String())
	return h.Sum32()
}
