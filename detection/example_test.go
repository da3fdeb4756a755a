package detection_test

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/box"
	"resdet/detection"
)

func ExampleAnchorGenerator_CellAnchors() {
	g := detection.DefaultAnchorGenerator()
	for _, a := range g.CellAnchors()[:3] {
		fmt.Println(a)
	}
	// Output:
	// {-91 -45 91 45}
	// {-181 -91 181 91}
	// {-362 -181 362 181}
}

func ExampleRoIAlign() {
	g := G.NewGraph()
	// One image, one channel, a 4x4 map holding 0..15 (row-major).
	data := make([]float32, 16)
	for i := range data {
		data[i] = float32(i)
	}
	feat := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 1, 4, 4), G.WithName("feat"),
		G.WithValue(tensor.New(tensor.WithShape(1, 1, 4, 4), tensor.WithBacking(data))))
	// The RoI covers image pixels [0, 32) x [0, 32) at stride 16: feature
	// cells [0, 2) x [0, 2).
	rois := G.NewConstant(detection.RoITensor(detection.RoIs(nil, []box.Box{{X1: 0, Y1: 0, X2: 32, Y2: 32}}, 0)))
	out, err := detection.RoIAlign(feat, rois, detection.RoIAlignOpts{OutH: 2, OutW: 2, SpatialScale: 1.0 / 16, SamplingRatio: 1})
	if err != nil {
		panic(err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		panic(err)
	}
	// Bin (i, j) samples the point (i+0.5, j+0.5): the mean of 4 cells.
	fmt.Println(out.Shape(), out.Value().Data())
	// Output: (1, 1, 2, 2) [2.5 3.5 6.5 7.5]
}
