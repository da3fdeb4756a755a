package nn

import (
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestUsePreallocDo checks, for every op of this file set, that
// UsePreallocDo writes Do's result into the given buffer and returns it, and
// that it rejects buffers of the wrong shape, dtype or kind.
func TestUsePreallocDo(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	val := func(shape ...int) G.Value {
		n := 1
		for _, d := range shape {
			n *= d
		}
		return tensorOf(randSlice(rng, n), shape...)
	}
	x4 := tensor.Shape{2, 3, 5, 4}
	pg := poolGeom{n: 2, c: 3, h: 5, w: 4, k: 3, s: 2, p: 1, oh: 3, ow: 2}
	cases := []struct {
		name string
		op   interface {
			G.Op
			G.UsePreallocDoer
		}
		inputs []G.Value
		out    tensor.Shape
	}{
		{name: "relu", op: &reluOp{shape: x4}, inputs: []G.Value{val(2, 3, 5, 4)}, out: x4},
		{name: "relu_grad", op: &reluGradOp{shape: x4}, inputs: []G.Value{val(2, 3, 5, 4), val(2, 3, 5, 4)}, out: x4},
		{name: "affine", op: &affineOp{shape: x4, relu: true, residual: true},
			inputs: []G.Value{val(2, 3, 5, 4), val(3), val(3), val(2, 3, 5, 4)}, out: x4},
		{name: "affine_grad_x", op: &affineGradXOp{shape: x4, relu: true},
			inputs: []G.Value{val(2, 3, 5, 4), val(2, 3, 5, 4), val(3)}, out: x4},
		{name: "affine_grad_params", op: &affineGradParamsOp{shape: x4},
			inputs: []G.Value{val(2, 3, 5, 4), val(2, 3, 5, 4)}, out: tensor.Shape{2, 3}},
		{name: "row", op: &rowOp{rows: 2, cols: 3, row: 1}, inputs: []G.Value{val(2, 3)}, out: tensor.Shape{3}},
		{name: "batchnorm", op: &bnOp{shape: x4, st: NewBNStats(3)},
			inputs: []G.Value{val(2, 3, 5, 4), val(3), val(3)}, out: x4},
		{name: "batchnorm_grad", op: &bnGradOp{bn: bnOp{shape: x4, st: NewBNStats(3), training: true}},
			inputs: []G.Value{val(2, 3, 5, 4), val(3), val(2, 3, 5, 4)}, out: x4},
		{name: "maxpool", op: &maxPoolOp{g: pg}, inputs: []G.Value{val(2, 3, 5, 4)}, out: pg.out()},
		{name: "maxpool_grad", op: &maxPoolGradOp{g: pg}, inputs: []G.Value{val(2, 3, 5, 4), val(2, 3, 3, 2), val(2, 3, 3, 2)}, out: x4},
		{name: "gap", op: &gapOp{shape: x4}, inputs: []G.Value{val(2, 3, 5, 4)}, out: tensor.Shape{2, 3}},
		{name: "gap_grad", op: &gapGradOp{shape: x4}, inputs: []G.Value{val(2, 3)}, out: x4},
		{name: "linear", op: &linearOp{n: 2, in: 4, out: 3, bias: true},
			inputs: []G.Value{val(2, 4), val(3, 4), val(3)}, out: tensor.Shape{2, 3}},
		{name: "gemm", op: &gemmOp{m: 2, n: 3, k: 4, transA: true}, inputs: []G.Value{val(4, 2), val(4, 3)},
			out: tensor.Shape{2, 3}},
		{name: "reshape", op: &reshapeCopyOp{from: x4, to: tensor.Shape{6, 20}}, inputs: []G.Value{val(2, 3, 5, 4)},
			out: tensor.Shape{6, 20}},
		{name: "sum_rows", op: &sumRowsOp{rows: 4, cols: 3}, inputs: []G.Value{val(4, 3)}, out: tensor.Shape{3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := tc.op.InferShape(); err != nil || !s.Eq(tc.out) {
				t.Fatalf("InferShape = %v, %v; want %v", s, err, tc.out)
			}
			want, err := tc.op.Do(tc.inputs...)
			if err != nil {
				t.Fatal(err)
			}
			buf := tensor.New(tensor.WithShape(tc.out...), tensor.Of(tensor.Float32))
			got, err := tc.op.UsePreallocDo(buf, tc.inputs...)
			if err != nil {
				t.Fatal(err)
			}
			if got != G.Value(buf) {
				t.Error("UsePreallocDo did not return the preallocated value")
			}
			expectClose(t, "UsePreallocDo vs Do", buf.Float32s(), want.Data().([]float32), 0, 0)

			wrongShape := tensor.New(tensor.WithShape(tc.out.TotalSize()+1), tensor.Of(tensor.Float32))
			wrongType := tensor.New(tensor.WithShape(tc.out...), tensor.Of(tensor.Float64))
			for _, bad := range []G.Value{wrongShape, wrongType, G.NewF32(1)} {
				if _, err := tc.op.UsePreallocDo(bad, tc.inputs...); err == nil {
					t.Errorf("UsePreallocDo accepted %v %T", bad.Shape(), bad)
				}
			}
			// A wrong input shape is an error, not a panic.
			if _, err := tc.op.Do(append([]G.Value{val(1)}, tc.inputs[1:]...)...); err == nil {
				t.Error("Do accepted a wrong input shape")
			}
		})
	}
}
