package eval

import (
	"slices"
	"testing"
)

// FuzzParseCOCOResults: the results parser never panics, and the chunked
// parallel parser either declines or agrees with the sequential one.
func FuzzParseCOCOResults(f *testing.F) {
	f.Add([]byte(`[{"image_id":1,"category_id":1,"bbox":[1,2,3,4],"score":0.5},{"image_id":2,"category_id":3,"bbox":[1e2,2.5,3,4],"score":-1}]`))
	f.Add([]byte(`[{"image_id":1,"x":{"a":"},{"},"category_id":1,"bbox":[1,2,3,4],"score":NaN}, {}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		seq, err := ParseCOCOResults(data) // below 1 MiB: sequential
		for _, n := range []int{2, 3} {
			par, ok := parseResultsParallel(data, n)
			if !ok {
				continue
			}
			if err != nil {
				t.Fatalf("parallel parse accepted what the sequential one rejects: %v", err)
			}
			if !slices.Equal(par, seq) {
				t.Fatalf("parallel (%d chunks) and sequential parses differ", n)
			}
		}
	})
}

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
