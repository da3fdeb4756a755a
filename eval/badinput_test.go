package eval

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const oneImageGT = `{"images":[{"id":7,"width":100,"height":100}],"categories":[{"id":1,"name":"a"},{"id":2,"name":"b"}],
"annotations":[{"id":1,"image_id":7,"category_id":1,"bbox":[10,10,20,20],"area":400,"iscrowd":0}]}`

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadCOCOResultsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantErr []string // substrings of the error
	}{
		{name: "NaN score", data: `[{"image_id":7,"category_id":1,"bbox":[1,2,3,4],"score":0.5},{"image_id":7,"category_id":1,"bbox":[1,2,3,4],"score":NaN}]`,
			wantErr: []string{"dets.json", "entry 1", "score is NaN"}},
		{name: "infinite score", data: `[{"image_id":7,"category_id":1,"bbox":[1,2,3,4],"score":-Infinity}]`,
			wantErr: []string{"dets.json", "entry 0", "score is -Inf"}},
		{name: "overflowing score", data: `[{"image_id":7,"category_id":1,"bbox":[1,2,3,4],"score":1e400}]`,
			wantErr: []string{"entry 0", "score is +Inf"}},
		{name: "negative width", data: `[{"image_id":7,"category_id":1,"bbox":[1,2,-3,4],"score":0.5}]`,
			wantErr: []string{"dets.json", "entry 0", "width -3 is negative"}},
		{name: "negative height", data: `[{"image_id":7,"category_id":1,"bbox":[1,2,3,-0.5],"score":0.5}]`,
			wantErr: []string{"entry 0", "height -0.5 is negative"}},
		{name: "NaN coordinate", data: `[{"image_id":7,"category_id":1,"bbox":[NaN,2,3,4],"score":0.5}]`,
			wantErr: []string{"entry 0", "bbox[0] is NaN"}},
		{name: "short bbox", data: `[{"image_id":7,"category_id":1,"bbox":[1,2,3],"score":0.5}]`,
			wantErr: []string{"entry 0", "bbox has 3 numbers"}},
		{name: "missing score", data: `[{"image_id":7,"category_id":1,"bbox":[1,2,3,4]}]`,
			wantErr: []string{"entry 0", "missing score"}},
		{name: "string id", data: `[{"image_id":"7","category_id":1,"bbox":[1,2,3,4],"score":1}]`,
			wantErr: []string{"entry 0", "image_id", "expected a number"}},
		{name: "fractional id", data: `[{"image_id":7.5,"category_id":1,"bbox":[1,2,3,4],"score":1}]`,
			wantErr: []string{"entry 0", "image_id", "not an integer"}},
		{name: "truncated", data: `[{"image_id":7,"category_id":1,"bbox":[1,2,3,4],"score":1},{"image_id":7`,
			wantErr: []string{"dets.json", "entry 1"}},
		{name: "missing comma", data: `[{"image_id":7,"category_id":1,"bbox":[1,2,3,4],"score":1} {"image_id":7}]`,
			wantErr: []string{"dets.json", "expected ',' or ']'"}},
		{name: "not a list", data: `{"image_id":7}`, wantErr: []string{"dets.json", "expected '['"}},
		{name: "trailing garbage", data: `[] x`, wantErr: []string{"dets.json", "after the top-level value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadCOCOResults(writeTemp(t, "dets.json", tt.data))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestReadCOCOGroundTruthBadInput(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantErr []string
	}{
		{name: "negative width", data: `{"images":[{"id":1}],"categories":[{"id":1}],"annotations":[{"id":5,"image_id":1,"category_id":1,"bbox":[0,0,-1,2]}]}`,
			wantErr: []string{"gt.json", "annotations[0]", "id 5", "width -1 is negative"}},
		{name: "missing id", data: `{"images":[{"id":1}],"categories":[{"id":1}],"annotations":[{"image_id":1,"category_id":1,"bbox":[0,0,1,2]}]}`,
			wantErr: []string{"gt.json", "annotations[0]", "missing id"}},
		{name: "NaN area", data: `{"images":[{"id":1}],"categories":[{"id":1}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1,2],"area":NaN}]}`,
			wantErr: []string{"annotations[0]", "area is NaN"}},
		{name: "image without id", data: `{"images":[{"width":3}],"categories":[],"annotations":[]}`,
			wantErr: []string{"gt.json", "images[0]", "missing id"}},
		{name: "no categories", data: `{"images":[],"annotations":[]}`, wantErr: []string{"gt.json", `missing "categories"`}},
		{name: "a results list", data: `[]`, wantErr: []string{"gt.json", "expected '{'"}},
		{name: "unterminated string", data: `{"images":[{"id":1,"file_name":"a`, wantErr: []string{"gt.json", "images[0]", "unterminated string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadCOCOGroundTruth(writeTemp(t, "gt.json", tt.data))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestEvaluateCOCOInputRules(t *testing.T) {
	gt, err := ParseCOCOGroundTruth([]byte(oneImageGT))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("unknown image id", func(t *testing.T) {
		dets, _ := ParseCOCOResults([]byte(`[{"image_id":7,"category_id":1,"bbox":[10,10,20,20],"score":0.9},{"image_id":8,"category_id":1,"bbox":[1,2,3,4],"score":0.5}]`))
		_, err := EvaluateCOCO(gt, dets)
		if err == nil || !strings.Contains(err.Error(), "image id 8") || !strings.Contains(err.Error(), "entry 1") {
			t.Fatalf("error %v, want one naming image id 8 and entry 1", err)
		}
	})
	t.Run("unknown categories dropped and counted", func(t *testing.T) {
		dets, _ := ParseCOCOResults([]byte(`[{"image_id":7,"category_id":3,"bbox":[10,10,20,20],"score":0.99},
			{"image_id":7,"category_id":1,"bbox":[10,10,20,20],"score":0.9},{"image_id":7,"category_id":90,"bbox":[1,2,3,4],"score":0.5}]`))
		r, err := EvaluateCOCO(gt, dets)
		if err != nil {
			t.Fatal(err)
		}
		if r.DroppedDets != 2 || r.NumDets != 1 {
			t.Errorf("dropped %d, kept %d; want 2, 1", r.DroppedDets, r.NumDets)
		}
		if r.Stats.Values[0] != 0.9999999999999998 && r.Stats.Values[0] != 1 {
			t.Errorf("AP = %v, want the perfect score", r.Stats.Values[0])
		}
		var out strings.Builder
		if err := r.WriteText(&out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "dropped 2 detections of categories not in the ground truth") {
			t.Errorf("text output does not report the dropped detections:\n%s", out.String())
		}
	})
	t.Run("empty results", func(t *testing.T) {
		dets, err := ParseCOCOResults([]byte(" [ ] "))
		if err != nil {
			t.Fatal(err)
		}
		r, err := EvaluateCOCO(gt, dets)
		if err != nil {
			t.Fatal(err)
		}
		// Category 1 has a small GT: AP, AP50, AP75, APs and the AR entries
		// with small/all areas are 0, the medium/large ones -1.
		want := [12]float64{0, 0, 0, 0, -1, -1, 0, 0, 0, 0, -1, -1}
		if r.Stats.Values != want {
			t.Errorf("stats %v, want %v", r.Stats.Values, want)
		}
		if c := r.PerCategory[1]; c.AP != -1 || c.AR100 != -1 {
			t.Errorf("category without GT: %+v, want -1", c)
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
