package inference

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"resdet/datasets"
	"resdet/format/coco"
)

// TestCOCOResultsByID writes --coco-results for torchvision's 90 COCO classes
// (class j is COCO id j, datasets.COCOClassesByID): without --coco-gt the
// category ids are the class ids, with it the ids of its categories of the
// same names; either way a detection of an N/A class (id 12) is left out.
func TestCOCOResultsByID(t *testing.T) {
	dir := t.TempDir()
	// An instances file with COCO's 80 categories and one image.
	var cats []map[string]any
	for i, id := range datasets.COCOCategoryIDs() {
		cats = append(cats, map[string]any{"id": id, "name": datasets.COCOClasses()[i]})
	}
	doc := map[string]any{"info": map[string]any{}, "categories": cats, "annotations": []any{},
		"images": []any{map[string]any{"id": 31, "file_name": "photo.jpg", "width": 64, "height": 48}}}
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	gt := filepath.Join(dir, "gt.json")
	if err := os.WriteFile(gt, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	classes := datasets.COCOClassesByID()
	res := Result{Detections: []Detection{
		{ClassID: 1, Score: 0.9, Box: [4]float32{1, 2, 11, 22}},
		{ClassID: 12, Score: 0.8, Box: [4]float32{3, 4, 13, 24}}, // N/A
		{ClassID: 90, Score: 0.7, Box: [4]float32{5, 6, 15, 26}},
	}}
	for _, tc := range []struct {
		name, gt, image string
		wantImage       int64
	}{
		{name: "ids from the classes", image: "000000000005.jpg", wantImage: 5},
		{name: "ids from --coco-gt", gt: gt, image: "photo.jpg", wantImage: 31},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCOCOResults(tc.gt, classes)
			if err != nil {
				t.Fatal(err)
			}
			r := res
			r.Image = filepath.Join("in", tc.image)
			if err := c.Add(r); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "res.json")
			if err := c.Write(out); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rs, err := coco.DecodeResults(f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, r := range rs {
				ids = append(ids, r.CategoryID)
				if r.ImageID != tc.wantImage {
					t.Errorf("image id %d, want %d", r.ImageID, tc.wantImage)
				}
			}
			if !slices.Equal(ids, []int64{1, 90}) {
				t.Errorf("category ids %v, want [1 90] (the N/A class 12 left out)", ids)
			}
		})
	}
}
