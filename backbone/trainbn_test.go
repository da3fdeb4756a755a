package backbone

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"

	"resdet/weights"
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
			st, err := weights.LoadTorch(filepath.Join(dirs[i], "model.pth"))
			if err != nil {
				t.Fatal(err)
			}
			io, _, err := weights.ReadSafetensors(filepath.Join(dirs[i], "io.safetensors"))
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
			m := G.NewTapeMachine(g)
			defer m.Close()
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			e := maxRelErr(values(t, logits), io["train_logits"].Data)
			t.Logf("train-mode logits: max rel err %.2e (bound %g)", e, parityTol)
			if e > parityTol || math.IsNaN(e) {
				t.Errorf("train-mode logits: max relative error %.3g > %g", e, parityTol)
			}
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
				e := maxRelErr(got.Data, want.Data)
				worst = math.Max(worst, e)
				if e > parityTol || math.IsNaN(e) {
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
