package nn

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/vec"
)

// BFloat16 is the dtype of the activations of a bf16 chain (ToBlockedBF16,
// ConvOpts.BlockedBF16): each element is a bfloat16 value, held as its 16
// bits (the upper half of the float32 with the same sign, exponent and top
// 7 mantissa bits) in a uint16. Such tensors are stored channels-last
// (element (n, c, h, w) at ((n*H + h)*W + w)*C + c, oneDNN's acdb), whatever
// their shape [N, C, H, W] says; only this package's chain ops read them.
// Executor pools them like float32 tensors, at half the bytes.
var BFloat16 = tensor.Uint16

// chainType is the hm type of a 4-D activation of a bf16 chain op: a
// BFloat16 tensor (bf16) or a float32 one. Concrete, not a type variable:
// an op converting between the two has nothing to bind a variable to.
func chainType(bf16 bool) hm.Type {
	if bf16 {
		return G.TensorType{Dims: 4, Of: BFloat16}
	}
	return G.TensorType{Dims: 4, Of: tensor.Float32}
}

// wordsOf returns the memory of a bf16 slice as float32 words (two values
// a word; len(u) is even for every chain tensor, as C is a multiple of 16),
// to hand to oneDNN, which takes addresses only.
func wordsOf(u []uint16) []float32 {
	if len(u) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&u[0])), (len(u)+1)/2)
}

// bf16Of returns the first n bf16 values held in the float32 words w
// (len(w) >= (n+1)/2): the executor's pooled buffers are float32 words.
func bf16Of(w []float32, n int) []uint16 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&w[0])), n)
}

// actData returns the data of the activation v of the given shape: float32
// data as is, or (bf16) a BFloat16 tensor's memory as float32 words (see
// wordsOf).
func actData(op, arg string, v G.Value, shape []int, bf16 bool) ([]float32, error) {
	if !bf16 {
		return convData(op, arg, v, shape)
	}
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("nn: %s: %s is %T, want a *tensor.Dense", op, arg, v)
	}
	if d.Dtype() != BFloat16 {
		return nil, fmt.Errorf("nn: %s: %s has dtype %v, want %v (bf16 chain)", op, arg, d.Dtype(), BFloat16)
	}
	if !d.Shape().Eq(tensor.Shape(shape)) {
		return nil, fmt.Errorf("nn: %s: %s has shape %v, want %v", op, arg, d.Shape(), shape)
	}
	if d.IsView() {
		return nil, fmt.Errorf("nn: %s: %s is a view; bf16 chain tensors must be whole", op, arg)
	}
	return wordsOf(d.Uint16s()), nil
}

// actOut returns the output tensor of an op writing an activation of the
// given shape, and its memory as float32 words: prealloc if it fits (dense,
// of the dtype (float32, or BFloat16 if bf16) and shape), else a new tensor.
func actOut(prealloc G.Value, shape []int, bf16 bool) (*tensor.Dense, []float32) {
	if !bf16 {
		return convOut(prealloc, shape)
	}
	if d, ok := prealloc.(*tensor.Dense); ok && d.Dtype() == BFloat16 &&
		d.Shape().Eq(tensor.Shape(shape)) && !d.IsView() {
		return d, wordsOf(d.Uint16s())
	}
	d := tensor.New(tensor.WithShape(shape...), tensor.Of(BFloat16))
	return d, wordsOf(d.Uint16s())
}

// bf16Value returns the float32 value of the bfloat16 bits h.
func bf16Value(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// RoundBF16 returns the bfloat16 bits of x rounded to nearest, ties to
// even, as oneDNN's float32 -> bf16 conversion rounds (ToBlockedBF16): a
// NaN stays a quiet NaN of the same sign, infinities and values that round
// beyond the largest bf16 become infinities. Subnormal x round like the
// rest; oneDNN's conversion on AVX512-BF16 CPUs (vcvtneps2bf16) flushes
// them to a zero of their sign instead, a difference below 1.2e-38. It is
// vec.RoundBF16, whose vector form (vec.DivBF16) ops.RoIAlignBF16 uses.
func RoundBF16(x float32) uint16 { return vec.RoundBF16(x) }

// BF16Tensor returns the output tensor of an op writing a bf16 chain value
// (BFloat16, channels-last) of the given shape, and its values: prealloc if
// it fits (dense, BFloat16, that shape, not a view), else a new tensor.
// Ops outside this package that write chain values (ops.RoIAlignBF16) use
// it so that the Executor's pooled buffers are reused.
func BF16Tensor(prealloc G.Value, shape []int) (*tensor.Dense, []uint16) {
	d, _ := actOut(prealloc, shape, true)
	return d, d.Uint16s()
}
