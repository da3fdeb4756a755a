package detection

import (
	"math/rand"
	"testing"

	"resdet/box"
)

// BenchmarkFilterProposals: one 600x1000 image, a 38x63 C4 map with 9
// anchors per cell (21546 anchors), test settings (1000 -> NMS -> 300).
func BenchmarkFilterProposals(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	c := DefaultRPNConfig()
	c.PostNMSTopNTest = 300
	anchors := c.Anchors.Anchors(38, 63, 16, 16)
	logits := make([]float32, len(anchors))
	deltas := make([]box.Delta, len(anchors))
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 2)
		for j := range deltas[i] {
			deltas[i][j] = float32(r.NormFloat64() * 0.3)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.FilterProposals(anchors, logits, deltas, Size{W: 1000, H: 600}, false)
	}
}

// BenchmarkPostprocessDetections: 300 proposals, 21 classes (VOC).
func BenchmarkPostprocessDetections(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	const k, nc = 300, 21
	props := make([]box.Box, k)
	for i := range props {
		x, y := r.Float32()*800, r.Float32()*500
		props[i] = box.Box{X1: x, Y1: y, X2: x + 20 + r.Float32()*200, Y2: y + 20 + r.Float32()*100}
	}
	logits := make([]float32, k*nc)
	reg := make([]float32, 4*k*nc)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 4)
	}
	for i := range reg {
		reg[i] = float32(r.NormFloat64())
	}
	c := DefaultRoIHeadsConfig()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.PostprocessDetections(logits, reg, props, nc, Size{W: 1000, H: 600})
	}
}
