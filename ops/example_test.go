package ops_test

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/ops"
)

func ExampleRoIAlign() {
	g := G.NewGraph()
	// One image, one channel, a 4x4 map holding 0..15 (row-major).
	data := make([]float32, 16)
	for i := range data {
		data[i] = float32(i)
	}
	feat := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 1, 4, 4), G.WithName("feat"),
		G.WithValue(tensor.New(tensor.WithShape(1, 1, 4, 4), tensor.WithBacking(data))))
	// One RoI (batch index 0, x1, y1, x2, y2) covering image pixels
	// [0, 32) x [0, 32) at stride 16: feature cells [0, 2) x [0, 2).
	rois := G.NewConstant(tensor.New(tensor.WithShape(1, 5), tensor.WithBacking([]float32{0, 0, 0, 32, 32})))
	out, err := ops.RoIAlign(feat, rois, ops.RoIAlignOpts{OutH: 2, OutW: 2, SpatialScale: 1.0 / 16, SamplingRatio: 1})
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
