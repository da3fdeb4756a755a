package weights

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// maxDim bounds each dimension of an array.
const maxDim = 1 << 31

// isCounterKey reports whether a tensor name is a counter, the only kind of entry an
// integer array may hold (torch's BatchNorm num_batches_tracked).
func isCounterKey(name string) bool { return strings.HasSuffix(name, "num_batches_tracked") }

// arrayTensor converts a numpy array to a row-major float32 tensor. Float arrays
// (float16, float32, float64, either byte order) are converted; integer and bool
// arrays only when allowInt is set; object arrays never. budget is the number of
// float32 values the caller may still allocate: it is decreased by the array's size,
// and an array larger than it is an error.
func arrayTensor(a *npArray, allowInt bool, budget *int) (Tensor, error) {
	if !a.built {
		return Tensor{}, fmt.Errorf("numpy array has no data (no BUILD state)")
	}
	dt := a.dtype
	if a.objects || dt.kind == 'O' {
		return Tensor{}, fmt.Errorf("object array (dtype %s), want float32", dt.name())
	}
	var decode func(b []byte) float32
	bo := binary.ByteOrder(binary.LittleEndian)
	if dt.order == '>' {
		bo = binary.BigEndian
	}
	switch {
	case dt.kind == 'f' && dt.size == 2:
		decode = func(b []byte) float32 { return halfToFloat32(bo.Uint16(b)) }
	case dt.kind == 'f' && dt.size == 4:
		decode = func(b []byte) float32 { return math.Float32frombits(bo.Uint32(b)) }
	case dt.kind == 'f' && dt.size == 8:
		decode = func(b []byte) float32 { return float32(math.Float64frombits(bo.Uint64(b))) }
	case dt.kind == 'i' || dt.kind == 'u' || dt.kind == 'b':
		if !allowInt {
			return Tensor{}, fmt.Errorf("integer array (dtype %s) where a float weight is expected; only num_batches_tracked may be integer", dt.name())
		}
		decode = intDecoder(dt, bo)
		if decode == nil {
			return Tensor{}, fmt.Errorf("unsupported dtype %s", dt.name())
		}
	default:
		return Tensor{}, fmt.Errorf("unsupported dtype %s, want float16, float32 or float64", dt.name())
	}
	if dt.order == '|' && dt.size > 1 {
		return Tensor{}, fmt.Errorf("dtype %s has no byte order", dt.name())
	}
	shape := make([]int, len(a.shape))
	zero := false
	for i, d := range a.shape {
		v, ok := d.(int64)
		if !ok || v < 0 || v > maxDim {
			return Tensor{}, fmt.Errorf("shape %s is not a list of ints in [0, 2^31]", shapeString(a.shape))
		}
		shape[i] = int(v)
		zero = zero || v == 0
	}
	maxElems := len(a.data) / dt.size
	n := 0
	if !zero {
		n = 1
		for _, d := range shape {
			if n > maxElems/d {
				return Tensor{}, fmt.Errorf("shape %s does not fit %d bytes of %s", shapeString(a.shape), len(a.data), dt.name())
			}
			n *= d
		}
	}
	if n*dt.size != len(a.data) {
		return Tensor{}, fmt.Errorf("shape %s needs %d bytes of %s, the array holds %d", shapeString(a.shape), n*dt.size, dt.name(), len(a.data))
	}
	if n > *budget {
		return Tensor{}, fmt.Errorf("arrays hold more values than the file can store")
	}
	*budget -= n
	out := Tensor{Shape: shape, Data: make([]float32, n)}
	if n == 0 {
		return out, nil
	}
	sz := dt.size
	if !a.fortran || len(shape) < 2 {
		for i := range out.Data {
			out.Data[i] = decode(a.data[i*sz:])
		}
		return out, nil
	}
	// Fortran order: the source runs with the first index fastest; scatter each value
	// to its row-major position.
	cstride := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		cstride[i] = s
		s *= shape[i]
	}
	idx := make([]int, len(shape))
	dst := 0
	for k := 0; k < n; k++ {
		out.Data[dst] = decode(a.data[k*sz:])
		for i := 0; i < len(idx); i++ {
			idx[i]++
			dst += cstride[i]
			if idx[i] < shape[i] {
				break
			}
			dst -= idx[i] * cstride[i]
			idx[i] = 0
		}
	}
	return out, nil
}

// shapeString prints a pickled shape tuple as Go prints a []int ("[2 3]"), with the
// type of any item that is not an int.
func shapeString(shape pyTuple) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		if v, ok := d.(int64); ok {
			parts[i] = fmt.Sprint(v)
		} else {
			parts[i] = typeName(d)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func intDecoder(dt *npDtype, bo binary.ByteOrder) func(b []byte) float32 {
	switch {
	case dt.kind == 'b' && dt.size == 1, dt.kind == 'u' && dt.size == 1:
		return func(b []byte) float32 { return float32(b[0]) }
	case dt.kind == 'i' && dt.size == 1:
		return func(b []byte) float32 { return float32(int8(b[0])) }
	case dt.kind == 'i' && dt.size == 2:
		return func(b []byte) float32 { return float32(int16(bo.Uint16(b))) }
	case dt.kind == 'u' && dt.size == 2:
		return func(b []byte) float32 { return float32(bo.Uint16(b)) }
	case dt.kind == 'i' && dt.size == 4:
		return func(b []byte) float32 { return float32(int32(bo.Uint32(b))) }
	case dt.kind == 'u' && dt.size == 4:
		return func(b []byte) float32 { return float32(bo.Uint32(b)) }
	case dt.kind == 'i' && dt.size == 8:
		return func(b []byte) float32 { return float32(int64(bo.Uint64(b))) }
	case dt.kind == 'u' && dt.size == 8:
		return func(b []byte) float32 { return float32(bo.Uint64(b)) }
	}
	return nil
}

// halfToFloat32 converts an IEEE 754 binary16 value to float32 (exact).
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := int(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac * 2^-24
		f := float32(frac) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	}
	return math.Float32frombits(sign | uint32(exp-15+127)<<23 | frac<<13)
}
