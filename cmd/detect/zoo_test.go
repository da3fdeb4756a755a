package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"resdet/checkpoint"
	"resdet/datasets"
	"resdet/detection"
	"resdet/format/coco"
	"resdet/inference"
	"resdet/internal/cli"
	"resdet/internal/testutil"
	"resdet/zoo"
)

// fixtureZoo serves a Detectron2 fixture model (a zoo-format file, folder
// fixture of the shared fixtures: "r50-c4", "r50-fpn") over HTTP under the
// registry name name and returns a lookup that finds it there (arch as its
// Arch, a COCO model), and the number of requests the server answered.
func fixtureZoo(t *testing.T, name, fixture, arch string) (func(string) (zoo.Model, error), *atomic.Int32) {
	t.Helper()
	pkl := testutil.SharedDir(t, "fixtures", "detectron2", fixture, "model_final.pkl")
	urlPath := "COCO-Detection/fixture_" + fixture + "/1/model_final_000000.pkl"
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/"+urlPath {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		http.ServeFile(w, r, pkl)
	}))
	t.Cleanup(srv.Close)
	m := zoo.Model{Name: name, Title: "fixture " + fixture, Base: srv.URL + "/", Path: urlPath, Format: zoo.FormatDetectron2,
		Arch: arch, Construction: zoo.Detectron2, Dataset: zoo.COCO}
	lookup := func(n string) (zoo.Model, error) {
		if n == m.Name {
			return m, nil
		}
		return zoo.Lookup(n)
	}
	return lookup, &hits
}

// d2Detection is one detection of a fixture's expected.json.
type d2Detection struct {
	Box        [4]float32 `json:"box"`
	Score      float32    `json:"score"`
	CategoryID int        `json:"category_id"`
	Label      string     `json:"label"`
}

// d2ExpectedDetections returns what Detectron2 detected with the fixture
// model in folder fixture on the photo source (expected.json).
func d2ExpectedDetections(t *testing.T, fixture, source string) []d2Detection {
	t.Helper()
	raw, err := os.ReadFile(testutil.SharedDir(t, "fixtures", "detectron2", fixture, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Images []struct {
			Source     string        `json:"source"`
			Detections []d2Detection `json:"detections"`
		} `json:"images"`
	}
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	for _, im := range exp.Images {
		if im.Source == source {
			return im.Detections
		}
	}
	t.Fatalf("%s/expected.json has no image %s", fixture, source)
	return nil
}

// checkD2Output checks detect --json's output for one image against
// Detectron2's detections above thresh, in order: label, COCO category id,
// box within 0.5 px, score within 3e-3. It returns how many it compared.
func checkD2Output(t *testing.T, stdout string, exp []d2Detection, thresh float32) int {
	t.Helper()
	var res inference.Result
	if err := json.Unmarshal(bytes.TrimSpace([]byte(stdout)), &res); err != nil {
		t.Fatalf("output %q: %v", stdout, err)
	}
	var want []d2Detection
	for _, d := range exp {
		if d.Score > thresh {
			want = append(want, d)
		}
	}
	if len(want) == 0 {
		t.Fatalf("fixture changed: no detections above %v", thresh)
	}
	if len(res.Detections) != len(want) {
		t.Fatalf("%d detections, want %d: %s", len(res.Detections), len(want), stdout)
	}
	for k, w := range want {
		g := res.Detections[k]
		d := 0.0
		for c := range 4 {
			d = max(d, math.Abs(float64(g.Box[c]-w.Box[c])))
		}
		if g.Label != w.Label || g.CategoryID != w.CategoryID || d > 0.5 || math.Abs(float64(g.Score-w.Score)) > 3e-3 {
			t.Errorf("detection %d: %+v, want %+v", k, g, w)
		}
	}
	return len(want)
}

// runCLI runs detect with argv and the lookup, returning stdout, stderr and
// the error.
func runCLI(t *testing.T, lookup func(string) (zoo.Model, error), argv ...string) (string, string, error) {
	t.Helper()
	ios, _, out, errOut := cli.Test()
	cmd := NewCmdDetect(ios, func(o *DetectOptions) error { o.lookup = lookup; return runDetect(o) })
	cmd.SetArgs(argv)
	cmd.SetOut(out)
	cmd.SetErr(errOut)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

// TestDetectDefaultModel runs `detect IMAGE` with no other flag but --json:
// the default model is downloaded into an empty cache (the r50-c4 fixture
// served over HTTP in its place), then read from the cache on the second
// run; its detections above the default threshold 0.5 must be Detectron2's
// (expected.json: label, COCO category id, box within 0.5 px, score within
// 3e-3). --out draws the picture.
func TestDetectDefaultModel(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: downloads and runs a detector")
	}
	lookup, hits := fixtureZoo(t, zoo.DefaultName, "r50-c4", "r50-c4")
	cache := t.TempDir()
	t.Setenv(zoo.EnvCache, cache)
	t.Setenv(zoo.EnvBaseURL, "")
	img := testutil.SharedDir(t, "fixtures", "detectron2", "images", "grace_hopper.jpg")
	exp := d2ExpectedDetections(t, "r50-c4", "grace_hopper.jpg")
	outDir := t.TempDir()
	for run := 1; run <= 2; run++ {
		argv := []string{"--json", img}
		if run == 2 {
			argv = []string{"--json", "--out", outDir, img}
		}
		stdout, stderr, err := runCLI(t, lookup, argv...)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, stderr)
		}
		if hits.Load() != 1 {
			t.Errorf("run %d: %d downloads, want 1 (then the cache)", run, hits.Load())
		}
		checkD2Output(t, stdout, exp, 0.5)
	}
	if _, err := os.Stat(filepath.Join(cache, zoo.DefaultName, "model_final_000000.pkl")); err != nil {
		t.Errorf("model not cached: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outDir, "grace_hopper.jpg")); err != nil {
		t.Errorf("--out: %v", err)
	}
}

// TestDetectFPNModel runs `detect --model d2-r50-fpn-3x --json` with the
// r50-fpn fixture served over HTTP under that name: downloaded once, then
// read from the cache; on two photos (resized to 800x938 and 1333x432, so
// padded to 32 in one and in both dimensions) its detections above the
// default threshold 0.5 must be Detectron2's (expected.json).
func TestDetectFPNModel(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: downloads and runs a detector")
	}
	const name = "d2-r50-fpn-3x"
	if m, err := zoo.Lookup(name); err != nil || m.Arch != "r50-fpn" {
		t.Fatalf("registry: %+v, %v", m, err)
	}
	lookup, hits := fixtureZoo(t, name, "r50-fpn", "r50-fpn")
	cache := t.TempDir()
	t.Setenv(zoo.EnvCache, cache)
	t.Setenv(zoo.EnvBaseURL, "")
	for _, photo := range []string{"grace_hopper.jpg", "wide_crop.png"} {
		img := testutil.SharedDir(t, "fixtures", "detectron2", "images", photo)
		stdout, stderr, err := runCLI(t, lookup, "--model", name, "--json", img)
		if err != nil {
			t.Fatalf("%s: %v\n%s", photo, err, stderr)
		}
		n := checkD2Output(t, stdout, d2ExpectedDetections(t, "r50-fpn", photo), 0.5)
		t.Logf("%s: %d detections above 0.5 as Detectron2's", photo, n)
	}
	if hits.Load() != 1 {
		t.Errorf("%d downloads, want 1 (then the cache)", hits.Load())
	}
	if _, err := os.Stat(filepath.Join(cache, name, "model_final_000000.pkl")); err != nil {
		t.Errorf("model not cached: %v", err)
	}
}

// TestDetectModelNotDetector: --model with an ImageNet backbone is a usage
// error saying so, before any download.
func TestDetectModelNotDetector(t *testing.T) {
	t.Setenv(zoo.EnvCache, t.TempDir())
	t.Setenv(zoo.EnvBaseURL, "http://127.0.0.1:1/mirror")
	_, _, err := runCLI(t, nil, "--model", "d2-r50-imagenet", "a.jpg")
	var ue *cli.UsageError
	if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), "--model d2-r50-imagenet") ||
		!strings.Contains(err.Error(), "not a detector") || strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("err = %v, want a usage error saying d2-r50-imagenet is not a detector, with no download", err)
	}
}

// TestDetectModelOffline: with the server unreachable, the error names the
// URL and the path to put the file at.
func TestDetectModelOffline(t *testing.T) {
	cache := t.TempDir()
	t.Setenv(zoo.EnvCache, cache)
	t.Setenv(zoo.EnvBaseURL, "http://127.0.0.1:1/mirror")
	img := filepath.Join(t.TempDir(), "a.jpg")
	if err := os.WriteFile(img, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := zoo.Default()
	_, _, err := runCLI(t, nil, img)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"http://127.0.0.1:1/mirror/" + m.Path, filepath.Join(cache, m.Name, m.FileName())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// TestDetectSave converts the r50-c4 Detectron2 fixture to a native
// checkpoint with --save (no images), which then loads with the same
// configuration and tensors.
func TestDetectSave(t *testing.T) {
	pkl := testutil.SharedDir(t, "fixtures", "detectron2", "r50-c4", "model_final.pkl")
	out := filepath.Join(t.TempDir(), "r50.safetensors")
	if _, stderr, err := runCLI(t, nil, "--weights", pkl, "--classes", "coco", "--save", out); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	want, err := checkpoint.LoadDetectron2(pkl, "", datasets.COCOClasses(), detection.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	got, err := checkpoint.Load(out, detection.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got.Config.Arch != "r50-c4" || !inference.IsCOCO(got.Config.Classes) || got.Config.Transform.Preprocess != "detectron2" {
		t.Errorf("saved config: %s, %d classes, preprocess %q", got.Config.Arch, len(got.Config.Classes), got.Config.Transform.Preprocess)
	}
	ws, gs := want.State(), got.State()
	if len(ws) != len(gs) {
		t.Fatalf("%d tensors saved, want %d", len(gs), len(ws))
	}
	worst := 0.0
	for n, w := range ws {
		worst = max(worst, testutil.MaxRelErr(gs[n].Data, w.Data))
	}
	if worst > 1e-6 {
		t.Errorf("saved tensors differ: worst relative %g", worst)
	}
}

// TestDetectTorchvisionModel runs torchvision's fasterrcnn_resnet50_fpn
// (calibrated random weights, 91 outputs, from
// checkpoint/testdata/gen_tv_fpn.py) through detect two ways: by name
// (--model tv-r50-fpn, the file served over HTTP, COCO names implied) and
// as --weights FILE --arch tv-r50-fpn --classes coco. Class j must be named
// after COCO id j ("N/A" for the ids without a category, then without a
// category_id), and the detections must be torchvision's (at least 98 %
// matched one to one: same class, every coordinate within 0.5 px, score
// within 3e-3). --coco-results writes every detection but the N/A ones,
// with category_id = class_id.
func TestDetectTorchvisionModel(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: runs ResNet-50 FPN detectors in torch and Go")
	}
	dir := t.TempDir()
	testutil.RunScript(t, "../../checkpoint/testdata/gen_tv_fpn.py", dir, "--arch", "v1")
	var ref struct {
		MinSize int `json:"min_size"`
		MaxSize int `json:"max_size"`
		Images  []struct {
			File   string       `json:"file"`
			Boxes  [][4]float32 `json:"boxes"`
			Scores []float32    `json:"scores"`
			Labels []int        `json:"labels"`
		} `json:"images"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "ref.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	pth := filepath.Join(dir, "model.pth")
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/fixture_tv_fpn.pth" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		http.ServeFile(w, r, pth)
	}))
	defer srv.Close()
	zm := zoo.Model{Name: "tv-r50-fpn", Title: "fixture tv-r50-fpn", Base: srv.URL + "/", Path: "fixture_tv_fpn.pth",
		Format: zoo.FormatTorchvision, Arch: "tv-r50-fpn", Construction: zoo.Torchvision, Dataset: zoo.COCO}
	lookup := func(n string) (zoo.Model, error) {
		if n == zm.Name {
			return zm, nil
		}
		return zoo.Lookup(n)
	}
	t.Setenv(zoo.EnvCache, t.TempDir())
	t.Setenv(zoo.EnvBaseURL, "")
	// A numeric file name: --coco-results takes the image id from it.
	im := ref.Images[0]
	data, err := os.ReadFile(filepath.Join(dir, im.File))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "000000000007"+filepath.Ext(im.File))
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sizes := []string{"--min-size", fmt.Sprint(ref.MinSize), "--max-size", fmt.Sprint(ref.MaxSize), "--score-thresh", "0.05", "--json"}
	results := filepath.Join(dir, "results.json")
	byID := datasets.COCOClassesByID()
	for _, tc := range []struct {
		name string
		argv []string
	}{
		{name: "by name", argv: []string{"--model", "tv-r50-fpn"}},
		{name: "weights", argv: []string{"--weights", pth, "--arch", "tv-r50-fpn", "--classes", "coco", "--coco-results", results}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, lookup, append(append(tc.argv, sizes...), img)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			var res inference.Result
			if err := json.Unmarshal(bytes.TrimSpace([]byte(stdout)), &res); err != nil {
				t.Fatalf("output %q: %v", stdout, err)
			}
			na := 0
			for _, d := range res.Detections {
				wantID := d.ClassID
				if byID[d.ClassID-1] == datasets.COCONoCategory {
					wantID = 0
					na++
				}
				if d.ClassID < 1 || d.ClassID > 90 || d.Label != byID[d.ClassID-1] || d.CategoryID != wantID {
					t.Errorf("class_id %d named %q, category_id %d; want %q, %d", d.ClassID, d.Label, d.CategoryID, byID[d.ClassID-1], wantID)
				}
			}
			used := make([]bool, len(res.Detections))
			matched := 0
			for k, wb := range im.Boxes {
				for j, d := range res.Detections {
					if used[j] || d.ClassID != im.Labels[k] || math.Abs(float64(d.Score-im.Scores[k])) > 3e-3 {
						continue
					}
					dist := 0.0
					for c := range 4 {
						dist = max(dist, math.Abs(float64(d.Box[c]-wb[c])))
					}
					if dist <= 0.5 {
						used[j] = true
						matched++
						break
					}
				}
			}
			total := max(len(im.Boxes), len(res.Detections))
			t.Logf("%d of %d detections matched torchvision's (%d found, %d of them N/A)", matched, len(im.Boxes), len(res.Detections), na)
			if len(im.Boxes) < 10 || float64(matched) < 0.98*float64(total) {
				t.Errorf("%d of %d detections matched (torchvision %d, detect %d), want >= 98 %%", matched, total, len(im.Boxes), len(res.Detections))
			}
			if !slices.Contains(tc.argv, "--coco-results") {
				return
			}
			f, err := os.Open(results)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rs, err := coco.DecodeResults(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != len(res.Detections)-na {
				t.Errorf("--coco-results: %d entries, want %d (all but the %d N/A)", len(rs), len(res.Detections)-na, na)
			}
			ids := datasets.COCOCategoryIDs()
			for i, r := range rs {
				if r.ImageID != 7 || !slices.Contains(ids, int(r.CategoryID)) {
					t.Errorf("--coco-results entry %d: image %d, category %d", i, r.ImageID, r.CategoryID)
				}
			}
		})
	}
	if hits.Load() != 1 {
		t.Errorf("%d downloads, want 1", hits.Load())
	}
}
