package detection

import (
	"math/rand"
	"testing"

	"resdet/box"
)

// vocTargetScene is a VOC-sized training image: 600x1000 input, C4 stride 16
// (38x63 cells, 15 anchors each: 35910 anchors), 4 ground-truth boxes and
// 2000 proposals.
func vocTargetScene() (anchors, gt, proposals []box.Box, labels []int, img Size) {
	r := rand.New(rand.NewSource(1))
	img = Size{W: 1000, H: 600}
	g := AnchorGenerator{Sizes: []float32{32, 64, 128, 256, 512}, AspectRatios: []float32{0.5, 1, 2}}
	anchors = g.Anchors(38, 63, 16, 16)
	for range 4 {
		x, y := r.Float32()*700, r.Float32()*400
		gt = append(gt, box.Box{X1: x, Y1: y, X2: x + 40 + r.Float32()*260, Y2: y + 40 + r.Float32()*160})
		labels = append(labels, 1+r.Intn(20))
	}
	for range 2000 {
		x, y := r.Float32()*900, r.Float32()*500
		proposals = append(proposals, box.Box{X1: x, Y1: y, X2: x + 5 + r.Float32()*300, Y2: y + 5 + r.Float32()*200})
	}
	return anchors, gt, proposals, labels, img
}

func BenchmarkSampleRPNBatch(b *testing.B) {
	anchors, gt, _, _, img := vocTargetScene()
	cfg := DefaultRPNConfig()
	r := rand.New(rand.NewSource(2))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cfg.SampleRPNBatch(anchors, [][]box.Box{gt}, []Size{img}, TargetOptions{}, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSelectTrainingSamples(b *testing.B) {
	_, gt, proposals, labels, _ := vocTargetScene()
	cfg := DefaultRoIHeadsConfig()
	r := rand.New(rand.NewSource(2))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cfg.SelectTrainingSamples([][]box.Box{proposals}, [][]box.Box{gt}, [][]int{labels}, TargetOptions{}, r); err != nil {
			b.Fatal(err)
		}
	}
}
