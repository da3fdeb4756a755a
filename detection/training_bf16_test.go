package detection

import (
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"resdet/backbone"
	"resdet/internal/testutil"
	"resdet/nn"
)

// trainBF16OK skips (or fails with RESDET_REQUIRE_BF16=1) a test of bf16
// training on a CPU where nn.Precision.ResolveTraining refuses bf16.
func trainBF16OK(t *testing.T) {
	t.Helper()
	_, err := nn.PrecisionBF16.ResolveTraining()
	testutil.BF16(t, err)
}

// TestTrainerBF16Step runs one training step of a small R18-C4 detector
// and of R50-DC5 (whose box head is two bf16 linear layers; frozen BN,
// stem and res2 frozen, random weights) in fp32 and in bf16 on
// the same weights, images and sampling seed, and compares the four
// losses and every parameter's gradient. The step is made deterministic
// in its selections, so that only arithmetic differs: every anchor's
// proposal is kept (no NMS, top-N above the anchor count) and every RoI is
// sampled (PositiveFraction 1, BatchSizePerImage above the proposals).
//
// Tolerances: rounding each operand to bf16 (unit roundoff u = 2^-8)
// with independent errors makes a convolution's output off by about
// sqrt(2/3)*u ~ 3e-3 relative (L2) of itself; errors of independent
// roundings add in quadrature along the longest chain of bf16 passes P
// (forward from the image through the heads, back to the first trainable
// stage: about 37 for R18-C4, 100 for R50-DC5), so we expect about
// e = sqrt(P)*3e-3 on a gradient tensor, more where its sum cancels. The
// bounds: each loss within 5e-3 relative, the mean over the gradient
// tensors of |diff|_2/|g|_2 within 2e, the worst within 6e. Measured on
// AVX512-BF16 (random weights): R18-C4 losses within 4.2e-4, gradients
// mean 1.4e-2, worst 4.3e-2 (bounds 3.6e-2, 0.11); R50-DC5 losses within
// 1.4e-4, gradients mean 3.8e-2, worst 9.0e-2 (bounds 6e-2, 0.18). Since
// the bf16 chain also stores every convolution's output in bf16 (the
// residual stream included): R18-C4 losses within 1.0e-3, gradients mean
// 1.7e-2, worst 5.6e-2; R50-DC5 losses within 8.3e-5, gradients mean
// 4.9e-2, worst 0.12. A fp32 step on the same images with 1 % of their
// pixels redrawn must fail both gradient bounds.
func TestTrainerBF16Step(t *testing.T) {
	trainBF16OK(t)
	for _, tc := range []struct {
		arch   string
		passes int // bf16 passes on the longest chain (see above)
	}{
		{arch: "r18-c4", passes: 37},
		{arch: "r50-dc5", passes: 100},
	} {
		t.Run(tc.arch, func(t *testing.T) { testTrainerBF16Step(t, tc.arch, math.Sqrt(float64(tc.passes))*3e-3) })
	}
}

// testTrainerBF16Step is TestTrainerBF16Step on arch with the expected
// gradient error e.
func testTrainerBF16Step(t *testing.T, arch string, e float64) {
	cfg := DefaultConfig(arch, DefaultClassNames(3))
	if ArchDC5(arch) {
		// DC5's box head is fc1/fc2 (bf16 linear layers, forward and
		// backward) on res5 at stride 16.
		cfg.FCDim, cfg.ResNet.Res5Dilation = 64, 2
	}
	// 3 anchors per cell on at most 6x6 cells (96x96 padded at stride
	// 16): at most 108 proposals and 3 ground-truth boxes per image, all
	// kept, in 112 rows per image.
	cfg.RPN.Anchors = AnchorGenerator{Sizes: []float32{16, 32, 64}, AspectRatios: []float32{1}}
	cfg.RPN.PreNMSTopNTrain, cfg.RPN.PostNMSTopNTrain = 1000, 1000
	cfg.RPN.NMSThresh = 1
	cfg.RPN.BatchSizePerImage = 64
	cfg.RoIHeads.BatchSizePerImage = 112
	cfg.RoIHeads.PositiveFraction = 1
	cfg.RoIOp.Size = 7
	r := rand.New(rand.NewSource(5))
	batch := twoImageBatch(r)
	ref, err := NewTrainable(cfg, TrainBuild{Rng: rand.New(rand.NewSource(1)), Norm: backbone.FrozenBN, FreezeAt: 2})
	if err != nil {
		t.Fatal(err)
	}
	state := ref.State()
	ref.Close()
	// R50: the last BN of every bottleneck scaled to 0.1, so that random
	// weights keep the activations O(1) (as benchScaleLastBN).
	for name, t := range state {
		if strings.HasSuffix(name, ".bn3.weight") {
			for i := range t.Data {
				t.Data[i] = 0.1
			}
		}
	}

	step := func(p nn.Precision, batch []TrainImage) stepResult {
		m, err := NewTrainable(cfg, TrainBuild{Norm: backbone.FrozenBN, FreezeAt: 2, Precision: p})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Load(state); err != nil {
			t.Fatal(err)
		}
		tr := NewTrainer(m, TrainerConfig{})
		defer tr.Close()
		return runStep(t, tr, batch)
	}
	f32, b16 := step(nn.PrecisionFP32, batch), step(nn.PrecisionBF16, batch)
	if f32.rois != b16.rois {
		t.Fatalf("%d RoIs sampled in bf16, %d in fp32: the selections differ", b16.rois, f32.rois)
	}
	for _, l := range []struct {
		name      string
		got, want float64
	}{
		{"objectness", b16.losses.Objectness, f32.losses.Objectness},
		{"rpn box", b16.losses.RPNBoxReg, f32.losses.RPNBoxReg},
		{"classifier", b16.losses.Classifier, f32.losses.Classifier},
		{"box", b16.losses.BoxReg, f32.losses.BoxReg},
	} {
		rel := math.Abs(l.got-l.want) / math.Abs(l.want)
		t.Logf("loss %s: bf16 %.6g, fp32 %.6g (relative diff %.3g)", l.name, l.got, l.want, rel)
		if !(rel <= 5e-3) {
			t.Errorf("loss %s: bf16 %.6g, fp32 %.6g: relative diff %.3g > 5e-3", l.name, l.got, l.want, rel)
		}
	}
	// gradDiff returns the worst and mean relL2 over the tensors.
	gradDiff := func(got, want map[string][]float32) (worst, mean float64, worstName string) {
		n := 0
		for name, w := range want {
			rel := relL2(got[name], w)
			if math.IsNaN(rel) {
				continue // an all-zero gradient (no RoI reached it)
			}
			if rel >= worst {
				worst, worstName = rel, name
			}
			mean += rel
			n++
		}
		return worst, mean / float64(max(n, 1)), worstName
	}
	if len(f32.grads) < 20 {
		t.Fatalf("%d gradients: too few to compare", len(f32.grads))
	}
	worst, mean, name := gradDiff(b16.grads, f32.grads)
	t.Logf("%d gradient tensors: worst |diff|/|g| %.3g (%s), mean %.3g", len(f32.grads), worst, name, mean)
	if !(worst <= 6*e) || !(mean <= 2*e) || worst == 0 {
		t.Errorf("bf16 gradients vs fp32: worst %.3g (%s), mean %.3g; want worst in (0, %.3g], mean <= %.3g", worst, name, mean, 6*e, 2*e)
	}
	// The same boxes on images with 1 % of their pixels redrawn.
	noisy := slices.Clone(batch)
	for i := range noisy {
		noisy[i].Data = slices.Clone(batch[i].Data)
		for j := 0; j < len(noisy[i].Data); j += 100 {
			noisy[i].Data[j] = float32(r.NormFloat64())
		}
	}
	other := step(nn.PrecisionFP32, noisy)
	w, m, _ := gradDiff(other.grads, f32.grads)
	t.Logf("fp32 on the images with 1 %% of the pixels redrawn: worst %.3g, mean %.3g", w, m)
	if w <= 6*e || m <= 2*e {
		t.Errorf("a step on other images comes within a gradient bound: the check cannot fail")
	}
}

// relL2 returns |got-want|_2 / |want|_2 (NaN if want is zero).
func relL2(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		e := float64(got[i]) - float64(want[i])
		d += e * e
		m += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d / m)
}
