package nn

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Helpers shared by the ops of this package that are not convolutions: value
// access, preallocated-buffer checks, types and hashes.

// tensorT returns the gorgonia type of a float tensor with d dimensions whose
// element type is the type variable 'a'.
func tensorT(d int) hm.Type {
	return G.TensorType{Dims: d, Of: hm.TypeVariable('a')}
}

// valF32 returns the backing slice of v, which must be a dense float32 tensor
// that is not a view. op names the caller in the error.
func valF32(op string, i int, v G.Value) ([]float32, tensor.Shape, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, nil, fmt.Errorf("nn: %s: input %d is %T, want *tensor.Dense", op, i, v)
	}
	if d.Dtype() != tensor.Float32 {
		return nil, nil, fmt.Errorf("nn: %s: input %d has dtype %v, want float32", op, i, d.Dtype())
	}
	if d.IsView() {
		return nil, nil, fmt.Errorf("nn: %s: input %d is a view; materialise it first", op, i)
	}
	return d.Float32s(), d.Shape(), nil
}

// inputsF32 returns the backing slices of vals and checks their count and
// shapes against want (nil entries are not checked).
func inputsF32(op string, vals []G.Value, want ...tensor.Shape) ([][]float32, error) {
	if len(vals) != len(want) {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want %d", op, len(vals), len(want))
	}
	out := make([][]float32, len(vals))
	for i, v := range vals {
		data, s, err := valF32(op, i, v)
		if err != nil {
			return nil, err
		}
		if want[i] != nil && !s.Eq(want[i]) {
			return nil, fmt.Errorf("nn: %s: input %d has shape %v, want %v", op, i, s, want[i])
		}
		out[i] = data
	}
	return out, nil
}

// outputF32 returns the buffer to write an output of shape s into: prealloc's
// backing slice if prealloc is non-nil (checked: dense float32 of shape s),
// else a new tensor.
func outputF32(op string, prealloc G.Value, s tensor.Shape) (*tensor.Dense, []float32, error) {
	if prealloc == nil {
		t := tensor.New(tensor.WithShape(s...), tensor.Of(tensor.Float32))
		return t, t.Float32s(), nil
	}
	d, ok := prealloc.(*tensor.Dense)
	if !ok {
		return nil, nil, fmt.Errorf("nn: %s: preallocated value is %T, want *tensor.Dense", op, prealloc)
	}
	if d.Dtype() != tensor.Float32 || d.IsView() || !d.Shape().Eq(s) {
		return nil, nil, fmt.Errorf("nn: %s: preallocated value is %v %v (view %v), want float32 %v",
			op, d.Dtype(), d.Shape(), d.IsView(), s)
	}
	return d, d.Float32s(), nil
}

// hashOf hashes an op's description (kind, parameters and input shapes).
func hashOf(desc string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(desc))
	return h.Sum32()
}

// writeHash writes an op's description to h.
func writeHash(h hash.Hash, desc string) { h.Write([]byte(desc)) }

// nodeShape4 checks that n is a 4-D float32 node and returns its shape.
func nodeShape4(op, name string, n *G.Node) (tensor.Shape, error) {
	if n == nil {
		return nil, fmt.Errorf("nn: %s: %s is nil", op, name)
	}
	if n.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("nn: %s: %s has dtype %v, want float32", op, name, n.Dtype())
	}
	s := n.Shape()
	if len(s) != 4 {
		return nil, fmt.Errorf("nn: %s: %s has shape %v, want [N, C, H, W]", op, name, s)
	}
	return s, nil
}

// nodeVec checks that n is a float32 vector of length c.
func nodeVec(op, name string, n *G.Node, c int) error {
	if n == nil {
		return fmt.Errorf("nn: %s: %s is nil", op, name)
	}
	if n.Dtype() != tensor.Float32 {
		return fmt.Errorf("nn: %s: %s has dtype %v, want float32", op, name, n.Dtype())
	}
	if s := n.Shape(); len(s) != 1 || s[0] != c {
		return fmt.Errorf("nn: %s: %s has shape %v, want [%d]", op, name, s, c)
	}
	return nil
}

// tensorOf wraps data (not copied) in a float32 tensor of the given shape.
// It panics if the sizes differ.
func tensorOf(data []float32, shape ...int) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}
