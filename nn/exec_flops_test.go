package nn

import (
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
)

// TestExecutorFLOPs counts a small network's FLOPs by hand: two
// multiply-adds per output element and weight tap for the convolutions, per
// row, input and output for the Linear; the ReLU and pooling count nothing.
func TestExecutorFLOPs(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	g := G.NewGraph()
	param := func(name string, shape ...int) *G.Node { return randParam(g, rng, name, shape...) }
	must := mustNode(t)
	x := param("x", 2, 4, 12, 10)
	// 3x3, stride 2, pad 1: [2, 8, 6, 5]; 2 * 480 outputs * 4*3*3 taps.
	y := must(Conv2d(x, param("w1", 8, 4, 3, 3), param("b1", 8), ConvOpts{Stride: [2]int{2, 2}, Pad: [2]int{1, 1}}))
	y = must(ReLU(y))
	// 1x1 grouped (2 groups): [2, 6, 6, 5]; 2 * 360 outputs * 4 taps.
	y = must(Conv2d(y, param("w2", 6, 4, 1, 1), nil, ConvOpts{Groups: 2}))
	y = must(MaxPool2d(y, 2, 2, 0)) // [2, 6, 3, 2]
	y = must(Reshape(y, 2, 36))
	y = must(Linear(y, param("w3", 5, 36), param("b3", 5))) // 2 * 2*36*5
	e, err := NewExecutor(g, y)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	want := 2.0*480*36 + 2*360*4 + 2*2*36*5
	if got := e.FLOPs(); got != want {
		t.Errorf("FLOPs = %v, want %v", got, want)
	}
}
