package weights

import (
	"archive/zip"
	"fmt"
	"os"

	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"
)

// LoadTorch reads a state dict saved by torch.save (see the package doc for what is
// accepted). Tensors of any numeric storage type are converted to float32; strided
// (non-contiguous) tensors are copied into row-major order. Non-tensor values are an
// error naming the key.
func LoadTorch(path string) (State, error) {
	obj, err := loadPickle(path)
	if err != nil {
		return nil, fmt.Errorf("weights: load %s: %w", path, err)
	}
	s, err := stateFromPickle(obj)
	if err != nil {
		return nil, fmt.Errorf("weights: load %s: %w", path, err)
	}
	return s, nil
}

// loadPickle runs gopickle and turns its panics (it panics on some legacy layouts it
// does not implement) into errors.
func loadPickle(path string) (obj any, err error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	if !isZip(path) && isTar(path) {
		return nil, fmt.Errorf("the tar checkpoint format of torch < 0.4 is not supported; re-save the file with a recent torch")
	}
	defer func() {
		if r := recover(); r != nil {
			obj, err = nil, fmt.Errorf("unsupported checkpoint layout: %v", r)
		}
	}()
	return pytorch.Load(path)
}

func isZip(path string) bool {
	r, err := zip.OpenReader(path)
	if err != nil {
		return false
	}
	r.Close()
	return true
}

func isTar(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [5]byte
	if _, err := f.ReadAt(b[:], 257); err != nil {
		return false
	}
	return string(b[:]) == "ustar"
}

// entries lists the key/value pairs of a pickled dict in file order.
func entries(obj any) ([][2]any, bool) {
	switch d := obj.(type) {
	case *types.OrderedDict:
		out := make([][2]any, 0, d.List.Len())
		for e := d.List.Front(); e != nil; e = e.Next() {
			en := e.Value.(*types.OrderedDictEntry)
			out = append(out, [2]any{en.Key, en.Value})
		}
		return out, true
	case *types.Dict:
		out := make([][2]any, 0, d.Len())
		for _, en := range *d {
			out = append(out, [2]any{en.Key, en.Value})
		}
		return out, true
	}
	return nil, false
}

func stateFromPickle(obj any) (State, error) {
	kv, ok := entries(obj)
	if !ok {
		return nil, fmt.Errorf("top-level object is %T, want a dict of tensors", obj)
	}
	// A training checkpoint may wrap the state dict.
	for _, e := range kv {
		if k, _ := e[0].(string); k == "state_dict" || k == "model" {
			if _, isDict := entries(e[1]); isDict {
				return stateFromPickle(e[1])
			}
		}
	}
	s := make(State, len(kv))
	used := map[*pytorch.FloatStorage]bool{}
	for _, e := range kv {
		name, ok := e[0].(string)
		if !ok {
			return nil, fmt.Errorf("key %v is %T, want a string", e[0], e[0])
		}
		t, ok := e[1].(*pytorch.Tensor)
		if !ok {
			return nil, fmt.Errorf("entry %q is %T, want a tensor", name, e[1])
		}
		dt, err := denseTensor(t, used)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		s[name] = dt
	}
	return s, nil
}

// storageValues returns the storage's elements as a float64 accessor and its length.
func storageValues(src pytorch.StorageInterface) (func(i int) float32, int, error) {
	switch st := src.(type) {
	case *pytorch.FloatStorage:
		return func(i int) float32 { return st.Data[i] }, len(st.Data), nil
	case *pytorch.HalfStorage:
		return func(i int) float32 { return st.Data[i] }, len(st.Data), nil
	case *pytorch.BFloat16Storage:
		return func(i int) float32 { return st.Data[i] }, len(st.Data), nil
	case *pytorch.DoubleStorage:
		return func(i int) float32 { return float32(st.Data[i]) }, len(st.Data), nil
	case *pytorch.LongStorage:
		return func(i int) float32 { return float32(st.Data[i]) }, len(st.Data), nil
	case *pytorch.IntStorage:
		return func(i int) float32 { return float32(st.Data[i]) }, len(st.Data), nil
	case *pytorch.ShortStorage:
		return func(i int) float32 { return float32(st.Data[i]) }, len(st.Data), nil
	case *pytorch.CharStorage:
		return func(i int) float32 { return float32(st.Data[i]) }, len(st.Data), nil
	case *pytorch.ByteStorage:
		return func(i int) float32 { return float32(st.Data[i]) }, len(st.Data), nil
	}
	return nil, 0, fmt.Errorf("unsupported storage %T", src)
}

// denseTensor copies a (possibly strided) torch tensor into row-major float32.
// A contiguous float32 tensor is not copied but uses its storage's memory
// when no tensor before it did (used records the storages taken), so a
// state dict costs its size once, not twice, and no two tensors share memory.
func denseTensor(t *pytorch.Tensor, used map[*pytorch.FloatStorage]bool) (Tensor, error) {
	at, n, err := storageValues(t.Source)
	if err != nil {
		return Tensor{}, err
	}
	if len(t.Stride) != len(t.Size) {
		return Tensor{}, fmt.Errorf("size %v and stride %v differ in length", t.Size, t.Stride)
	}
	numel := NumElements(t.Size)
	out := Tensor{Shape: append([]int{}, t.Size...)}
	if numel == 0 {
		out.Data = []float32{}
		return out, nil
	}
	// Bounds: the largest storage index reached must lie inside the storage.
	maxIdx := t.StorageOffset
	for i, d := range t.Size {
		if d < 0 || t.Stride[i] < 0 {
			return Tensor{}, fmt.Errorf("negative size or stride: size %v stride %v", t.Size, t.Stride)
		}
		maxIdx += (d - 1) * t.Stride[i]
	}
	if t.StorageOffset < 0 || maxIdx >= n {
		return Tensor{}, fmt.Errorf("size %v stride %v offset %d reach beyond the storage of %d elements",
			t.Size, t.Stride, t.StorageOffset, n)
	}
	if fs, ok := t.Source.(*pytorch.FloatStorage); ok && contiguous(t.Size, t.Stride) {
		d := fs.Data[t.StorageOffset : t.StorageOffset+numel : t.StorageOffset+numel]
		if used[fs] {
			d = append([]float32(nil), d...)
		}
		used[fs] = true
		out.Data = d
		return out, nil
	}
	out.Data = make([]float32, numel)
	idx := make([]int, len(t.Size))
	for k := 0; k < numel; k++ {
		off := t.StorageOffset
		for i, j := range idx {
			off += j * t.Stride[i]
		}
		out.Data[k] = at(off)
		for i := len(idx) - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < t.Size[i] {
				break
			}
			idx[i] = 0
		}
	}
	return out, nil
}

// contiguous reports whether stride is the row-major stride of size (dimensions of
// size 1 may have any stride).
func contiguous(size, stride []int) bool {
	want := 1
	for i := len(size) - 1; i >= 0; i-- {
		if size[i] != 1 && stride[i] != want {
			return false
		}
		want *= size[i]
	}
	return true
}
