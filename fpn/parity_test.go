package fpn

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/backbone"
	"resdet/internal/testutil"
	"resdet/nn"
	"resdet/weights"
)

// Bounds of the torch parity tests, relative to each tensor's largest
// magnitude (testutil.MaxRelErr).
const (
	forwardTol = 1e-4
	gradTol    = 1e-3
)

// fixtureInputs are the C2..C5 channel counts gen_fpn.py uses.
var fixtureInputs = []backbone.ShapeSpec{{Channels: 16, Stride: 4}, {Channels: 32, Stride: 8}, {Channels: 64, Stride: 16}, {Channels: 128, Stride: 32}}

// TestTorchvisionParity compares the FPN with torchvision's
// FeaturePyramidNetwork([16, 32, 64, 128], out, LastLevelMaxPool(),
// norm_layer) on seeded random weights and C2..C5 maps the size a ResNet
// gives a 64x96 image (every top-down step exactly 2x) and an 80x112 one
// (C5 3x4 -> C4 5x7: not 2x). It checks P2..P6 (torchvision's "0".."3",
// "pool") and, for loss = Σ sum(P_i * w_i), the gradients of every learnable
// parameter and of C2..C5 against torch autograd, the training graph run by
// nn.Executor; then the inference graph (ConstWeights) forward again. The
// weights come from a torch.save'd state dict; "legacy" has torchvision <
// 0.13's names and goes through UpgradeLegacyNames; "detectron2" runs
// torchvision's modules through Detectron2's forward (scale_factor=2.0) at
// Detectron2 fixture width 64.
func TestTorchvisionParity(t *testing.T) {
	cases := []struct {
		name, variant, size string
		out                 int
		norm                Norm
	}{
		{name: "v1_64x96", variant: "v1", size: "64x96", out: 32, norm: NoNorm},
		{name: "v1_80x112", variant: "v1", size: "80x112", out: 32, norm: NoNorm},
		{name: "v2_64x96", variant: "v2", size: "64x96", out: 32, norm: FrozenBN},
		{name: "v2_80x112", variant: "v2", size: "80x112", out: 32, norm: FrozenBN},
		{name: "legacy_v1_64x96", variant: "legacy", size: "64x96", out: 32, norm: NoNorm},
		{name: "detectron2_64x96", variant: "d2", size: "64x96", out: 64, norm: NoNorm},
	}
	dir := t.TempDir()
	args := []string{dir}
	for _, tc := range cases {
		args = append(args, fmt.Sprintf("%s:%s:%s:%d", tc.name, tc.variant, tc.size, tc.out))
	}
	testutil.RunScript(t, filepath.Join("testdata", "gen_fpn.py"), args...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := weights.LoadTorch(filepath.Join(dir, tc.name, "model.pth"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.variant == "legacy" {
				if _, ok := st[Prefix+"inner_blocks.0.weight"]; !ok {
					t.Fatalf("legacy fixture lacks %sinner_blocks.0.weight: %v", Prefix, st.Names())
				}
				if st, err = UpgradeLegacyNames(st); err != nil {
					t.Fatal(err)
				}
			}
			io, _, err := weights.ReadSafetensors(filepath.Join(dir, tc.name, "io.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{In: fixtureInputs, OutChannels: tc.out, Norm: tc.norm}
			t.Run("train", func(t *testing.T) { checkTraining(t, cfg, st, io) })
			cfg.ConstWeights = true
			t.Run("inference", func(t *testing.T) { checkInference(t, cfg, st, io) })
		})
	}
}

// buildFixture builds cfg's FPN with st's weights on the fixture's C2..C5.
func buildFixture(t *testing.T, cfg Config, st weights.State, io weights.State) (*FPN, []*G.Node, []*G.Node) {
	t.Helper()
	g := G.NewGraph()
	f, err := New(g, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Load(st); err != nil {
		t.Fatal(err)
	}
	in := make([]*G.Node, 4)
	for i := range in {
		in[i] = inputNode(g, fmt.Sprintf("c%d", i+2), io[fmt.Sprintf("c%d", i+2)])
	}
	out, err := f.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 5 {
		t.Fatalf("Forward returned %d maps, want 5", len(out))
	}
	return f, in, out
}

func inputNode(g *G.ExprGraph, name string, v weights.Tensor) *G.Node {
	val := tensor.New(tensor.WithShape(v.Shape...), tensor.WithBacking(append([]float32(nil), v.Data...)))
	return G.NewTensor(g, tensor.Float32, len(v.Shape), G.WithShape(v.Shape...), G.WithName(name), G.WithValue(val))
}

// checkOutputs compares P2..P6 with the fixture's p2..p6.
func checkOutputs(t *testing.T, out []*G.Node, io weights.State) {
	t.Helper()
	worst := 0.0
	for i, o := range out {
		key := fmt.Sprintf("p%d", i+2)
		want := io[key]
		if !o.Shape().Eq(tensor.Shape(want.Shape)) {
			t.Errorf("%s: shape %v, want %v", key, o.Shape(), want.Shape)
			continue
		}
		e := testutil.MaxRelErr(o.Value().Data().([]float32), want.Data)
		worst = math.Max(worst, e)
		if !(e <= forwardTol) {
			t.Errorf("%s %v: max relative error %.3g > %g", key, want.Shape, e, forwardTol)
		}
	}
	t.Logf("P2..P6: worst max relative error %.2e (bound %g)", worst, forwardTol)
}

func checkTraining(t *testing.T, cfg Config, st, io weights.State) {
	f, in, out := buildFixture(t, cfg, st, io)
	g := f.Graph()
	var loss *G.Node
	for i, o := range out {
		w := inputNode(g, fmt.Sprintf("w%d", i+2), io[fmt.Sprintf("w%d", i+2)])
		term, err := G.Sum(G.Must(G.HadamardProd(o, w)))
		if err != nil {
			t.Fatal(err)
		}
		if loss == nil {
			loss = term
		} else if loss, err = G.Add(loss, term); err != nil {
			t.Fatal(err)
		}
	}
	params := f.Learnables()
	wrt := append(append(G.Nodes(nil), params...), in...)
	grads, err := G.Grad(loss, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.NewExecutor(g, append(append(append([]*G.Node(nil), out...), grads...), loss)...)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Run(); err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, out, io)

	// Every learnable parameter and every input has a torch gradient to
	// match; frozen BN tensors have one in torch but must not be learnable.
	checked, worst := 0, 0.0
	learn := map[string]bool{}
	for i, n := range wrt {
		key := "grad." + n.Name()
		learn[n.Name()] = true
		want, ok := io[key]
		if !ok {
			t.Errorf("%s: no torch gradient %q", n.Name(), key)
			continue
		}
		e := testutil.MaxRelErr(grads[i].Value().Data().([]float32), want.Data)
		worst = math.Max(worst, e)
		if !(e <= gradTol) {
			t.Errorf("grad %s %v: max relative error %.3g > %g", n.Name(), want.Shape, e, gradTol)
		}
		checked++
	}
	for key := range io {
		name, ok := strings.CutPrefix(key, "grad.")
		if !ok || learn[name] {
			continue
		}
		if cfg.Norm != FrozenBN || !strings.Contains(name, ".1.") {
			t.Errorf("torch has a gradient for %s, which is not learnable here", name)
		}
	}
	wantChecked := 16 + 4 // weight and bias of 8 convolutions, 4 inputs
	if cfg.Norm == FrozenBN {
		wantChecked = 8 + 4
	}
	if checked != wantChecked {
		t.Errorf("%d gradients checked, want %d", checked, wantChecked)
	}
	t.Logf("%d gradients (parameters and C2..C5): worst max relative error %.2e (bound %g)", checked, worst, gradTol)
}

func checkInference(t *testing.T, cfg Config, st, io weights.State) {
	f, _, out := buildFixture(t, cfg, st, io)
	e, err := nn.NewExecutor(f.Graph(), out...)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// Twice: the second run uses the weights converted on the first.
	for run := 0; run < 2; run++ {
		if err := e.Run(); err != nil {
			t.Fatal(err)
		}
	}
	checkOutputs(t, out, io)
}
