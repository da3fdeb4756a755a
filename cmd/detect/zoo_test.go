package main

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"resdet/checkpoint"
	"resdet/datasets"
	"resdet/detection"
	"resdet/inference"
	"resdet/internal/cli"
	"resdet/internal/testutil"
	"resdet/zoo"
)

// fixtureZoo serves the r50-c4 Detectron2 fixture (a zoo-format file) over
// HTTP under the default model's name and returns a lookup that finds it
// there, and the number of requests the server answered.
func fixtureZoo(t *testing.T) (func(string) (zoo.Model, error), *atomic.Int32) {
	t.Helper()
	pkl := testutil.SharedDir(t, "fixtures", "detectron2", "r50-c4", "model_final.pkl")
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/COCO-Detection/fixture_R_50_C4/1/model_final_000000.pkl" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		http.ServeFile(w, r, pkl)
	}))
	t.Cleanup(srv.Close)
	m := zoo.Model{Name: zoo.DefaultName, Title: "fixture r50-c4", Base: srv.URL + "/",
		Path: "COCO-Detection/fixture_R_50_C4/1/model_final_000000.pkl", Format: zoo.FormatDetectron2,
		Arch: "r50-c4", Construction: zoo.Detectron2, Dataset: zoo.COCO}
	lookup := func(name string) (zoo.Model, error) {
		if name == m.Name {
			return m, nil
		}
		return zoo.Lookup(name)
	}
	return lookup, &hits
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
	lookup, hits := fixtureZoo(t)
	cache := t.TempDir()
	t.Setenv(zoo.EnvCache, cache)
	t.Setenv(zoo.EnvBaseURL, "")
	img := testutil.SharedDir(t, "fixtures", "detectron2", "images", "grace_hopper.jpg")
	raw, err := os.ReadFile(testutil.SharedDir(t, "fixtures", "detectron2", "r50-c4", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Images []struct {
			Source     string `json:"source"`
			Detections []struct {
				Box        [4]float32 `json:"box"`
				Score      float32    `json:"score"`
				CategoryID int        `json:"category_id"`
				Label      string     `json:"label"`
			} `json:"detections"`
		} `json:"images"`
	}
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
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
		var res inference.Result
		if err := json.Unmarshal(bytes.TrimSpace([]byte(stdout)), &res); err != nil {
			t.Fatalf("run %d: output %q: %v", run, stdout, err)
		}
		var want []int
		for i, d := range exp.Images[0].Detections {
			if d.Score > 0.5 {
				want = append(want, i)
			}
		}
		if exp.Images[0].Source != "grace_hopper.jpg" || len(want) == 0 {
			t.Fatalf("fixture changed: %s with %d detections above 0.5", exp.Images[0].Source, len(want))
		}
		if len(res.Detections) != len(want) {
			t.Fatalf("run %d: %d detections, want %d: %s", run, len(res.Detections), len(want), stdout)
		}
		for k, i := range want {
			g, w := res.Detections[k], exp.Images[0].Detections[i]
			d := 0.0
			for c := range 4 {
				d = max(d, math.Abs(float64(g.Box[c]-w.Box[c])))
			}
			if g.Label != w.Label || g.CategoryID != w.CategoryID || d > 0.5 || math.Abs(float64(g.Score-w.Score)) > 3e-3 {
				t.Errorf("detection %d: %+v, want %+v", k, g, w)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(cache, zoo.DefaultName, "model_final_000000.pkl")); err != nil {
		t.Errorf("model not cached: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outDir, "grace_hopper.jpg")); err != nil {
		t.Errorf("--out: %v", err)
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
