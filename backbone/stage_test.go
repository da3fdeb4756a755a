package backbone

import (
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/testutil"
	"resdet/nn"
)

// TestForwardMeanBlocked runs a frozen-BN res5 stage (the C4 box head) on
// NCHW input (ForwardMean) and on the same input converted to its blocked
// layout first (nn.ToBlocked, then ForwardMeanBlocked): the features must
// be the same bits. It also checks the layouts each method refuses.
func TestForwardMeanBlocked(t *testing.T) {
	g := G.NewGraph()
	r, err := New(g, Config{Depth: 18}, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	res5 := r.Res5()
	if !res5.Blocked() || res5.BF16Chain() {
		t.Fatalf("res5 of a frozen-BN fp32 ResNet-18: blocked %v, bf16 chain %v; want true, false", res5.Blocked(), res5.BF16Chain())
	}
	rng := rand.New(rand.NewSource(2))
	data := make([]float32, 3*r.C4Out().Channels*7*7)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(3, r.C4Out().Channels, 7, 7), G.WithName("pooled"),
		G.WithValue(tensor.New(tensor.WithShape(3, r.C4Out().Channels, 7, 7), tensor.WithBacking(data))))
	plain, err := res5.ForwardMean(x)
	if err != nil {
		t.Fatal(err)
	}
	xb, err := nn.ToBlocked(x)
	if err != nil {
		t.Fatal(err)
	}
	blocked, err := res5.ForwardMeanBlocked(xb)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.NewExecutor(g, plain, blocked)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Run(); err != nil {
		t.Fatal(err)
	}
	a, b := values(t, plain), values(t, blocked)
	nonzero := 0
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("feature %d: ForwardMean %g, ForwardMeanBlocked %g", i, a[i], b[i])
		}
		if a[i] != 0 {
			nonzero++
		}
	}
	if nonzero < len(a)/4 {
		t.Fatalf("only %d of %d features are nonzero", nonzero, len(a))
	}

	// Refused layouts: a bf16 value to either method of an fp32 stage, and
	// blocked input to a stage that runs on NCHW (trainable BN).
	bf16, err := nn.ToBlockedBF16(x)
	if err == nil {
		for name, f := range map[string]func(*G.Node) (*G.Node, error){"ForwardMean": res5.ForwardMean, "ForwardMeanBlocked": res5.ForwardMeanBlocked} {
			if _, err := f(bf16); err == nil || !strings.Contains(err.Error(), "is bf16") {
				t.Errorf("%s on a bf16 value: error %v, want one naming the dtype", name, err)
			}
		}
	}
	g2 := G.NewGraph()
	tr, err := New(g2, Config{Depth: 18, Norm: TrainableBN}, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Res5().Blocked() {
		t.Fatal("res5 with trainable BN reports the blocked layout")
	}
	x2 := G.NewTensor(g2, tensor.Float32, 4, G.WithShape(1, r.C4Out().Channels, 7, 7), G.WithName("x2"))
	if _, err := tr.Res5().ForwardMeanBlocked(x2); err == nil || !strings.Contains(err.Error(), "NCHW") {
		t.Errorf("ForwardMeanBlocked on an NCHW stage: error %v, want one saying it runs on NCHW", err)
	}
}

// TestForwardMeanStrided runs res5 of Detectron2's construction (stride on
// the 1x1, InputStride 2) on pooled features [3, C, 14, 14] and on the
// same features subsampled to their even rows and columns
// (StageInput.Strided), for every way the stage runs: folded inference
// (fp32 blocked, and bf16 chain where the CPU has bf16), frozen-BN
// training (blocked) and trainable BN (NCHW). The features and the
// gradients of sum(features * w) with respect to every learnable must
// agree (oneDNN's strided and unit-stride 1x1 kernels may add in different
// orders: within 1e-5 of the tensor's largest magnitude, 1e-2 in bf16, a bf16 ulp),
// the input's gradient at the positions given likewise, and the full
// input's gradient must be zero at the others. torchvision's construction
// (stride on the 3x3) has InputStride 1 and refuses a strided input.
func TestForwardMeanStrided(t *testing.T) {
	d2 := withBlocks(Config{Depth: 50, StrideIn1x1: true, WidthPerGroup: 16, Res2OutChannels: 64}, [4]int{1, 1, 1, 2})
	cases := []struct {
		name  string
		cfg   Config
		blk   bool // the input in the stage's blocked layout
		train bool
		tol   float64
	}{
		{"inference fp32 blocked", withInference(d2, false), true, false, 1e-5},
		{"inference fp32 NCHW input", withInference(d2, false), false, false, 1e-5},
		{"inference bf16 chain", withInference(d2, true), true, false, 1e-2},
		{"training frozen BN", withTrain(d2, FrozenBN), true, true, 1e-5},
		{"training trainable BN", withTrain(d2, TrainableBN), false, true, 1e-5},
	}
	const n, size = 3, 14
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.BF16 {
				testutil.BF16(t, nn.BF16Error())
			}
			rng := rand.New(rand.NewSource(3))
			// run builds the stage (seed 1: the same weights each time) on
			// x [n, C, h, w] and returns the features, the gradients of the
			// learnables (by name) and of x.
			run := func(data []float32, h, w int, strided bool) ([]float32, map[string][]float32, []float32) {
				g := G.NewGraph()
				r, err := New(g, tc.cfg, rand.New(rand.NewSource(1)))
				if err != nil {
					t.Fatal(err)
				}
				res5 := r.Res5()
				if s := res5.InputStride(); s != 2 {
					t.Fatalf("InputStride %d, want 2", s)
				}
				c := r.C4Out().Channels
				x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(n, c, h, w), G.WithName("pooled"),
					G.WithValue(tensor.New(tensor.WithShape(n, c, h, w), tensor.WithBacking(slices.Clone(data)))))
				in := x
				if tc.blk {
					if in, err = toBlocked(x, res5.BF16Chain()); err != nil {
						t.Fatal(err)
					}
				}
				y, err := res5.ForwardMeanFrom(in, StageInput{Blocked: tc.blk, Strided: strided})
				if err != nil {
					t.Fatal(err)
				}
				outs := G.Nodes{y}
				var params G.Nodes
				if tc.train {
					lw := make([]float32, y.Shape().TotalSize())
					wr := rand.New(rand.NewSource(4))
					for i := range lw {
						lw[i] = float32(wr.NormFloat64())
					}
					lwN := G.NewConstant(tensor.New(tensor.WithShape(y.Shape()...), tensor.WithBacking(lw)), G.WithName("w"))
					loss := G.Must(G.Sum(G.Must(G.HadamardProd(y, lwN))))
					params = append(res5.Learnables(), x)
					grads, err := G.Grad(loss, params...)
					if err != nil {
						t.Fatal(err)
					}
					outs = append(outs, grads...)
				}
				e, err := nn.NewExecutor(g, outs...)
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				if err := e.Run(); err != nil {
					t.Fatal(err)
				}
				gp := map[string][]float32{}
				var gx []float32
				for i, p := range params {
					if p == x {
						gx = values(t, outs[1+i])
					} else {
						gp[p.Name()] = values(t, outs[1+i])
					}
				}
				return values(t, y), gp, gx
			}
			// The full input, then its even rows and columns.
			r0, err := New(G.NewGraph(), tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := r0.C4Out().Channels
			var full []float32
			for range n * c * size * size {
				full = append(full, float32(rng.NormFloat64()))
			}
			const h2 = (size-1)/2 + 1
			sub := make([]float32, 0, n*c*h2*h2)
			for p := range n * c {
				for i := 0; i < size; i += 2 {
					for j := 0; j < size; j += 2 {
						sub = append(sub, full[(p*size+i)*size+j])
					}
				}
			}
			yf, gpf, gxf := run(full, size, size, false)
			ys, gps, gxs := run(sub, h2, h2, true)
			if e := testutil.MaxRelErr(ys, yf); !(e <= tc.tol) {
				t.Errorf("features: max relative error %.3g > %g", e, tc.tol)
			} else {
				t.Logf("features: max relative error %.3g", e)
			}
			if !tc.train {
				return
			}
			if len(gpf) < 7 || len(gpf) != len(gps) { // res5's seven convolutions at least
				t.Fatalf("%d parameter gradients, strided %d", len(gpf), len(gps))
			}
			worst := 0.0
			for name, want := range gpf {
				e := testutil.MaxRelErr(gps[name], want)
				if !(e <= tc.tol) {
					t.Errorf("gradient of %s: max relative error %.3g > %g", name, e, tc.tol)
				}
				worst = max(worst, e)
			}
			t.Logf("%d parameter gradients: worst max relative error %.3g", len(gpf), worst)
			even := make([]float32, 0, len(gxs))
			for p := range n * c {
				for i := range size {
					for j := range size {
						v := gxf[(p*size+i)*size+j]
						if i%2 == 0 && j%2 == 0 {
							even = append(even, v)
						} else if v != 0 {
							t.Fatalf("full input's gradient %g at (%d, %d), a position the block does not read", v, i, j)
						}
					}
				}
			}
			if e := testutil.MaxRelErr(gxs, even); !(e <= tc.tol) {
				t.Errorf("input gradient: max relative error %.3g > %g", e, tc.tol)
			} else {
				t.Logf("input gradient: max relative error %.3g", e)
			}
		})
	}

	tv, err := New(G.NewGraph(), withBlocks(Config{Depth: 50, WidthPerGroup: 16, Res2OutChannels: 64}, [4]int{1, 1, 1, 2}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := tv.Res5().InputStride(); s != 1 {
		t.Fatalf("torchvision's res5: InputStride %d, want 1", s)
	}
	x := G.NewTensor(tv.Res5().Blocks[0].convs[0].conv.w.node.Graph(), tensor.Float32, 4, G.WithShape(1, tv.C4Out().Channels, 7, 7), G.WithName("x"))
	if _, err := tv.Res5().ForwardMeanFrom(x, StageInput{Strided: true}); err == nil || !strings.Contains(err.Error(), "every position") {
		t.Errorf("strided input to torchvision's res5: error %v, want one saying it reads every position", err)
	}
}

// withInference returns cfg for folded inference (frozen BN), in bf16 if bf16.
func withInference(cfg Config, bf16 bool) Config {
	cfg.Inference, cfg.BF16 = true, bf16
	return cfg
}

// withTrain returns cfg for training with norm, every stage learnable.
func withTrain(cfg Config, norm Norm) Config {
	cfg.Train, cfg.Norm = true, norm
	return cfg
}
