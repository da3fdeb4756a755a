package weights

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"

	"resdet/internal/atomicfile"
)

// maxHeader bounds the JSON header of a safetensors file (the reference
// implementation uses 100 MB).
const maxHeader = 100 << 20

type stEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// ReadSafetensors reads a safetensors file. It returns the tensors and the string
// metadata of the header (nil if absent).
func ReadSafetensors(path string) (State, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("weights: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("weights: %w", err)
	}
	s, meta, err := DecodeSafetensors(f, st.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("weights: read %s: %w", path, err)
	}
	return s, meta, nil
}

// DecodeSafetensors decodes a safetensors stream of size bytes.
func DecodeSafetensors(r io.ReaderAt, size int64) (State, map[string]string, error) {
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, nil, fmt.Errorf("header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxHeader || int64(n) > size-8 {
		return nil, nil, fmt.Errorf("header length %d exceeds the file (%d bytes) or the %d-byte limit", n, size, maxHeader)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, nil, fmt.Errorf("header JSON: %w", err)
	}
	base := 8 + int64(n)
	dataLen := size - base
	var meta map[string]string
	s := make(State, len(raw))
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, fmt.Errorf("__metadata__: %w", err)
			}
			continue
		}
		var e stEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		t, err := readEntry(r, base, dataLen, name, e)
		if err != nil {
			return nil, nil, err
		}
		s[name] = t
	}
	return s, meta, nil
}

func elemSize(dtype string) int {
	switch dtype {
	case "F64", "I64":
		return 8
	case "F32", "I32":
		return 4
	case "F16", "BF16":
		return 2
	}
	return 0
}

func readEntry(r io.ReaderAt, base, dataLen int64, name string, e stEntry) (Tensor, error) {
	es := elemSize(e.DType)
	if es == 0 {
		return Tensor{}, fmt.Errorf("tensor %q: unsupported dtype %q", name, e.DType)
	}
	n := 1
	for _, d := range e.Shape {
		if d < 0 || (d > 0 && int64(n) > dataLen/int64(d)) {
			return Tensor{}, fmt.Errorf("tensor %q: shape %v is negative or exceeds the %d data bytes", name, e.Shape, dataLen)
		}
		n *= d
	}
	b, end := e.DataOffsets[0], e.DataOffsets[1]
	if b < 0 || end < b || end > dataLen || end-b != int64(n)*int64(es) {
		return Tensor{}, fmt.Errorf("tensor %q: data_offsets %v do not hold %d %s elements of shape %v within %d data bytes",
			name, e.DataOffsets, n, e.DType, e.Shape, dataLen)
	}
	buf := make([]byte, end-b)
	if _, err := r.ReadAt(buf, base+b); err != nil {
		return Tensor{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	data := make([]float32, n)
	le := binary.LittleEndian
	for i := range data {
		switch e.DType {
		case "F32":
			data[i] = math.Float32frombits(le.Uint32(buf[4*i:]))
		case "F64":
			data[i] = float32(math.Float64frombits(le.Uint64(buf[8*i:])))
		case "I64":
			data[i] = float32(int64(le.Uint64(buf[8*i:])))
		case "I32":
			data[i] = float32(int32(le.Uint32(buf[4*i:])))
		case "F16":
			data[i] = half(le.Uint16(buf[2*i:]))
		case "BF16":
			data[i] = math.Float32frombits(uint32(le.Uint16(buf[2*i:])) << 16)
		}
	}
	return Tensor{Shape: append([]int{}, e.Shape...), Data: data}, nil
}

// half converts an IEEE 754 binary16 value to float32.
func half(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * float32(math.Ldexp(frac, -24))
	case 0x1f:
		if frac == 0 {
			return sign * float32(math.Inf(1))
		}
		return float32(math.NaN())
	}
	return sign * float32(math.Ldexp(1+frac/1024, exp-15))
}

// WriteSafetensors writes s as F32 tensors, names sorted, with the given string metadata
// (may be nil). The file is written atomically (temporary file in the same directory,
// then rename). It returns an error if a tensor's data does not match its shape.
func WriteSafetensors(path string, s State, meta map[string]string) error {
	names := s.Names()
	hdr := make(map[string]any, len(s)+1)
	var off int64
	for _, name := range names {
		t := s[name]
		if len(t.Data) != NumElements(t.Shape) {
			return fmt.Errorf("weights: write %s: tensor %q has %d values for shape %v", path, name, len(t.Data), t.Shape)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		n := int64(4 * len(t.Data))
		hdr[name] = stEntry{DType: "F32", Shape: shape, DataOffsets: [2]int64{off, off + n}}
		off += n
	}
	if len(meta) > 0 {
		hdr["__metadata__"] = meta
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return fmt.Errorf("weights: write %s: %w", path, err)
	}
	// Pad the header with spaces so the data starts 8-byte aligned, as the reference
	// writer does.
	for (8+len(js))%8 != 0 {
		js = append(js, ' ')
	}
	err = atomicfile.Write(path, func(w io.Writer) error {
		var lenBuf [8]byte
		binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
		if _, err := w.Write(lenBuf[:]); err != nil {
			return err
		}
		if _, err := w.Write(js); err != nil {
			return err
		}
		buf := make([]byte, 0, 1<<16)
		for _, name := range names {
			for _, v := range s[name].Data {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
				if len(buf) == cap(buf) {
					if _, err := w.Write(buf); err != nil {
						return err
					}
					buf = buf[:0]
				}
			}
		}
		_, err := w.Write(buf)
		return err
	})
	if err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	return nil
}
