package backbone

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/testutil"
	"resdet/nn"
	"resdet/weights"
)

// genFixtures runs testdata/gen_fixtures.py once for every argument list (one
// torch start-up) and returns one temporary directory per list. Without torch
// it skips the test, or fails it with RESDET_REQUIRE_TORCH=1.
func genFixtures(t testing.TB, argLists ...[]string) []string {
	t.Helper()
	var lines strings.Builder
	dirs := make([]string, len(argLists))
	for i, args := range argLists {
		dirs[i] = t.TempDir()
		lines.WriteString(dirs[i] + " " + strings.Join(args, " ") + "\n")
	}
	testutil.RunScriptStdin(t, lines.String(), "testdata/gen_fixtures.py", "--many")
	return dirs
}

// fixtureNet builds a network from cfg on a new graph, loads dir/model.pth
// into it and returns it with the tensors of dir/io.safetensors.
func fixtureNet(t testing.TB, dir string, cfg Config) (*G.ExprGraph, *ResNet, weights.State) {
	t.Helper()
	st, err := weights.LoadTorch(filepath.Join(dir, "model.pth"))
	if err != nil {
		t.Fatal(err)
	}
	io, _, err := weights.ReadSafetensors(filepath.Join(dir, "io.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	g := G.NewGraph()
	r, err := New(g, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Load(st); err != nil {
		t.Fatal(err)
	}
	return g, r, io
}

// checkRelErr fails the test if got differs from torch's want by more than
// parityTol relative to max|want| (testutil.MaxRelErr), and logs the error.
func checkRelErr(t testing.TB, what string, got, want []float32) {
	t.Helper()
	e := testutil.MaxRelErr(got, want)
	t.Logf("%s: max rel err %.2e (bound %g)", what, e, parityTol)
	if !(e <= parityTol) {
		t.Errorf("%s: max relative error %.3g > %g", what, e, parityTol)
	}
}

func input(g *G.ExprGraph, t weights.Tensor) *G.Node {
	v := tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(append([]float32{}, t.Data...)))
	return G.NewTensor(g, tensor.Float32, 4, G.WithShape(t.Shape...), G.WithName("input"), G.WithValue(v))
}

func values(t testing.TB, n *G.Node) []float32 {
	t.Helper()
	v, ok := n.Value().Data().([]float32)
	if !ok {
		t.Fatalf("%s: value %T", n.Name(), n.Value())
	}
	return v
}

const parityTol = 1e-4

// checkParity loads dir/model.pth into a network built from cfg, runs it on
// dir/io.safetensors' input and compares every output the fixture holds with torch's
// (bound parityTol): the logits, and unless CIFAR C4, Res5 on "res5_in", and the stem
// and res2 .. res5 from one Outputs pass.
func checkParity(t *testing.T, dir string, cfg Config, tape bool) {
	t.Helper()
	errs := parityErrors(t, dir, cfg, tape)
	names := make([]string, 0, len(errs))
	for name := range errs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if e := errs[name]; !(e <= parityTol) {
			t.Errorf("%s: max relative error %.3g > %g", name, e, parityTol)
		}
	}
}

// parityErrors runs the comparison of checkParity and returns the max relative error
// (testutil.MaxRelErr) of every output by name, logging each; shape mismatches are
// test errors.
func parityErrors(t *testing.T, dir string, cfg Config, tape bool) map[string]float64 {
	t.Helper()
	g, r, io := fixtureNet(t, dir, cfg)
	x := input(g, io["input"])
	var outs []*G.Node
	var names []string
	if cfg.NumClasses > 0 {
		logits, err := r.Logits(x)
		if err != nil {
			t.Fatal(err)
		}
		outs, names = append(outs, logits), append(names, "logits")
	}
	if !cfg.CIFAR {
		c4, err := r.C4(x)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c4.Shape()[1], r.C4Out().Channels; got != want {
			t.Errorf("C4 has %d channels, C4Out says %d", got, want)
		}
		outs = append(outs, c4)
		names = append(names, "c4")
		res5, err := r.Res5().Forward(input(g, io["res5_in"]))
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, res5)
		names = append(names, "res5_out")
	}
	if _, ok := io["res2"]; ok {
		// Out of network order, to check that each name gets its own map.
		feats, err := r.Outputs(x, "res5", "stem", "res3", "res2", "res4")
		if err != nil {
			t.Fatal(err)
		}
		h, w := x.Shape()[2], x.Shape()[3]
		for _, f := range feats {
			s := f.Node.Shape()
			if want := []int{x.Shape()[0], f.Shape.Channels, (h-1)/f.Shape.Stride + 1, (w-1)/f.Shape.Stride + 1}; !sameShape(s, want) {
				t.Errorf("Outputs %s: shape %v, want %v from its ShapeSpec %+v", f.Name, s, want, f.Shape)
			}
			if f.Shape != r.OutputShapes()[f.Name] {
				t.Errorf("Outputs %s: ShapeSpec %+v, OutputShapes says %+v", f.Name, f.Shape, r.OutputShapes()[f.Name])
			}
			outs, names = append(outs, f.Node), append(names, f.Name)
			// Chain: the same map in the stages' layout, iff they ran blocked.
			if (f.Chain != nil) != r.blk {
				t.Errorf("Outputs %s: Chain %v, want one iff the stages run in a blocked chain (%v)", f.Name, f.Chain, r.blk)
			}
			if f.Chain != nil {
				back, err := nn.FromBlocked(f.Chain)
				if err != nil {
					t.Fatal(err)
				}
				outs, names = append(outs, back), append(names, f.Name)
			}
		}
	}
	if tape {
		m := G.NewTapeMachine(g)
		defer m.Close()
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
	} else {
		e, err := nn.NewExecutor(g, outs...)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if err := e.Run(); err != nil {
			t.Fatal(err)
		}
	}
	errs := map[string]float64{}
	for i, n := range outs {
		want := io[names[i]]
		if !sameShape(n.Shape(), want.Shape) {
			t.Errorf("%s: shape %v, torch %v", names[i], n.Shape(), want.Shape)
			continue
		}
		e := testutil.MaxRelErr(values(t, n), want.Data)
		t.Logf("%s %v: max rel err %.2e (bound %g)", names[i], want.Shape, e, parityTol)
		errs[names[i]] = e
	}
	return errs
}

func sameShape(a tensor.Shape, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range b {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestParityTorchvision compares every depth (option B, stride on the 3x3) and the
// other options with torchvision models carrying random weights and BN statistics.
func TestParityTorchvision(t *testing.T) {
	cases := []struct {
		name string
		args []string
		cfg  Config
		tape bool // run with gorgonia's TapeMachine instead of nn.Executor
		long bool // skipped with -short
	}{
		{name: "resnet18", args: []string{"resnet18"}, cfg: DefaultConfig(18)},
		{name: "resnet18 inference fused", args: []string{"resnet18"}, cfg: Config{Depth: 18, NumClasses: 1000, Inference: true}},
		{name: "resnet50 inference fused tape", args: []string{"resnet50"}, cfg: Config{Depth: 50, NumClasses: 1000, Inference: true}, tape: true},
		{name: "resnet34", args: []string{"resnet34"}, cfg: DefaultConfig(34)},
		{name: "resnet50", args: []string{"resnet50"}, cfg: DefaultConfig(50)},
		{name: "resnet101", args: []string{"resnet101"}, cfg: DefaultConfig(101), long: true},
		{name: "resnet152", args: []string{"resnet152"}, cfg: DefaultConfig(152), long: true},
		{name: "resnet18 trainable BN eval tape", args: []string{"resnet18", "--size", "48", "40"},
			cfg: Config{Depth: 18, NumClasses: 1000, Norm: TrainableBN}, tape: true},
		{name: "resnet18 option A", args: []string{"resnet18", "--variant", "A"}, cfg: Config{Depth: 18, NumClasses: 1000, Shortcut: ShortcutA}},
		{name: "resnet18 option C", args: []string{"resnet18", "--variant", "C"}, cfg: Config{Depth: 18, NumClasses: 1000, Shortcut: ShortcutC}},
		{name: "resnet18 plain", args: []string{"resnet18", "--variant", "plain"}, cfg: Config{Depth: 18, NumClasses: 1000, Plain: true}},
		{name: "resnet50 option A", args: []string{"resnet50", "--variant", "A"}, cfg: Config{Depth: 50, NumClasses: 1000, Shortcut: ShortcutA}},
		{name: "resnet50 stride in 1x1", args: []string{"resnet50", "--variant", "stride1x1"}, cfg: Config{Depth: 50, NumClasses: 1000, StrideIn1x1: true}},
		{name: "cifar56 option A", args: []string{"cifar56", "--size", "32", "32"}, cfg: CIFARConfig(9)},
		{name: "cifar20 plain", args: []string{"cifar20", "--variant", "plain", "--size", "32", "32"}, cfg: Config{Depth: 20, CIFAR: true, Plain: true, NumClasses: 10}},
	}
	// Cases with the same arguments share one fixture.
	var argLists [][]string
	index := map[string]int{}
	for _, tc := range cases {
		key := strings.Join(tc.args, " ")
		if _, ok := index[key]; !ok && !(tc.long && testing.Short()) {
			index[key] = len(argLists)
			argLists = append(argLists, tc.args)
		}
	}
	dirs := genFixtures(t, argLists...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.long && testing.Short() {
				t.Skip("-short")
			}
			checkParity(t, dirs[index[strings.Join(tc.args, " ")]], tc.cfg, tc.tape)
		})
	}
}

// TestParityCIFAR20Committed runs the committed CIFAR ResNet-20 fixture (no torch needed).
func TestParityCIFAR20Committed(t *testing.T) {
	checkParity(t, "testdata/cifar20", CIFARConfig(3), false)
}

// TestSafetensorsCheckpoint saves a torchvision-loaded network in the native format
// and loads it into a new network: same outputs as torch.
func TestSafetensorsCheckpoint(t *testing.T) {
	st, err := weights.LoadTorch("testdata/cifar20/model.pth")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(G.NewGraph(), CIFARConfig(3), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Load(st); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := weights.WriteSafetensors(filepath.Join(dir, "model.safetensors"), r.State(), map[string]string{"arch": "cifar20"}); err != nil {
		t.Fatal(err)
	}
	native, _, err := weights.ReadSafetensors(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range st.Names() {
		if strings.HasSuffix(name, "num_batches_tracked") {
			if _, ok := native[name]; ok {
				t.Errorf("%s written", name)
			}
			continue
		}
		got, err := native.Get(name, st[name].Shape...)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range st[name].Data {
			if got.Data[i] != v {
				t.Fatalf("%s[%d] = %v, want %v", name, i, got.Data[i], v)
			}
		}
	}
	io, _, err := weights.ReadSafetensors("testdata/cifar20/io.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	g := G.NewGraph()
	r2, err := New(g, CIFARConfig(3), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Load(native); err != nil {
		t.Fatal(err)
	}
	logits, err := r2.Logits(input(g, io["input"]))
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.NewExecutor(g, logits)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Run(); err != nil {
		t.Fatal(err)
	}
	checkRelErr(t, "logits after the safetensors round trip", values(t, logits), io["logits"].Data)
}
