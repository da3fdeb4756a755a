package detection

import (
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/box"
)

// BenchmarkTrainingLosses runs both losses and their gradients (forward and
// backward through a TapeMachine) at VOC size: RPN outputs of one
// 600x1000 image (15 anchors on 38x63 cells, 256 sampled) and 512 sampled
// RoIs with 21 classes.
func BenchmarkTrainingLosses(b *testing.B) {
	anchors, gt, proposals, labels, img := vocTargetScene()
	r := rand.New(rand.NewSource(3))
	rpnBatch, err := DefaultRPNConfig().SampleRPNBatch(anchors, [][]box.Box{gt}, []Size{img}, TargetOptions{}, r)
	if err != nil {
		b.Fatal(err)
	}
	roiBatch, err := DefaultRoIHeadsConfig().SelectTrainingSamples([][]box.Box{proposals}, [][]box.Box{gt}, [][]int{labels}, TargetOptions{}, r)
	if err != nil {
		b.Fatal(err)
	}
	k := roiBatch[0].Len()
	g := G.NewGraph()
	mk := func(name string, s ...int) *G.Node {
		v := tensor.New(tensor.WithShape(s...), tensor.Of(tensor.Float32))
		for i, d := 0, v.Data().([]float32); i < len(d); i++ {
			d[i] = float32(r.NormFloat64())
		}
		return G.NewTensor(g, tensor.Float32, len(s), G.WithShape(s...), G.WithName(name), G.WithValue(v))
	}
	obj, del := mk("obj", 1, 15, 38, 63), mk("del", 1, 60, 38, 63)
	cls, reg := mk("cls", k, 21), mk("reg", k, 84)
	rl, err := NewRPNLoss(obj, del, rpnBatch)
	lo, lb := rpnNodes(rl)
	if err != nil {
		b.Fatal(err)
	}
	fl, err := NewFastRCNNLoss(cls, reg, roiBatch)
	lc, lr := fastRCNNNodes(fl)
	if err != nil {
		b.Fatal(err)
	}
	total := G.Must(G.Add(G.Must(G.Add(lo, lb)), G.Must(G.Add(lc, lr))))
	if _, err := G.Grad(total, obj, del, cls, reg); err != nil {
		b.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	b.ReportAllocs()
	for b.Loop() {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			b.Fatal(err)
		}
	}
}
