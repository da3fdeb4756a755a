// Package inferencetest makes what tests of inference's callers (detect,
// detect batch) run a detector on: a tiny random-weight detector checkpoint
// and random images. Imported only by _test.go files.
package inferencetest

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"resdet/checkpoint"
	"resdet/detection"
)

// TinyDetector writes a small random-weight ResNet-18 C4 detector with
// classes cat and dog (images resized to 64 px on the shorter side, 96 at
// most; anchors 16..64 px) to dir/model.safetensors and returns its path.
// The same call writes the same weights.
func TinyDetector(t testing.TB, dir string) string {
	t.Helper()
	cfg := detection.DefaultConfig("r18-c4", []string{"cat", "dog"})
	cfg.Transform.MinSize, cfg.Transform.MaxSize = 64, 96
	cfg.RPN.Anchors.Sizes = []float32{16, 32, 64} // more proposals on small images
	cfg.RPN.PostNMSTopNTest = 40
	m, err := detection.New(cfg, detection.Options{Rng: rand.New(rand.NewSource(1))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Spread the class logits so that scores differ.
	st := m.State()
	w := st["roi_heads.box_predictor.cls_score.weight"]
	for i := range w.Data {
		w.Data[i] *= 3
	}
	if err := m.Load(st); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "model.safetensors")
	if err := checkpoint.Save(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteImage writes a random w x h RGB image (pixels from seed) as PNG or,
// for any other extension, JPEG (quality 90).
func WriteImage(t testing.TB, path string, w, h int, seed int64) {
	t.Helper()
	r := rand.New(rand.NewSource(seed))
	im := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			im.Set(x, y, color.RGBA{uint8(r.Intn(256)), uint8(x * 255 / w), uint8(y * 255 / h), 255})
		}
	}
	var buf bytes.Buffer
	var err error
	if strings.HasSuffix(path, ".png") {
		err = png.Encode(&buf, im)
	} else {
		err = jpeg.Encode(&buf, im, &jpeg.Options{Quality: 90})
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
