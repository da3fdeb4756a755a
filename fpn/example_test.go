package fpn_test

import (
	"fmt"

	G "gorgonia.org/gorgonia"

	"resdet/backbone"
	"resdet/fpn"
)

// The neck of torchvision's fasterrcnn_resnet50_fpn: ResNet-50's C2..C5 in,
// P2..P6 out.
func ExampleFPN_OutputShapes() {
	f, err := fpn.New(G.NewGraph(), fpn.Config{In: []backbone.ShapeSpec{
		{Channels: 256, Stride: 4}, {Channels: 512, Stride: 8}, {Channels: 1024, Stride: 16}, {Channels: 2048, Stride: 32},
	}}, nil)
	if err != nil {
		panic(err)
	}
	for i, s := range f.OutputShapes() {
		fmt.Printf("%s: %d channels, stride %d\n", f.OutputNames()[i], s.Channels, s.Stride)
	}
	fmt.Println(len(f.State()), "tensors,", len(f.Learnables()), "learnable")
	// Output:
	// 0: 256 channels, stride 4
	// 1: 256 channels, stride 8
	// 2: 256 channels, stride 16
	// 3: 256 channels, stride 32
	// pool: 256 channels, stride 64
	// 16 tensors, 16 learnable
}
