package eval

import (
	"math/rand/v2"
	"sync"
	"testing"

	"resdet/eval/evaltest"
)

var val2017 = sync.OnceValues(func() ([]byte, []byte) {
	return evaltest.COCO(rand.New(rand.NewPCG(2017, 1)), evaltest.Val2017())
})

// BenchmarkParseCOCOResults parses a 500k-detection results list (~54 MB).
func BenchmarkParseCOCOResults(b *testing.B) {
	_, dets := val2017()
	b.SetBytes(int64(len(dets)))
	for b.Loop() {
		if _, err := ParseCOCOResults(dets); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvaluateCOCO evaluates the COCO-val2017-sized case (5000 images,
// 80 categories, ~36k GT, 500k detections), already parsed.
func BenchmarkEvaluateCOCO(b *testing.B) {
	gtData, detData := val2017()
	gt, err := ParseCOCOGroundTruth(gtData)
	if err != nil {
		b.Fatal(err)
	}
	dets, err := ParseCOCOResults(detData)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := EvaluateCOCO(gt, dets); err != nil {
			b.Fatal(err)
		}
	}
}
