package backbone

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/nn"
	"resdet/weights"
)

// TestGradParity compares the training path (frozen BN unfolded: nn.Conv2dBN; G.Grad
// run on a TapeMachine or nn.Executor) with torch's autograd: gradients of
// sum(logits * lossw) w.r.t. every learnable convolution and the classifier, through
// grouped (ResNeXt) and dilated (DC5) convolutions too. Frozen parameters (FreezeAt)
// must be left out of Learnables. The fixtures keep every ReLU input away from 0
// (gen_fixtures.py's avoid_relu_ties), so rounding cannot flip a gradient mask.
func TestGradParity(t *testing.T) {
	cases := []struct {
		name string
		args []string
		cfg  Config
		exec bool // run with nn.Executor (the trainer's) instead of a TapeMachine
	}{
		{name: "cifar20 option A", args: []string{"cifar20", "--size", "32", "32", "--grads"}, cfg: CIFARConfig(3)},
		{name: "resnet18", args: []string{"resnet18", "--size", "64", "48", "--grads"}, cfg: DefaultConfig(18)},
		{name: "resnet50", args: []string{"resnet50", "--size", "64", "48", "--grads"}, cfg: DefaultConfig(50)},
		{name: "resnet50 freeze-at 2", args: []string{"resnet50", "--size", "64", "48", "--grads"},
			cfg: Config{Depth: 50, NumClasses: 1000, FreezeAt: 2}},
		{name: "resnet50 executor", args: []string{"resnet50", "--size", "64", "48", "--grads"}, cfg: DefaultConfig(50), exec: true},
		// Backward through grouped (blocked and NCHW layouts) and dilated convolutions.
		{name: "resnext 32x8d", args: []string{"resnet101", "--layers", "1", "1", "1", "1", "--groups", "32", "--width-per-group", "8", "--size", "64", "48", "--grads"},
			cfg: withBlocks(Config{Depth: 101, NumClasses: 1000, Groups: 32, WidthPerGroup: 8}, [4]int{1, 1, 1, 1})},
		{name: "resnext 4x2d NCHW", args: []string{"resnet50", "--layers", "1", "1", "1", "1", "--groups", "4", "--width-per-group", "2", "--size", "65", "47", "--grads"},
			cfg: withBlocks(Config{Depth: 50, NumClasses: 1000, Groups: 4, WidthPerGroup: 2}, [4]int{1, 1, 1, 1})},
		{name: "DC5 detectron2 narrow", args: args([]string{"resnet50", "--layers", "1", "1", "1", "2", "--dilate5", "d2", "--variant", "stride1x1", "--size", "64", "48", "--grads"}, narrowArgs),
			cfg: withBlocks(Config{Depth: 50, NumClasses: 1000, StrideIn1x1: true, WidthPerGroup: 16, Res2OutChannels: 64, Res5Dilation: 2}, [4]int{1, 1, 1, 2})},
		{name: "DC5 torchvision", args: []string{"resnet50", "--layers", "1", "1", "1", "2", "--dilate5", "tv", "--size", "64", "48", "--grads"},
			cfg: withBlocks(Config{Depth: 50, NumClasses: 1000, Res5Dilation: 2, Res5FirstUndilated: true}, [4]int{1, 1, 1, 2})},
	}
	// Cases with the same arguments share one fixture.
	var argLists [][]string
	index := map[string]int{}
	for _, tc := range cases {
		key := strings.Join(tc.args, " ")
		if _, ok := index[key]; !ok {
			index[key] = len(argLists)
			argLists = append(argLists, tc.args)
		}
	}
	dirs := genFixtures(t, argLists...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := dirs[index[strings.Join(tc.args, " ")]]
			st, err := weights.LoadTorch(filepath.Join(dir, "model.pth"))
			if err != nil {
				t.Fatal(err)
			}
			io, _, err := weights.ReadSafetensors(filepath.Join(dir, "io.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			g := G.NewGraph()
			r, err := New(g, tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Load(st); err != nil {
				t.Fatal(err)
			}
			logits, err := r.Logits(input(g, io["input"]))
			if err != nil {
				t.Fatal(err)
			}
			lw := io["lossw"]
			lwN := G.NewMatrix(g, tensor.Float32, G.WithShape(lw.Shape...), G.WithName("lossw"),
				G.WithValue(tensor.New(tensor.WithShape(lw.Shape...), tensor.WithBacking(lw.Data))))
			loss, err := G.Sum(G.Must(G.HadamardProd(logits, lwN)))
			if err != nil {
				t.Fatal(err)
			}
			params := r.Learnables()
			grads, err := G.Grad(loss, params...)
			if err != nil {
				t.Fatal(err)
			}
			if tc.exec {
				e, err := nn.NewExecutor(g, append(G.Nodes{logits}, grads...)...)
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				if err := e.Run(); err != nil {
					t.Fatal(err)
				}
			} else {
				m := G.NewTapeMachine(g, G.BindDualValues(params...))
				defer m.Close()
				if err := m.RunAll(); err != nil {
					t.Fatal(err)
				}
			}
			e := maxRelErr(values(t, logits), io["logits"].Data)
			t.Logf("logits: max rel err %.2e (bound %g)", e, parityTol)
			if e > parityTol || math.IsNaN(e) {
				t.Errorf("logits: max relative error %.3g > %g", e, parityTol)
			}
			learn := map[string]*G.Node{}
			for i, p := range params {
				learn[p.Name()] = grads[i]
			}
			checked, worst := 0, 0.0
			for key, want := range io {
				name, ok := strings.CutPrefix(key, "grad.")
				if !ok {
					continue
				}
				gn, isLearn := learn[name]
				frozen := tc.cfg.FreezeAt >= 1 && (strings.HasPrefix(name, "conv1.") ||
					tc.cfg.FreezeAt >= 2 && strings.HasPrefix(name, "layer1."))
				if frozen {
					if isLearn {
						t.Errorf("%s is learnable with FreezeAt %d", name, tc.cfg.FreezeAt)
					}
					continue
				}
				if !isLearn {
					t.Errorf("%s: not among the learnables", name)
					continue
				}
				e := maxRelErr(values(t, gn), want.Data)
				worst = math.Max(worst, e)
				if e > parityTol || math.IsNaN(e) {
					t.Errorf("grad %s %v: max relative error %.3g > %g", name, want.Shape, e, parityTol)
				}
				checked++
			}
			t.Logf("%d gradients checked, worst max rel err %.2e (bound %g)", checked, worst, parityTol)
			if checked < 10 {
				t.Errorf("only %d gradients checked", checked)
			}
		})
	}
}
