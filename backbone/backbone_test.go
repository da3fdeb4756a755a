package backbone

import (
	"math"
	"math/rand"
	"strings"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"

	"resdet/weights"
)

// numParams counts the learnable values of a state dict (running statistics excluded).
func numParams(s weights.State) int {
	n := 0
	for name, t := range s {
		if strings.HasSuffix(name, ".running_mean") || strings.HasSuffix(name, ".running_var") {
			continue
		}
		n += len(t.Data)
	}
	return n
}

func TestParameterCounts(t *testing.T) {
	// torchvision's documented parameter counts, and the paper's Table 6 for CIFAR
	// (given there to two significant digits).
	for _, tc := range []struct {
		name string
		cfg  Config
		want int
		tol  float64 // relative
	}{
		{name: "resnet18", cfg: DefaultConfig(18), want: 11689512},
		{name: "resnet34", cfg: DefaultConfig(34), want: 21797672},
		{name: "resnet50", cfg: DefaultConfig(50), want: 25557032},
		{name: "resnet101", cfg: DefaultConfig(101), want: 44549160},
		{name: "resnet152", cfg: DefaultConfig(152), want: 60192808},
		{name: "resnext50_32x4d", cfg: Config{Depth: 50, NumClasses: 1000, Groups: 32, WidthPerGroup: 4}, want: 25028904},
		{name: "resnext101_32x8d", cfg: Config{Depth: 101, NumClasses: 1000, Groups: 32, WidthPerGroup: 8}, want: 88791336},
		{name: "wide_resnet50_2", cfg: Config{Depth: 50, NumClasses: 1000, WidthPerGroup: 128}, want: 68883240},
		{name: "cifar20", cfg: CIFARConfig(3), want: 270000, tol: 0.02},
		{name: "cifar56", cfg: CIFARConfig(9), want: 850000, tol: 0.02},
		{name: "cifar110", cfg: CIFARConfig(18), want: 1700000, tol: 0.03},
		{name: "cifar1202", cfg: CIFARConfig(200), want: 19400000, tol: 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(G.NewGraph(), tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := numParams(r.State())
			if d := math.Abs(float64(got-tc.want)) / float64(tc.want); d > tc.tol {
				t.Errorf("%d parameters, want %d", got, tc.want)
			}
		})
	}
}

func TestOutputShapes(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want map[string]ShapeSpec
	}{
		{name: "resnet18", cfg: DefaultConfig(18), want: map[string]ShapeSpec{
			"stem": {64, 4}, "res2": {64, 4}, "res3": {128, 8}, "res4": {256, 16}, "res5": {512, 32}}},
		{name: "resnet101", cfg: DefaultConfig(101), want: map[string]ShapeSpec{
			"stem": {64, 4}, "res2": {256, 4}, "res3": {512, 8}, "res4": {1024, 16}, "res5": {2048, 32}}},
		{name: "cifar32", cfg: CIFARConfig(5), want: map[string]ShapeSpec{
			"stem": {16, 1}, "res2": {16, 1}, "res3": {32, 2}, "res4": {64, 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(G.NewGraph(), tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := r.OutputShapes()
			if len(got) != len(tc.want) {
				t.Errorf("outputs %v, want %v", got, tc.want)
			}
			for k, w := range tc.want {
				if got[k] != w {
					t.Errorf("%s: %+v, want %+v", k, got[k], w)
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "depth", cfg: Config{Depth: 42}, want: "unsupported depth 42"},
		{name: "cifar depth", cfg: Config{Depth: 21, CIFAR: true}, want: "6n+2"},
		{name: "shortcut", cfg: Config{Depth: 18, Shortcut: 7}, want: "shortcut"},
		{name: "classes", cfg: Config{Depth: 18, NumClasses: -1}, want: "NumClasses"},
		{name: "groups with basic blocks", cfg: Config{Depth: 18, Groups: 32}, want: "Bottleneck"},
		{name: "width with basic blocks", cfg: Config{Depth: 34, WidthPerGroup: 16}, want: "Bottleneck"},
		{name: "res2 channels with basic blocks", cfg: Config{Depth: 34, Res2OutChannels: 128}, want: "Bottleneck"},
		{name: "dilation with basic blocks", cfg: Config{Depth: 18, Res5Dilation: 2}, want: "Bottleneck"},
		{name: "cifar groups", cfg: Config{Depth: 20, CIFAR: true, Groups: 2}, want: "Bottleneck"},
		{name: "negative groups", cfg: Config{Depth: 50, Groups: -2}, want: "negative Groups"},
		{name: "negative res5 dilation", cfg: Config{Depth: 50, Res5Dilation: -1}, want: "negative"},
		{name: "first undilated without dilation", cfg: Config{Depth: 50, Res5FirstUndilated: true}, want: "Res5FirstUndilated"},
		{name: "eps zero and eps", cfg: Config{Depth: 50, BNEpsZero: true, BNEps: 1e-3}, want: "BNEpsZero"},
		{name: "negative eps", cfg: Config{Depth: 50, BNEps: -1e-5}, want: "BNEps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(G.NewGraph(), tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	src, err := New(G.NewGraph(), DefaultConfig(18), rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	good := src.State()
	mutate := func(f func(s weights.State)) weights.State {
		s := make(weights.State, len(good))
		for k, v := range good {
			s[k] = v
		}
		f(s)
		return s
	}
	for _, tc := range []struct {
		name  string
		cfg   Config
		state weights.State
		want  []string
	}{
		{name: "missing", cfg: DefaultConfig(18), state: mutate(func(s weights.State) { delete(s, "layer2.0.downsample.1.running_var") }),
			want: []string{`"layer2.0.downsample.1.running_var"`, "missing", "[128]"}},
		{name: "shape", cfg: DefaultConfig(18), state: mutate(func(s weights.State) {
			s["layer3.1.conv2.weight"] = weights.Tensor{Shape: []int{256, 256, 1, 1}, Data: make([]float32, 256*256)}
		}), want: []string{`"layer3.1.conv2.weight"`, "[256 256 1 1]", "[256 256 3 3]"}},
		{name: "wrong arch", cfg: DefaultConfig(34), state: good, want: []string{"layer1.2.conv1.weight", "missing"}},
		{name: "extra", cfg: DefaultConfig(18), state: mutate(func(s weights.State) { s["layer5.0.conv1.weight"] = s["conv1.weight"] }),
			want: []string{"unexpected", "layer5.0.conv1.weight"}},
		{name: "classes", cfg: Config{Depth: 18, NumClasses: 10}, state: good, want: []string{`"fc.weight"`, "[1000 512]", "[10 512]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(G.NewGraph(), tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = r.Load(tc.state)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
	t.Run("no classifier ignores fc", func(t *testing.T) {
		r, err := New(G.NewGraph(), Config{Depth: 18}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Load(good); err != nil {
			t.Fatal(err)
		}
		if got, want := r.State()["layer4.1.bn2.running_var"].Data[5], good["layer4.1.bn2.running_var"].Data[5]; got != want {
			t.Errorf("running_var not loaded: %v, want %v", got, want)
		}
	})
}

func TestLearnablesFreezeAt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		want     int      // number of learnable nodes
		has, not []string // names that must / must not be learnable
	}{
		// resnet18: conv1 + 8 blocks * 2 convs + 3 projections + fc (2) = 22 nodes.
		{name: "frozen BN, nothing frozen", cfg: DefaultConfig(18), want: 22, has: []string{"conv1.weight", "layer1.0.conv1.weight"}},
		{name: "freeze-at 2", cfg: Config{Depth: 18, NumClasses: 1000, FreezeAt: 2}, want: 22 - 1 - 4,
			has: []string{"layer2.0.conv1.weight"}, not: []string{"conv1.weight", "layer1.1.conv2.weight"}},
		{name: "trainable BN", cfg: Config{Depth: 18, NumClasses: 1000, Norm: TrainableBN}, want: 22 + 2*20,
			has: []string{"bn1.weight", "layer4.1.bn2.bias", "layer2.0.downsample.1.weight"}},
		{name: "cifar option A, no projections", cfg: CIFARConfig(3), want: 1 + 9*2 + 2, not: []string{"layer2.0.shortcut_a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(G.NewGraph(), tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, n := range r.Learnables() {
				got[n.Name()] = true
			}
			if len(got) != tc.want {
				t.Errorf("%d learnables, want %d", len(got), tc.want)
			}
			for _, n := range tc.has {
				if !got[n] {
					t.Errorf("%s is not learnable", n)
				}
			}
			for _, n := range tc.not {
				if got[n] {
					t.Errorf("%s is learnable", n)
				}
			}
		})
	}
}

func TestTopK(t *testing.T) {
	logits := []float32{1, 3, 2, 3, -1}
	got := TopK(logits, 3)
	// softmax by hand: exp(v - 3) / sum.
	sum := math.Exp(-2) + 1 + math.Exp(-1) + 1 + math.Exp(-4)
	want := []Class{{1, 3, float32(1 / sum)}, {3, 3, float32(1 / sum)}, {2, 2, float32(math.Exp(-1) / sum)}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Logit != want[i].Logit || math.Abs(float64(got[i].Prob-want[i].Prob)) > 1e-7 {
			t.Errorf("[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if n := len(TopK(logits, 10)); n != 5 {
		t.Errorf("k clamped to %d, want 5", n)
	}
}

// TestCIFAR1202Runs builds the deepest network of the paper (1202 layers, trainable BN
// in training mode as the paper trains it; with identity BN statistics the activations
// of 600 residual blocks would overflow) and runs it forward on a small batch.
// (Forward only: gorgonia's tape for the backward pass of 1202 layers takes over a
// minute to compile and run here; TestGradParity covers the backward path.)
func TestCIFAR1202Runs(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	rng := rand.New(rand.NewSource(2))
	g := G.NewGraph()
	cfg := CIFARConfig(200)
	cfg.Norm, cfg.Train = TrainableBN, true
	r, err := New(g, cfg, rng)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 2*3*32*32)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	logits, err := r.Logits(input(g, weights.Tensor{Shape: []int{2, 3, 32, 32}, Data: x}))
	if err != nil {
		t.Fatal(err)
	}
	if got := logits.Shape(); got[0] != 2 || got[1] != 10 {
		t.Fatalf("logits shape %v, want [2 10]", got)
	}
	if want := (1+200*3*2)*3 + 2; len(r.Learnables()) != want { // conv + BN gamma, beta; fc
		t.Errorf("%d learnables, want %d", len(r.Learnables()), want)
	}
	t0 := time.Now()
	m := G.NewTapeMachine(g)
	defer m.Close()
	t1 := time.Now()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	t.Logf("NewTapeMachine %v, run %v", t1.Sub(t0), time.Since(t1))
	var spread float64
	for i, v := range values(t, logits) {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("logits %v", values(t, logits))
		}
		spread = math.Max(spread, math.Abs(float64(v-values(t, logits)[i%10])))
	}
	if spread == 0 {
		t.Error("both images have the same logits")
	}
}

// TestInferenceState: an Inference network keeps only folded weights; State recovers
// the loaded ones.
func TestInferenceState(t *testing.T) {
	src, err := New(G.NewGraph(), Config{Depth: 50, NumClasses: 10}, rand.New(rand.NewSource(4)))
	if err != nil {
		t.Fatal(err)
	}
	want := src.State()
	// Random BN statistics, so that folding changes the weights.
	rng := rand.New(rand.NewSource(5))
	for name, tt := range want {
		if strings.HasSuffix(name, ".running_var") || strings.HasSuffix(name, "bn1.weight") {
			for i := range tt.Data {
				tt.Data[i] = 0.5 + rng.Float32()
			}
		}
	}
	r, err := New(G.NewGraph(), Config{Depth: 50, NumClasses: 10, Inference: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Load(want); err != nil {
		t.Fatal(err)
	}
	got := r.State()
	for name, w := range want {
		g, err := got.Get(name, w.Shape...)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range w.Data {
			if d := math.Abs(float64(g.Data[i] - v)); d > 1e-6*math.Max(1, math.Abs(float64(v))) {
				t.Fatalf("%s[%d] = %v, want %v", name, i, g.Data[i], v)
			}
		}
	}
}
