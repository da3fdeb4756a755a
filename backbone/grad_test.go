package backbone

import (
	"math"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/testutil"
)

// TestGradParity compares the training path (frozen BN as nn.Affine, TapeMachine +
// Grad) with torch's autograd: gradients of sum(logits * lossw) w.r.t. every
// learnable convolution and the classifier. Frozen parameters (FreezeAt) must be
// left out of Learnables.
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
				worst = math.Max(worst, e)
				if !(e <= parityTol) {
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
