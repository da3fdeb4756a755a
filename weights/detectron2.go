package weights

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Detectron2Layout says how a Detectron2 .pkl file lays out its tensors.
type Detectron2Layout int

const (
	// Detectron2ModelZoo is a model-zoo file: {"model": {name: array},
	// "__author__": str, optional "matching_heuristics": bool}, with Detectron2's
	// parameter names (backbone.res2.0.conv1.weight).
	Detectron2ModelZoo Detectron2Layout = iota + 1
	// Caffe2Flat is a Caffe2 / Detectron (v1) ImageNet file: a flat {c2_name: array}
	// with Caffe2 blob names (res2_0_branch2a_w); see Caffe2ToDetectron2.
	Caffe2Flat
	// Caffe2Blobs is a Caffe2 / Detectron (v1) detection file: {"blobs": {c2_name:
	// array}, ...}; keys beside "blobs" (e.g. "cfg") are ignored.
	Caffe2Blobs
)

func (l Detectron2Layout) String() string {
	switch l {
	case Detectron2ModelZoo:
		return "Detectron2 model zoo"
	case Caffe2Flat:
		return "Caffe2 (flat)"
	case Caffe2Blobs:
		return "Caffe2 (blobs)"
	}
	return fmt.Sprintf("Detectron2Layout(%d)", int(l))
}

// Detectron2Checkpoint is the content of a Detectron2 .pkl weight file.
type Detectron2Checkpoint struct {
	// State holds every tensor as stored, converted to float32 row-major, under the
	// file's names: Detectron2 names for model-zoo files (including the extras that
	// Detectron2Extra reports), Caffe2 names for Caffe2 files (without the
	// *_momentum blobs, which are dropped).
	State  State
	Layout Detectron2Layout
	// Names lists State's names in file order.
	Names []string
	// Author is the model-zoo file's "__author__" ("" for Caffe2 files or when it is
	// not a str).
	Author string
	// MatchingHeuristics says the names must be matched to a model's by suffix
	// (AlignBySuffix) rather than used as they are: true for Caffe2 files (after
	// Caffe2ToDetectron2) and for model-zoo files that set "matching_heuristics".
	MatchingHeuristics bool
}

// IsCaffe2 reports whether the file has Caffe2 names (Caffe2Flat or Caffe2Blobs).
func (c Detectron2Checkpoint) IsCaffe2() bool {
	return c.Layout == Caffe2Flat || c.Layout == Caffe2Blobs
}

// Detectron2Extra reports whether a model-zoo tensor name is one that Detectron2
// ignores when loading: pixel_mean and pixel_std ([3, 1, 1], the preprocessing, which
// its models hold as non-persistent buffers) and the cell anchors
// (proposal_generator.anchor_generator.cell_anchors.N) that 2019 files carry.
func Detectron2Extra(name string) bool {
	return name == "pixel_mean" || name == "pixel_std" || strings.Contains(name, "anchor_generator.cell_anchors")
}

// ReadDetectron2 reads a Detectron2 .pkl weight file (see DecodeDetectron2).
func ReadDetectron2(path string) (Detectron2Checkpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Detectron2Checkpoint{}, fmt.Errorf("weights: %w", err)
	}
	return decodeDetectron2(data, path)
}

// DecodeDetectron2 reads a Detectron2 .pkl weight file from r; name (the file name)
// is used in errors. The whole input is read into memory.
//
// The file is a pickle (protocol 2 to 5, as written by Python 2 or 3) holding one of
// the layouts of Detectron2Layout, classified as Detectron2's DetectionCheckpointer
// does: a dict with both "model" and "__author__" is a model-zoo file; any other dict
// is a Caffe2 file, whose tensors are under "blobs" when that key exists. Tensors are
// numpy arrays (float16, float32 or float64, either byte order, C or Fortran order,
// any number of dimensions including 0), converted to float32 in row-major order;
// integer arrays are accepted only under names ending in num_batches_tracked. Nothing
// in the file is executed: the only classes allowed are numpy's array and dtype
// reconstructors, _codecs.encode (protocol 2's bytes), builtins.bytes and
// collections.OrderedDict; any other class is an error naming it. Errors name the
// file and, when known, the tensor.
func DecodeDetectron2(r io.Reader, name string) (Detectron2Checkpoint, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Detectron2Checkpoint{}, fmt.Errorf("weights: %s: %w", name, err)
	}
	return decodeDetectron2(data, name)
}

func decodeDetectron2(data []byte, name string) (Detectron2Checkpoint, error) {
	fail := func(format string, args ...any) (Detectron2Checkpoint, error) {
		return Detectron2Checkpoint{}, fmt.Errorf("weights: %s: "+format, append([]any{name}, args...)...)
	}
	obj, key, err := unpickle(data)
	if err != nil {
		if key != "" {
			return fail("entry %s: %v", key, err)
		}
		return fail("%v", err)
	}
	top, ok := obj.(*pyDict)
	if !ok {
		return fail("the pickle holds a %s, want a dict", typeName(obj))
	}
	get := func(d *pyDict, k string) (any, bool) {
		var v any
		found := false
		for _, it := range d.items {
			if s, ok := pyString(it.key); ok && s == k {
				v, found = it.value, true
			}
		}
		return v, found
	}
	ck := Detectron2Checkpoint{}
	model, hasModel := get(top, "model")
	author, hasAuthor := get(top, "__author__")
	tensors := top
	where := ""
	switch blobs, hasBlobs := get(top, "blobs"); {
	case hasModel && hasAuthor:
		ck.Layout = Detectron2ModelZoo
		ck.Author, _ = pyString(author)
		if mh, ok := get(top, "matching_heuristics"); ok {
			b, isBool := pyBool(mh)
			if !isBool {
				return fail(`"matching_heuristics" is a %s, want a bool`, typeName(mh))
			}
			ck.MatchingHeuristics = b
		}
		d, ok := model.(*pyDict)
		if !ok {
			return fail(`"model" is a %s, want a dict of arrays`, typeName(model))
		}
		tensors, where = d, `"model" `
	case hasBlobs:
		ck.Layout, ck.MatchingHeuristics = Caffe2Blobs, true
		d, ok := blobs.(*pyDict)
		if !ok {
			return fail(`"blobs" is a %s, want a dict of arrays`, typeName(blobs))
		}
		tensors, where = d, `"blobs" `
	default:
		ck.Layout, ck.MatchingHeuristics = Caffe2Flat, true
	}
	// Every array value takes at least one byte of the input, so a well-formed file
	// holds fewer values than bytes; arrays sharing one buffer through the memo could
	// otherwise multiply the output.
	budget := len(data) + 1024
	ck.State = make(State, len(tensors.items))
	for _, it := range tensors.items {
		k, ok := pyString(it.key)
		if !ok {
			return fail("%skey of type %s, want a str", where, typeName(it.key))
		}
		if len(k) > maxKeyBytes {
			return fail("%skey of %d bytes, longer than %d", where, len(k), maxKeyBytes)
		}
		if ck.IsCaffe2() && strings.HasSuffix(k, "_momentum") {
			continue
		}
		a, ok := it.value.(*npArray)
		if !ok {
			return fail("%sentry %q is a %s, want a numpy array", where, k, typeName(it.value))
		}
		t, err := arrayTensor(a, isCounterKey(k), &budget)
		if err != nil {
			return fail("%sentry %q: %v", where, k, err)
		}
		if _, dup := ck.State[k]; !dup {
			ck.Names = append(ck.Names, k)
		}
		ck.State[k] = t
	}
	return ck, nil
}
