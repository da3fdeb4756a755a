package eval

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// fixtureDirs returns the fixture cases of one kind ("coco" or "voc"),
// copied from the shared detection-eval fixtures (see testdata/detection-eval/README.md).
func fixtureDirs(t *testing.T, prefix string) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("testdata", "detection-eval", prefix+"_*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no %s fixtures: %v", prefix, err)
	}
	return dirs
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type cocoExpected struct {
	Kind        string    `json:"kind"`
	Stats       []float64 `json:"stats"`
	PerCategory []struct {
		CategoryID int64   `json:"category_id"`
		AP         float64 `json:"ap"`
		AP50       float64 `json:"ap50"`
		AP75       float64 `json:"ap75"`
		AR100      float64 `json:"ar100"`
	} `json:"per_category"`
}

const tol = 1e-9

func close(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= tol
}

func TestCOCOFixtures(t *testing.T) {
	for _, dir := range fixtureDirs(t, "coco") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var want cocoExpected
			readJSON(t, filepath.Join(dir, "expected.json"), &want)
			if want.Kind != "coco-bbox" {
				t.Fatalf("kind %q", want.Kind)
			}
			gt, err := ReadCOCOGroundTruth(filepath.Join(dir, "gt.json"))
			if err != nil {
				t.Fatal(err)
			}
			dets, err := ReadCOCOResults(filepath.Join(dir, "dets.json"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := EvaluateCOCO(gt, dets)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range want.Stats {
				if !close(r.Stats.Values[i], v) {
					t.Errorf("%s = %.17g, want %.17g", StatNames[i], r.Stats.Values[i], v)
				}
			}
			if len(r.PerCategory) != len(want.PerCategory) {
				t.Fatalf("%d categories, want %d", len(r.PerCategory), len(want.PerCategory))
			}
			for k, w := range want.PerCategory {
				g := r.PerCategory[k]
				if g.ID != w.CategoryID {
					t.Fatalf("category %d: id %d, want %d", k, g.ID, w.CategoryID)
				}
				for _, f := range []struct {
					name      string
					got, want float64
				}{{"ap", g.AP, w.AP}, {"ap50", g.AP50, w.AP50}, {"ap75", g.AP75, w.AP75}, {"ar100", g.AR100, w.AR100}} {
					if !close(f.got, f.want) {
						t.Errorf("category %d %s = %.17g, want %.17g", g.ID, f.name, f.got, f.want)
					}
				}
			}
		})
	}
}

func TestThresholds(t *testing.T) {
	iou := IoUThresholds()
	wantIoU := []float64{0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95}
	for i := range wantIoU {
		if iou[i] != wantIoU[i] {
			t.Errorf("IoU threshold %d = %.17g, want %.17g", i, iou[i], wantIoU[i])
		}
	}
	rec := RecallThresholds()
	ulpAbove := map[int]float64{35: 0.35000000000000003, 41: 0.41000000000000003, 47: 0.47000000000000003,
		57: 0.5700000000000001, 69: 0.6900000000000001, 70: 0.7000000000000001, 82: 0.8200000000000001,
		83: 0.8300000000000001, 94: 0.9400000000000001, 95: 0.9500000000000001}
	if len(rec) != 101 || rec[100] != 1 {
		t.Fatalf("recall thresholds: %d, last %v", len(rec), rec[len(rec)-1])
	}
	for i, v := range rec {
		if w, ok := ulpAbove[i]; ok {
			if v != w {
				t.Errorf("recall threshold %d = %.17g, want %.17g", i, v, w)
			}
			continue
		}
		if v != float64(i)/100 {
			t.Errorf("recall threshold %d = %.17g, want %v", i, v, float64(i)/100)
		}
	}
}
