package backbone_test

import (
	"fmt"

	G "gorgonia.org/gorgonia"

	"resdet/backbone"
)

// A detection backbone: the C4 trunk feeds the RPN and RoI pooling, conv5_x runs on
// the pooled features.
func ExampleResNet_C4() {
	g := G.NewGraph()
	r, err := backbone.New(g, backbone.Config{Depth: 101, FreezeAt: 2}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("C4:", r.C4Out(), "res5:", r.Res5().Out)
	// Output: C4: {1024 16} res5: {2048 32}
}

// The bottom-up path of an FPN: res2 .. res5 from one pass over the trunk. With DC5
// (Config.Res5Dilation 2) res5 keeps stride 16.
func ExampleResNet_Outputs() {
	for _, cfg := range []backbone.Config{
		{Depth: 50, Inference: true},
		{Depth: 50, Inference: true, StrideIn1x1: true, Res5Dilation: 2},
	} {
		g := G.NewGraph()
		r, err := backbone.New(g, cfg, nil)
		if err != nil {
			panic(err)
		}
		x := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 3, 800, 1216), G.WithName("image"))
		feats, err := r.Outputs(x, "res2", "res3", "res4", "res5")
		if err != nil {
			panic(err)
		}
		for i, f := range feats {
			sep := "; "
			if i == len(feats)-1 {
				sep = "\n"
			}
			fmt.Printf("%s %+v %v%s", f.Name, f.Shape, f.Node.Shape(), sep)
		}
	}
	// Output:
	// res2 {Channels:256 Stride:4} (1, 256, 200, 304); res3 {Channels:512 Stride:8} (1, 512, 100, 152); res4 {Channels:1024 Stride:16} (1, 1024, 50, 76); res5 {Channels:2048 Stride:32} (1, 2048, 25, 38)
	// res2 {Channels:256 Stride:4} (1, 256, 200, 304); res3 {Channels:512 Stride:8} (1, 512, 100, 152); res4 {Channels:1024 Stride:16} (1, 1024, 50, 76); res5 {Channels:2048 Stride:16} (1, 2048, 50, 76)
}
