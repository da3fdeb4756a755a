package backbone

import (
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/testutil"
	"resdet/nn"
)

// TestGradParity compares the training path (frozen BN unfolded: nn.Conv2dBN; G.Grad
// run on a TapeMachine or nn.Executor) with torch's autograd in float64: gradients of
// sum(logits * lossw) w.r.t. every learnable convolution and the classifier, through
// grouped (ResNeXt) and dilated (DC5) convolutions too, each within parityTol of the
// tensor's largest magnitude. Frozen parameters (FreezeAt) must be left out of
// Learnables. The fixtures keep every ReLU input away from 0 (gen_fixtures.py's
// avoid_relu_ties), so rounding cannot flip a gradient mask; torch's own float32
// gradients must then be within parityTol of float64 too (a larger error means the
// fixture has a ReLU tie), and their error is logged beside ours.
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
			g, r, io := fixtureNet(t, dirs[index[strings.Join(tc.args, " ")]], tc.cfg)
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
			checkRelErr(t, "logits", values(t, logits), io["logits"].Data)
			learn := map[string]*G.Node{}
			for i, p := range params {
				learn[p.Name()] = grads[i]
			}
			checked, worst, torchWorst := 0, 0.0, 0.0
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
				e := testutil.MaxRelErr(values(t, gn), want.Data)
				errT := io["grad32err."+name]
				if len(errT.Data) != 1 {
					t.Fatalf("fixture has no grad32err.%s", name)
				}
				e32 := float64(errT.Data[0])
				torchWorst = max(torchWorst, e32)
				if !(e32 <= parityTol) {
					t.Errorf("fixture: torch's float32 grad %s differs from float64 by %.3g > %g (a ReLU input near 0?)", name, e32, parityTol)
				}
				worst = max(worst, e)
				if !(e <= parityTol) {
					t.Errorf("grad %s %v: max relative error %.3g > %g", name, want.Shape, e, parityTol)
				}
				checked++
			}
			t.Logf("%d gradients checked against float64: worst max rel err %.2e (bound %g); torch's float32 %.2e",
				checked, worst, parityTol, torchWorst)
			if checked < 10 {
				t.Errorf("only %d gradients checked", checked)
			}
		})
	}
}
