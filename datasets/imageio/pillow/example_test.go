package pillow_test

import (
	"fmt"

	"resdet/datasets/imageio/pillow"
)

func ExampleResizeBilinear() {
	// A 4x1 grey ramp halved: shrinking widens the triangle filter to two
	// input pixels on each side (Pillow's antialiasing), so output 0,
	// centred at x = 1.0, weighs inputs 0, 1, 2 by 3:3:1 (71.4 -> 71).
	out := pillow.ResizeBilinear([]uint8{0, 100, 200, 255}, 4, 1, 1, 2, 1)
	fmt.Println(out)
	// Doubled: each output is a 3:1 mix of its two nearest inputs, edges
	// clamped.
	fmt.Println(pillow.ResizeBilinear([]uint8{0, 100}, 2, 1, 1, 4, 1))
	// Output:
	// [71 209]
	// [0 25 75 100]
}

func ExampleTranspose() {
	// 3x2 image, one channel; EXIF orientation 6 means "rotate 90 degrees
	// clockwise to display".
	out, w, h := pillow.Transpose([]uint8{1, 2, 3, 4, 5, 6}, 3, 2, 1, 6)
	fmt.Println(w, h, out)
	// Output: 2 3 [4 1 5 2 6 3]
}
