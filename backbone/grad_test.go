package backbone

import (
	"math"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/testutil"
)

// gradTorchFactor bounds the gradients' error relative to torch's. In float32,
// ReLU inputs within rounding of zero land on either side of the kink, and
// each flip changes the gradients upstream: torch's own float32 gradients of
// ResNet-50 at 64x48 differ from its float64 ones by up to 1.7e-2 of a
// tensor's largest magnitude (1.3e-5 when float64 uses float32's ReLU masks).
// Our float32 computation flips other kinks, so the bound for every gradient
// of a network is this factor times torch's worst float32 error over the
// network's gradients, or parityTol if larger (ResNet-18 and CIFAR, whose
// float32 gradients agree with float64 to 1e-5).
const gradTorchFactor = 2.0

// TestGradParity compares the training path (frozen BN as nn.Affine, TapeMachine +
// Grad) with torch's autograd in float64: gradients of sum(logits * lossw) w.r.t.
// every learnable convolution and the classifier. Frozen parameters (FreezeAt)
// must be left out of Learnables.
func TestGradParity(t *testing.T) {
	cases := []struct {
		name string
		args []string
		cfg  Config
	}{
		{name: "cifar20 option A", args: []string{"cifar20", "--size", "32", "32", "--grads"}, cfg: CIFARConfig(3)},
		{name: "resnet18", args: []string{"resnet18", "--size", "64", "48", "--grads"}, cfg: DefaultConfig(18)},
		{name: "resnet50", args: []string{"resnet50", "--size", "64", "48", "--grads"}, cfg: DefaultConfig(50)},
		{name: "resnet50 freeze-at 2", args: []string{"resnet50", "--size", "64", "48", "--grads"},
			cfg: Config{Depth: 50, NumClasses: 1000, FreezeAt: 2}},
	}
	var argLists [][]string
	for _, tc := range cases {
		argLists = append(argLists, tc.args)
	}
	dirs := genFixtures(t, argLists...)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, r, io := fixtureNet(t, dirs[i], tc.cfg)
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
			if _, err := G.Grad(loss, params...); err != nil {
				t.Fatal(err)
			}
			m := G.NewTapeMachine(g, G.BindDualValues(params...))
			defer m.Close()
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			checkRelErr(t, "logits", values(t, logits), io["logits"].Data)
			learn := map[string]*G.Node{}
			for _, p := range params {
				learn[p.Name()] = p
			}
			var torchWorst float64 // torch's float32 error, worst over the gradients
			for key, v := range io {
				if strings.HasPrefix(key, "grad32err.") && len(v.Data) == 1 {
					torchWorst = math.Max(torchWorst, float64(v.Data[0]))
				}
			}
			bound := math.Max(parityTol, gradTorchFactor*torchWorst)
			checked, worst := 0, 0.0
			for key, want := range io {
				name, ok := strings.CutPrefix(key, "grad.")
				if !ok {
					continue
				}
				p, isLearn := learn[name]
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
				gv, err := p.Grad()
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				e := testutil.MaxRelErr(gv.Data().([]float32), want.Data)
				if len(io["grad32err."+name].Data) != 1 {
					t.Fatalf("fixture has no grad32err.%s", name)
				}
				worst = math.Max(worst, e)
				if !(e <= bound) {
					t.Errorf("grad %s %v: max relative error %.3g > %.3g", name, want.Shape, e, bound)
				}
				checked++
			}
			t.Logf("%d gradients checked against float64: worst max rel err %.2e, torch's float32 %.2e (bound max(%g, %g x torch's) = %.2e)",
				checked, worst, torchWorst, parityTol, gradTorchFactor, bound)
			if checked < 10 {
				t.Errorf("only %d gradients checked", checked)
			}
		})
	}
}
