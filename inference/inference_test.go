package inference

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"resdet/datasets"
)

func TestCheckSize(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 400, 300))); err != nil {
		t.Fatal(err)
	}
	img := write("a.png", buf.Bytes())
	for _, tt := range []struct {
		name, path string
		maxMP      float64
		wantErr    string
	}{
		{"fits", img, 0.12, ""},
		{"too large", img, 0.1, "image is 400x300 (0.1 megapixels), above the --max-pixels cap of 0.1"},
		{"empty", write("e.jpg", nil), 50, "empty file"},
		{"not an image: left to the decoder", write("t.jpg", []byte("text")), 50, ""},
		{"missing", filepath.Join(dir, "nope.jpg"), 50, "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSize(tt.path, tt.maxMP)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestCOCOResults(t *testing.T) {
	dir := t.TempDir()
	gt := filepath.Join(dir, "gt.json")
	if err := datasets.WriteCOCO(gt, &datasets.Set{Classes: []string{"dog", "cat"}, CategoryIDs: []int{18, 17},
		Records: []datasets.Record{{ID: 9, Name: "x/a.jpg", Width: 10, Height: 10}}}); err != nil {
		t.Fatal(err)
	}
	res := Result{Image: "in/a.jpg", Width: 10, Height: 10, Detections: []Detection{
		{Label: "cat", ClassID: 1, Score: 0.9, Box: [4]float32{1, 2, 5, 6}},
		{Label: "dog", ClassID: 2, Score: 0.8, Box: [4]float32{0, 0, 3, 3}}}}
	tests := []struct {
		name    string
		gt      string
		classes []string
		image   string
		wantErr string
		want    string // the results file
	}{
		{name: "ids from the ground truth", gt: gt, classes: []string{"cat", "dog"}, image: "in/a.jpg",
			want: `[{"image_id":9,"category_id":17,"bbox":[1,2,4,4],"score":0.9},{"image_id":9,"category_id":18,"bbox":[0,0,3,3],"score":0.8}]`},
		{name: "not in the ground truth", gt: gt, classes: []string{"cat", "dog"}, image: "in/b.jpg", wantErr: `--coco-gt has no image with file_name "b.jpg"`},
		{name: "ids from file names", classes: []string{"cat", "dog"}, image: "in/000042.jpg",
			want: `[{"image_id":42,"category_id":1,"bbox":[1,2,4,4],"score":0.9},{"image_id":42,"category_id":2,"bbox":[0,0,3,3],"score":0.8}]`},
		{name: "file name not a number", classes: []string{"cat", "dog"}, image: "in/a.jpg", wantErr: "needs numeric file names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCOCOResults(tt.gt, tt.classes)
			if err != nil {
				t.Fatal(err)
			}
			r := res
			r.Image = tt.image
			err = c.Add(r)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "r.json")
			if err := c.Write(out); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(strings.Fields(string(b)), ""); got != tt.want {
				t.Errorf("results\n got %s\nwant %s", got, tt.want)
			}
		})
	}
	if _, err := NewCOCOResults(gt, []string{"cat", "bird"}); err == nil || !strings.Contains(err.Error(), `class "bird" (class_id 2) is not one of its categories`) {
		t.Errorf("unknown class: %v", err)
	}
}

func TestClassNames(t *testing.T) {
	if n, err := ClassNames("voc"); err != nil || len(n) != 20 || n[0] != "aeroplane" {
		t.Errorf("voc: %v %v", n, err)
	}
	if n, err := ClassNames("coco"); err != nil || len(n) != 80 || !IsCOCO(n) {
		t.Errorf("coco: %d names, %v", len(n), err)
	}
	if IsCOCO([]string{"cat"}) {
		t.Error("IsCOCO([cat])")
	}
	if _, err := ClassNames(filepath.Join(t.TempDir(), "none.txt")); err == nil || !strings.HasPrefix(err.Error(), "--classes: ") {
		t.Errorf("missing file: %v", err)
	}
}
