package optim_test

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/optim"
)

// A training loop over one parameter: the learning rate warms up over 4
// iterations and drops 10x at iteration 6; Step applies SGD and zeroes the
// gradient that the graph accumulated. torch.optim.SGD (momentum 0.9, weight
// decay 1e-4) with Detectron2's WarmupMultiStepLR prints the same lines.
func ExampleSGD() {
	g := G.NewGraph()
	w := G.NewVector(g, tensor.Float32, G.WithShape(2), G.WithName("w"),
		G.WithValue(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float32{1, -1}))))
	loss := G.Must(G.Sum(G.Must(G.Square(w)))) // gradient 2w
	if _, err := G.Grad(loss, w); err != nil {
		fmt.Println(err)
		return
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(w))
	defer vm.Close()
	sgd, err := optim.NewSGD([]G.ValueGrad{w}, optim.DefaultSGDConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	sched := optim.NewWarmupMultiStep(0.1, []int{6}, 4)
	for it := 0; it < 8; it++ {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			fmt.Println(err)
			return
		}
		lr := sched.LR(it)
		if err := sgd.Step(lr); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("iter %d: lr %.6f, w %.4f\n", it, lr, w.Value().Data())
	}
	// Output:
	// iter 0: lr 0.000100, w [0.9998 -0.9998]
	// iter 1: lr 0.025075, w [0.9045 -0.9045]
	// iter 2: lr 0.050050, w [0.6428 -0.6428]
	// iter 3: lr 0.075025, w [0.1933 -0.1933]
	// iter 4: lr 0.100000, w [-0.3846 0.3846]
	// iter 5: lr 0.100000, w [-0.8278 0.8278]
	// iter 6: lr 0.010000, w [-0.8512 0.8512]
	// iter 7: lr 0.010000, w [-0.8551 0.8551]
}
