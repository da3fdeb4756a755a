package imageio

import (
	"bytes"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"resdet/box"
)

// benchJPEG writes a 500x375 JPEG (the typical PASCAL VOC size).
func benchJPEG(b *testing.B) string {
	b.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, pattern(500, 375).ToRGBA(), &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "voc.jpg")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkLoad: read a 500x375 JPEG, flip, normalise, resize to 800x600.
func BenchmarkLoad(b *testing.B) {
	path := benchJPEG(b)
	tr := DefaultTransform()
	boxes := []box.Box{{X1: 10, Y1: 10, X2: 200, Y2: 300}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tr.Load(path, boxes, i%2 == 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead: decode only.
func BenchmarkRead(b *testing.B) {
	path := benchJPEG(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Read(path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTransform: flip, normalise and resize a decoded 500x375 image.
func BenchmarkTransform(b *testing.B) {
	im := pattern(500, 375)
	tr := DefaultTransform()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tr.Apply(im, nil, i%2 == 0); err != nil {
			b.Fatal(err)
		}
	}
}
