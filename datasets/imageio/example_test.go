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

func ExampleShortestEdgeSize() {
	// Detectron2 rounds where torchvision floors: a 512x600 portrait.
	_, w, h := imageio.ShortestEdgeSize(512, 600, 800, 1333)
	_, tw, th := imageio.ResizeSize(512, 600, 800, 1333)
	fmt.Println(w, h, tw, th)
	// A wide crop, where the 1333 cap decides.
	_, w, h = imageio.ShortestEdgeSize(741, 240, 800, 1333)
	fmt.Println(w, h)
	// Output:
	// 800 938 800 937
	// 1333 432
}

func ExampleDetectron2Transform() {
	tr := imageio.Detectron2Transform()
	// A 451x300 image becomes a [3, 800, 1203] BGR tensor, mean subtracted.
	s, err := tr.Apply(imageio.NewImage(451, 300), nil, false)
	if err != nil {
		panic(err)
	}
	fmt.Println(tr.Preprocess, s.Image.C, s.Image.H, s.Image.W, s.OrigW, s.OrigH)
	fmt.Println(s.Image.At(0, 0, 0), s.Image.At(2, 0, 0)) // a black pixel: -B mean, -R mean
	// Output:
	// detectron2 3 800 1203 451 300
	// -103.53 -123.675
}
