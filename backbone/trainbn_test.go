package backbone

import (
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"

	"resdet/internal/testutil"
)

// TestTrainableBNTrainMode runs the networks with trainable BN in training mode
// (batch statistics) and compares the logits and the updated running statistics with
// torch's train mode (momentum 0.1, unbiased variance for the running average).
func TestTrainableBNTrainMode(t *testing.T) {
	cases := []struct {
		name string
		args []string
		cfg  Config
	}{
		{name: "cifar20", args: []string{"cifar20", "--size", "32", "32", "--batch", "4", "--train"},
			cfg: Config{Depth: 20, CIFAR: true, Shortcut: ShortcutA, NumClasses: 10, Norm: TrainableBN, Train: true}},
		{name: "resnet18", args: []string{"resnet18", "--size", "64", "48", "--batch", "3", "--train"},
			cfg: Config{Depth: 18, NumClasses: 1000, Norm: TrainableBN, Train: true}},
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
			m := G.NewTapeMachine(g)
			defer m.Close()
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			checkRelErr(t, "train-mode logits", values(t, logits), io["train_logits"].Data)
			post := r.State()
			n, worst := 0, 0.0
			for key, want := range io {
				name, ok := strings.CutPrefix(key, "post.")
				if !ok {
					continue
				}
				got, err := post.Get(name, want.Shape...)
				if err != nil {
					t.Fatal(err)
				}
				e := testutil.MaxRelErr(got.Data, want.Data)
				worst = max(worst, e)
				if !(e <= parityTol) {
					t.Errorf("%s after one training forward: max relative error %.3g", name, e)
				}
				n++
			}
			t.Logf("%d running statistics: worst max rel err %.2e (bound %g)", n, worst, parityTol)
			if n < 2*19 {
				t.Errorf("only %d running statistics compared", n)
			}
		})
	}
}
