package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"resdet/internal/testutil"
)

type pickleManifestTensor struct {
	Name   string `json:"name"`
	Shape  []int  `json:"shape"`
	Offset int    `json:"offset"`
}

type pickleCase struct {
	File       string                 `json:"file"`
	Layout     string                 `json:"layout"`
	Author     string                 `json:"author"`
	Heuristics bool                   `json:"heuristics"`
	Tensors    []pickleManifestTensor `json:"tensors"`
}

type pickleManifest struct {
	Cases  []pickleCase `json:"cases"`
	Errors []struct {
		File string   `json:"file"`
		Want []string `json:"want"`
	} `json:"errors"`
}

var layoutNames = map[string]Detectron2Layout{
	"zoo": Detectron2ModelZoo, "c2flat": Caffe2Flat, "c2blobs": Caffe2Blobs,
}

// readValues reads a little-endian float32 file.
func readValues(t testing.TB, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// generatedPickles writes the test pickles of gen_pickles.py and returns their folder
// and manifest.
func generatedPickles(t *testing.T) (string, pickleManifest) {
	t.Helper()
	testutil.Python(t, "numpy")
	dir := t.TempDir()
	testutil.RunScript(t, "testdata/gen_pickles.py", dir)
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m pickleManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// checkCheckpoint compares a decoded file with a manifest case and its values; it
// returns the number of values compared. Values must be bit-identical (NaN: both NaN).
func checkCheckpoint(t *testing.T, ck Detectron2Checkpoint, want pickleCase, values []float32) int {
	t.Helper()
	if ck.Layout != layoutNames[want.Layout] || ck.Author != want.Author || ck.MatchingHeuristics != want.Heuristics {
		t.Errorf("layout %v, author %q, heuristics %v; want %s, %q, %v",
			ck.Layout, ck.Author, ck.MatchingHeuristics, want.Layout, want.Author, want.Heuristics)
	}
	var names []string
	for _, w := range want.Tensors {
		names = append(names, w.Name)
	}
	if !reflect.DeepEqual(ck.Names, names) {
		t.Errorf("names %v, want %v", ck.Names, names)
	}
	if len(ck.State) != len(names) {
		t.Errorf("%d tensors, want %d", len(ck.State), len(names))
	}
	n := 0
	for _, w := range want.Tensors {
		got, err := ck.State.Get(w.Name, w.Shape...)
		if err != nil {
			t.Error(err)
			continue
		}
		exp := values[w.Offset : w.Offset+NumElements(w.Shape)]
		if len(got.Data) != len(exp) {
			t.Errorf("%s: %d values, want %d", w.Name, len(got.Data), len(exp))
			continue
		}
		for i, e := range exp {
			g := got.Data[i]
			same := math.Float32bits(g) == math.Float32bits(e) || (g != g && e != e)
			if !same {
				t.Errorf("%s[%d] = %v (%#08x), want %v (%#08x)", w.Name, i, g, math.Float32bits(g), e, math.Float32bits(e))
				break
			}
		}
		n += len(exp)
	}
	return n
}

// sameCheckpoint compares two checkpoints bit for bit (NaN payloads included).
func sameCheckpoint(a, b Detectron2Checkpoint) bool {
	if a.Layout != b.Layout || a.Author != b.Author || a.MatchingHeuristics != b.MatchingHeuristics ||
		!reflect.DeepEqual(a.Names, b.Names) || len(a.State) != len(b.State) {
		return false
	}
	for k, ta := range a.State {
		tb, ok := b.State[k]
		if !ok || !sameShape(ta.Shape, tb.Shape) || len(ta.Data) != len(tb.Data) {
			return false
		}
		for i := range ta.Data {
			if math.Float32bits(ta.Data[i]) != math.Float32bits(tb.Data[i]) {
				return false
			}
		}
	}
	return true
}

// TestDecodeDetectron2Generated reads pickles of every protocol (2-5 and Python 2's),
// layout, dtype (float16/32/64, both byte orders), memory order and rank that
// gen_pickles.py writes, and compares every value with what the script wrote.
func TestDecodeDetectron2Generated(t *testing.T) {
	dir, m := generatedPickles(t)
	values := readValues(t, filepath.Join(dir, "values.bin"))
	if len(m.Cases) < 9 {
		t.Fatalf("manifest lists %d cases", len(m.Cases))
	}
	for _, c := range m.Cases {
		t.Run(c.File, func(t *testing.T) {
			path := filepath.Join(dir, c.File)
			ck, err := ReadDetectron2(path)
			if err != nil {
				t.Fatal(err)
			}
			n := checkCheckpoint(t, ck, c, values)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ck2, err := DecodeDetectron2(bytes.NewReader(b), c.File)
			if err != nil {
				t.Fatal(err)
			}
			if !sameCheckpoint(ck, ck2) {
				t.Error("DecodeDetectron2 and ReadDetectron2 differ")
			}
			t.Logf("%d tensors, %d values bit-identical to numpy's float32", len(ck.State), n)
		})
	}
}

// TestDecodeDetectron2Rejects checks that every malformed, malicious or unsupported
// file of gen_pickles.py gives a one-line error naming the file and the class or entry.
func TestDecodeDetectron2Rejects(t *testing.T) {
	dir, m := generatedPickles(t)
	if len(m.Errors) < 30 {
		t.Fatalf("manifest lists %d error cases", len(m.Errors))
	}
	for _, c := range m.Errors {
		t.Run(c.File, func(t *testing.T) {
			path := filepath.Join(dir, c.File)
			_, err := ReadDetectron2(path)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range append([]string{path}, c.Want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q spans several lines", msg)
			}
		})
	}
}

// TestDecodeDetectron2Seeds reads the committed fuzz seeds (no Python needed): each
// holds w = arange(6) as (2, 3) float32, f = arange(6) as (3, 2) big-endian float64 in
// Fortran order, and h = 1.5 as a 0-d float16.
func TestDecodeDetectron2Seeds(t *testing.T) {
	want := State{
		"w": {Shape: []int{2, 3}, Data: []float32{0, 1, 2, 3, 4, 5}},
		"f": {Shape: []int{3, 2}, Data: []float32{0, 1, 2, 3, 4, 5}},
		"h": {Shape: []int{}, Data: []float32{1.5}},
	}
	for _, tc := range []struct {
		file   string
		layout Detectron2Layout
	}{
		{file: "seed_p2.pkl", layout: Detectron2ModelZoo},
		{file: "seed_p3.pkl", layout: Detectron2ModelZoo},
		{file: "seed_p4.pkl", layout: Detectron2ModelZoo},
		{file: "seed_p5.pkl", layout: Detectron2ModelZoo},
		{file: "seed_py2.pkl", layout: Caffe2Flat},
	} {
		t.Run(tc.file, func(t *testing.T) {
			ck, err := ReadDetectron2(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if ck.Layout != tc.layout {
				t.Errorf("layout %v, want %v", ck.Layout, tc.layout)
			}
			if !reflect.DeepEqual(ck.State, want) {
				t.Errorf("got %v, want %v", ck.State, want)
			}
			if !reflect.DeepEqual(ck.Names, []string{"w", "f", "h"}) {
				t.Errorf("names %v", ck.Names)
			}
		})
	}
}

// TestDecodeDetectron2EveryPrefix cuts each committed seed at every byte: each prefix
// must give an error naming the file that says it is truncated (or not a pickle).
func TestDecodeDetectron2EveryPrefix(t *testing.T) {
	seeds, err := filepath.Glob("testdata/seed_*.pkl")
	if err != nil || len(seeds) < 5 {
		t.Fatalf("seeds %v (%v)", seeds, err)
	}
	for _, s := range seeds {
		t.Run(filepath.Base(s), func(t *testing.T) {
			b, err := os.ReadFile(s)
			if err != nil {
				t.Fatal(err)
			}
			for n := 0; n < len(b); n++ {
				_, err := DecodeDetectron2(bytes.NewReader(b[:n]), "cut.pkl")
				if err == nil {
					t.Fatalf("%d of %d bytes: no error", n, len(b))
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, "weights: cut.pkl: ") ||
					!(strings.Contains(msg, "truncated") || strings.Contains(msg, "not a pickle")) {
					t.Fatalf("%d of %d bytes: error %q", n, len(b), msg)
				}
			}
		})
	}
}

// TestReadDetectron2Fixtures reads the shared Detectron2 fixture files and compares
// every value with what pickle + numpy read from the same file.
func TestReadDetectron2Fixtures(t *testing.T) {
	for _, tc := range []struct {
		file    string
		layout  Detectron2Layout
		weights int // tensors without the extras
		extras  int
		shapes  map[string][]int
	}{
		{
			// 270, not the full-width model's 275: with RES2_OUT_CHANNELS 64, res2.0 has
			// no shortcut.
			file: "r50-c4/model_final.pkl", layout: Detectron2ModelZoo, weights: 270, extras: 3,
			shapes: map[string][]int{
				"backbone.stem.conv1.weight":                       {64, 3, 7, 7},
				"backbone.res2.0.conv1.weight":                     {16, 64, 1, 1},
				"backbone.res4.5.conv3.norm.running_var":           {256},
				"proposal_generator.rpn_head.anchor_deltas.weight": {60, 256, 1, 1},
				"roi_heads.res5.0.shortcut.weight":                 {512, 256, 1, 1},
				"roi_heads.box_predictor.cls_score.weight":         {81, 512},
				"roi_heads.box_predictor.bbox_pred.weight":         {320, 512},
				"pixel_mean": {3, 1, 1},
			},
		},
		{
			file: "r50-fpn/model_final.pkl", layout: Detectron2ModelZoo, weights: 290, extras: 7,
			shapes: map[string][]int{
				"backbone.bottom_up.stem.conv1.weight":                 {64, 3, 7, 7},
				"backbone.fpn_lateral2.weight":                         {64, 64, 1, 1},
				"backbone.fpn_output5.bias":                            {64},
				"proposal_generator.rpn_head.objectness_logits.weight": {3, 64, 1, 1},
				"roi_heads.box_head.fc1.weight":                        {256, 3136},
				"roi_heads.box_predictor.bbox_pred.weight":             {320, 256},
			},
		},
		{
			file: "c2/R-50.pkl", layout: Caffe2Flat, weights: 263,
			shapes: map[string][]int{
				"conv1_w":                 {64, 3, 7, 7},
				"res_conv1_bn_gamma":      {64},
				"res5_0_branch1_w":        {512, 256, 1, 1},
				"res5_2_branch2c_bn_beta": {512},
				"fc1000_w":                {1000, 2048},
			},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := testutil.SharedDir(t, "fixtures", "detectron2", tc.file)
			testutil.Python(t, "numpy")
			ck, err := ReadDetectron2(path)
			if err != nil {
				t.Fatal(err)
			}
			if ck.Layout != tc.layout {
				t.Errorf("layout %v, want %v", ck.Layout, tc.layout)
			}
			extras := 0
			for _, n := range ck.Names {
				if Detectron2Extra(n) {
					extras++
				}
			}
			if extras != tc.extras || len(ck.State)-extras != tc.weights {
				t.Errorf("%d weights and %d extras, want %d and %d", len(ck.State)-extras, extras, tc.weights, tc.extras)
			}
			for name, shape := range tc.shapes {
				if _, err := ck.State.Get(name, shape...); err != nil {
					t.Error(err)
				}
			}
			dir := t.TempDir()
			testutil.RunScript(t, "testdata/dump_pickle.py", path, dir)
			b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			var want pickleCase
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			n := checkCheckpoint(t, ck, want, readValues(t, filepath.Join(dir, "values.bin")))
			t.Logf("%d tensors, %d values bit-identical to numpy's", len(ck.State), n)
		})
	}
}

func FuzzDecodeDetectron2(f *testing.F) {
	seeds, err := filepath.Glob("testdata/seed_*.pkl")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata (%v)", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ck, err := DecodeDetectron2(bytes.NewReader(b), "fuzz.pkl")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "weights: fuzz.pkl: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(ck.Names) != len(ck.State) {
			t.Fatalf("%d names for %d tensors", len(ck.Names), len(ck.State))
		}
		total := 0
		for name, tt := range ck.State {
			if len(tt.Data) != NumElements(tt.Shape) {
				t.Fatalf("%s: %d values for shape %v", name, len(tt.Data), tt.Shape)
			}
			total += len(tt.Data)
		}
		if total > len(b)+1024 {
			t.Fatalf("%d values from %d bytes", total, len(b))
		}
	})
}
