package pillow

import "testing"

// BenchmarkResizeBilinear: a 640x480 RGB image to 1067x800, Detectron2's
// size for it.
func BenchmarkResizeBilinear(b *testing.B) {
	pix := make([]uint8, 640*480*3)
	for i := range pix {
		pix[i] = uint8(i*7 + i/1920*13)
	}
	b.ResetTimer()
	for range b.N {
		ResizeBilinear(pix, 640, 480, 3, 1067, 800)
	}
}
