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
		bns  int // batch norms in the network
	}{
		{name: "cifar20", args: []string{"cifar20", "--size", "32", "32", "--batch", "4", "--train"},
			cfg: Config{Depth: 20, CIFAR: true, Shortcut: ShortcutA, NumClasses: 10, Norm: TrainableBN, Train: true}, bns: 19},
		{name: "resnet18", args: []string{"resnet18", "--size", "64", "48", "--batch", "3", "--train"},
			cfg: Config{Depth: 18, NumClasses: 1000, Norm: TrainableBN, Train: true}, bns: 20},
		{name: "resnext 4x2d", args: []string{"resnet50", "--layers", "1", "1", "1", "1", "--groups", "4", "--width-per-group", "2", "--size", "64", "48", "--batch", "3", "--train"},
			cfg: withBlocks(Config{Depth: 50, NumClasses: 1000, Groups: 4, WidthPerGroup: 2, Norm: TrainableBN, Train: true}, [4]int{1, 1, 1, 1}), bns: 17},
		{name: "DC5 detectron2 narrow", args: args([]string{"resnet50", "--layers", "1", "1", "1", "2", "--dilate5", "d2", "--variant", "stride1x1", "--size", "64", "48", "--batch", "3", "--train"}, narrowArgs),
			cfg: withBlocks(Config{Depth: 50, NumClasses: 1000, StrideIn1x1: true, WidthPerGroup: 16, Res2OutChannels: 64, Res5Dilation: 2, Norm: TrainableBN, Train: true}, [4]int{1, 1, 1, 2}), bns: 19},
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
			t.Logf("%d running statistics compared, worst max rel err %.2e (bound %g)", n, worst, parityTol)
			if n != 2*tc.bns {
				t.Errorf("%d running statistics compared, want %d", n, 2*tc.bns)
			}
		})
	}
}
