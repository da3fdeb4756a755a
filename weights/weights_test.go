package weights

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nlpodyssey/gopickle/pytorch"

	"resdet/internal/testutil"
)

var update = flag.Bool("update", false, "regenerate testdata with /usr/bin/python3 testdata/gen_fixtures.py")

type expTensor struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

func loadExpected(t *testing.T) map[string]expTensor {
	t.Helper()
	if *update {
		testutil.Regenerate(t, "testdata/gen_fixtures.py", "testdata")
	}
	b, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var exp map[string]expTensor
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	return exp
}

// checkState compares s with the values torch wrote; tol is relative to
// max(1, |value|). It logs the worst difference.
func checkState(t *testing.T, s State, exp map[string]expTensor, tol float64) {
	t.Helper()
	var worst float64
	worstName := ""
	if len(s) != len(exp) {
		t.Errorf("got %d tensors %v, want %d", len(s), s.Names(), len(exp))
	}
	for name, e := range exp {
		got, err := s.Get(name, e.Shape...)
		if err != nil {
			t.Error(err)
			continue
		}
		if len(got.Data) != len(e.Data) {
			t.Errorf("%s: %d values, want %d", name, len(got.Data), len(e.Data))
			continue
		}
		for i, v := range e.Data {
			d := math.Abs(float64(got.Data[i])-v) / math.Max(1, math.Abs(v))
			if d > worst || math.IsNaN(d) {
				worst, worstName = d, name
			}
			if !(d <= tol) {
				t.Errorf("%s[%d] = %v, want %v", name, i, got.Data[i], v)
				break
			}
		}
	}
	t.Logf("%d tensors: worst difference relative to max(1, |torch|) %.2e (%s), bound %g", len(exp), worst, worstName, tol)
}

func TestLoadTorch(t *testing.T) {
	exp := loadExpected(t)
	for _, tc := range []struct{ name, file string }{
		{name: "zip", file: "state.pth"},
		{name: "legacy", file: "state_legacy.pth"},
		{name: "wrapped state_dict", file: "wrapped.pth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadTorch(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			// float64 values are rounded to float32; the rest are exact.
			checkState(t, s, exp, 1e-7)
		})
	}
}

func TestLoadTorchRejects(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{name: "non-tensor value", file: "not_tensor.pth", want: `"epoch"`},
		{name: "pickled module", file: "module.pth", want: "class not found"},
		{name: "missing file", file: "nope.pth", want: "nope.pth"},
		{name: "not a checkpoint", file: "expected.json", want: "expected.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadTorch(filepath.Join("testdata", tc.file))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestReadSafetensorsFromPython(t *testing.T) {
	exp := loadExpected(t)
	s, meta, err := ReadSafetensors("testdata/state.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if meta["format"] != "pt" {
		t.Errorf("metadata %v, want format=pt", meta)
	}
	checkState(t, s, exp, 1e-7)
}

func TestSafetensorsRoundTrip(t *testing.T) {
	s, err := LoadTorch("testdata/state.pth")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "w.safetensors")
	meta := map[string]string{"arch": "resnet18"}
	if err := WriteSafetensors(path, s, meta); err != nil {
		t.Fatal(err)
	}
	got, gotMeta, err := ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if gotMeta["arch"] != "resnet18" {
		t.Errorf("metadata %v", gotMeta)
	}
	if len(got) != len(s) {
		t.Fatalf("%d tensors, want %d", len(got), len(s))
	}
	for name, want := range s {
		g, err := got.Get(name, want.Shape...)
		if err != nil {
			t.Error(err)
			continue
		}
		for i := range want.Data {
			if g.Data[i] != want.Data[i] {
				t.Errorf("%s[%d] = %v, want %v", name, i, g.Data[i], want.Data[i])
				break
			}
		}
	}
	// The file is readable by Python's json+numpy, with the data 8-byte aligned.
	b, _ := os.ReadFile(path)
	if n := int(b[0]) | int(b[1])<<8; (8+n)%8 != 0 {
		t.Errorf("header length %d leaves data unaligned", n)
	}
}

func TestSafetensorsCorrupt(t *testing.T) {
	good, err := os.ReadFile("testdata/state.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{name: "truncated data", data: good[:len(good)-4], want: "data_offsets"},
		{name: "huge header", data: append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, good[8:]...), want: "header length"},
		{name: "too short", data: good[:3], want: "header length"},
		{name: "bad dtype", data: []byte(strings.Replace(string(good), `"F64"`, `"C64"`, 1)), want: `unsupported dtype "C64"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := ReadSafetensors(p)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %q should mention %q and the file", err, tc.want)
			}
		})
	}
}

func TestStateGetErrors(t *testing.T) {
	s := State{"fc.weight": {Shape: []int{10, 512}, Data: make([]float32, 5120)}}
	for _, tc := range []struct {
		name  string
		key   string
		shape []int
		want  []string
	}{
		{name: "missing", key: "fc.bias", shape: []int{10}, want: []string{`"fc.bias"`, "missing", "[10]"}},
		{name: "mismatch", key: "fc.weight", shape: []int{1000, 512}, want: []string{`"fc.weight"`, "[10 512]", "[1000 512]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Get(tc.key, tc.shape...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
	if _, err := s.Get("fc.weight", 10, 512); err != nil {
		t.Error(err)
	}
}

func FuzzDecodeSafetensors(f *testing.F) {
	good, err := os.ReadFile("testdata/state.safetensors")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, _, err := DecodeSafetensors(strings.NewReader(string(b)), int64(len(b)))
		if err != nil {
			return
		}
		for name, tt := range s {
			if len(tt.Data) != NumElements(tt.Shape) {
				t.Fatalf("%s: %d values for shape %v", name, len(tt.Data), tt.Shape)
			}
		}
	})
}

// A contiguous float32 tensor takes its storage's memory instead of a copy,
// but only the first tensor of a storage does: two state-dict entries never
// share memory (tied weights, views of one storage).
func TestDenseTensorSharedStorage(t *testing.T) {
	st := &pytorch.FloatStorage{Data: []float32{1, 2, 3, 4, 5, 6}}
	used := map[*pytorch.FloatStorage]bool{}
	a, err := denseTensor(&pytorch.Tensor{Source: st, Size: []int{2, 2}, Stride: []int{2, 1}}, used)
	if err != nil {
		t.Fatal(err)
	}
	b, err := denseTensor(&pytorch.Tensor{Source: st, StorageOffset: 2, Size: []int{4}, Stride: []int{1}}, used)
	if err != nil {
		t.Fatal(err)
	}
	if &a.Data[0] != &st.Data[0] || cap(a.Data) != 4 {
		t.Errorf("the first tensor was copied (or may grow into the storage): cap %d", cap(a.Data))
	}
	a.Data[2] = -1 // storage element 2, also b's first
	if b.Data[0] != 3 || len(b.Data) != 4 || b.Data[3] != 6 {
		t.Errorf("second tensor %v shares the first's memory, want [3 4 5 6]", b.Data)
	}
}
