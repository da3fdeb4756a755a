package synth

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkGenerate writes a default dataset of 50 images per op (the demo
// writes 200); report ns/op / 50 as the time per image.
func BenchmarkGenerate(b *testing.B) {
	c := DefaultConfig()
	c.Images = 50
	c.Overwrite = true
	dir := b.TempDir()
	for i := 0; i < b.N; i++ {
		if _, err := Generate(dir, c, rand.New(rand.NewPCG(uint64(i), 0)), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDrawImage paints one default-size image (no encoding, no I/O).
func BenchmarkDrawImage(b *testing.B) {
	c := DefaultConfig()
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < b.N; i++ {
		drawImage(c, rng)
	}
}
