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
