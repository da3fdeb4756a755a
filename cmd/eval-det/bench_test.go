package main

import (
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"resdet/eval/evaltest"
	"resdet/internal/cli"
)

// BenchmarkEvalDetCOCOVal2017 times the whole eval-det COCO run (reading
// both JSON files, evaluating, printing) on a case the size of COCO val2017:
// 5000 images, 80 categories, ~36k GT (with segmentation polygons to skip),
// 100 detections per image = 500k. Target: < 2.5 s on 2 cores
// (pycocotools: 44.6 s + 4.0 s loading). scripts/bench-eval.sh reports the
// wall time and peak memory of the real binary.
func BenchmarkEvalDetCOCOVal2017(b *testing.B) {
	dir := b.TempDir()
	gt, dets := evaltest.COCO(rand.New(rand.NewPCG(2017, 1)), evaltest.Val2017())
	gtPath, detsPath := filepath.Join(dir, "gt.json"), filepath.Join(dir, "dets.json")
	if err := os.WriteFile(gtPath, gt, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(detsPath, dets, 0o644); err != nil {
		b.Fatal(err)
	}
	ios := &cli.IOStreams{Out: io.Discard, ErrOut: io.Discard}
	b.ResetTimer()
	for b.Loop() {
		if err := runEvalDet(&EvalOptions{IO: ios, GT: gtPath, Dets: detsPath, Split: "test"}); err != nil {
			b.Fatal(err)
		}
	}
}
