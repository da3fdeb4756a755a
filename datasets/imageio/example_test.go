package imageio_test

import (
	"fmt"

	"resdet/box"
	"resdet/datasets/imageio"
)

func ExampleResizeSize() {
	// A typical PASCAL VOC image with the Faster R-CNN sizes: the shorter
	// side becomes 600 and the longer stays under 1000.
	scale, w, h := imageio.ResizeSize(500, 375, 600, 1000)
	fmt.Println(scale, w, h)
	// The cap on the longer side wins for a panorama.
	scale, w, h = imageio.ResizeSize(2000, 400, 600, 1000)
	fmt.Println(scale, w, h)
	// Output:
	// 1.6 800 600
	// 0.5 1000 200
}

func ExampleFlipBoxes() {
	fmt.Println(imageio.FlipBoxes([]box.Box{{X1: 10, Y1: 5, X2: 30, Y2: 25}}, 100))
	// Output: [{70 5 90 25}]
}
