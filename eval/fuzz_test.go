package eval

import (
	"testing"
)

// FuzzParseCOCOGroundTruth: the instances parser never panics and what it
// accepts evaluates without panicking.
func FuzzParseCOCOGroundTruth(f *testing.F) {
	f.Add([]byte(oneImageGT))
	f.Add([]byte(`{"images":[{"id":1}],"categories":[{"id":1}],"annotations":[{"id":0,"image_id":1,"category_id":1,"bbox":[0,0,0,0],"iscrowd":true}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		gt, err := ParseCOCOGroundTruth(data)
		if err != nil {
			return
		}
		images := map[int64]bool{}
		for _, im := range gt.Images {
			images[im.ID] = true
		}
		var dets []Annotation
		for i, a := range gt.Annotations {
			if images[a.ImageID] {
				a.ID, a.Score, a.Crowd = int64(i+1), float64(i%3), false
				dets = append(dets, a)
			}
		}
		if _, err := EvaluateCOCO(gt, dets); err != nil {
			t.Fatalf("evaluating the GT against itself: %v", err)
		}
	})
}
