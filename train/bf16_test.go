package train

import (
	"context"
	"math"
	"os"
	"slices"
	"testing"

	"resdet/checkpoint"
	"resdet/detection"
	"resdet/internal/testutil"
	"resdet/nn"
)

// skipWithoutBF16Training skips (or fails with RESDET_REQUIRE_BF16=1) a
// test of bf16 training where the CPU has no bf16 instructions.
func skipWithoutBF16Training(t *testing.T) {
	t.Helper()
	_, err := nn.PrecisionBF16.ResolveTraining()
	testutil.BF16(t, err)
}

// TestBF16CheckpointsInterchangeable trains 2 iterations in bf16 and in
// fp32 and starts a run of the other precision from each one's
// model_final.safetensors (Config.Init): the detector built for it must
// hold exactly the file's float32 tensors (checkpoints carry no precision),
// and one iteration must train from them. Both files also load for
// inference in fp32 and in bf16.
func TestBF16CheckpointsInterchangeable(t *testing.T) {
	skipWithoutBF16Training(t)
	tv, _ := tinySynth(t, 6, 96)
	final := map[nn.Precision]string{}
	for _, p := range []nn.Precision{nn.PrecisionBF16, nn.PrecisionFP32} {
		cfg := tinyConfig(tv.Classes, 96, 2)
		cfg.Precision = p
		res, err := Run(context.Background(), cfg, Data{Train: tv}, Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatalf("%s run: %v", p, err)
		}
		final[p] = res.Final
	}
	for _, tc := range []struct{ from, to nn.Precision }{
		{from: nn.PrecisionBF16, to: nn.PrecisionFP32},
		{from: nn.PrecisionFP32, to: nn.PrecisionBF16},
	} {
		t.Run(string(tc.from)+"_to_"+string(tc.to), func(t *testing.T) {
			_, saved, err := checkpoint.Read(final[tc.from])
			if err != nil {
				t.Fatal(err)
			}
			cfg := tinyConfig(tv.Classes, 96, 1)
			cfg.Precision, cfg.Init = tc.to, final[tc.from]
			got := builtModel(t, cfg)
			n := 0
			for name, want := range saved {
				g, ok := got[name]
				if !ok {
					continue // e.g. BN batch counters the detector does not keep
				}
				n++
				if !slices.Equal(g.Shape, want.Shape) || !slices.Equal(g.Data, want.Data) {
					t.Errorf("%s: loaded %v differs from the %s file's %v", name, g.Shape, tc.from, want.Shape)
				}
			}
			if n < len(got)*9/10 {
				t.Fatalf("%d of the detector's %d tensors found in the file", n, len(got))
			}
			var loss float64
			if _, err := Run(context.Background(), cfg, Data{Train: tv}, Options{Dir: t.TempDir(), OnStep: func(_ int, l detection.Losses) {
				loss = l.Total()
			}}); err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(loss) || loss <= 0 {
				t.Errorf("%s step from the %s checkpoint: loss %v", tc.to, tc.from, loss)
			}
			for _, p := range []nn.Precision{nn.PrecisionFP32, nn.PrecisionBF16} {
				m, err := checkpoint.Load(final[tc.from], detection.Options{Precision: p})
				if err != nil {
					t.Fatalf("load the %s checkpoint for %s inference: %v", tc.from, p, err)
				}
				m.Close()
			}
		})
	}
}

// TestBF16TrainingLossFalls trains the tiny from-scratch detector
// (trainable BN) for 30 iterations in fp32 and in bf16 from the same
// weights and data order: the bf16 loss must fall as fp32's does. Each
// run's drop is the mean loss of its last 8 iterations over its first 8;
// fp32's must be below 0.85 (the run learns), and bf16's at most 0.1 above
// fp32's (the gap allows for the runs drifting apart once rounding changes
// the samples drawn from the proposals). RESDET_LONG=1 trains 60.
func TestBF16TrainingLossFalls(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two tiny detectors for 30 iterations each")
	}
	skipWithoutBF16Training(t)
	iters := 30
	if os.Getenv("RESDET_LONG") != "" {
		iters = 60
	}
	tv, _ := tinySynth(t, 8, 96)
	drop := map[nn.Precision]float64{}
	for _, p := range []nn.Precision{nn.PrecisionFP32, nn.PrecisionBF16} {
		cfg := tinyConfig(tv.Classes, 96, iters)
		cfg.Precision = p
		var losses []float64
		if _, err := Run(context.Background(), cfg, Data{Train: tv}, Options{Dir: t.TempDir(), OnStep: func(_ int, l detection.Losses) {
			losses = append(losses, l.Total())
		}}); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		mean := func(v []float64) float64 {
			s := 0.0
			for _, x := range v {
				s += x
			}
			return s / float64(len(v))
		}
		first, last := mean(losses[:8]), mean(losses[len(losses)-8:])
		drop[p] = last / first
		t.Logf("%s: mean loss of the first 8 iterations %.4f, last 8 %.4f (ratio %.3f)", p, first, last, drop[p])
	}
	if !(drop[nn.PrecisionFP32] < 0.85) {
		t.Fatalf("fp32 loss ratio %.3f: the run does not learn, nothing to compare", drop[nn.PrecisionFP32])
	}
	if !(drop[nn.PrecisionBF16] <= drop[nn.PrecisionFP32]+0.1) {
		t.Errorf("bf16 loss ratio %.3f, fp32 %.3f: want bf16 at most 0.1 above", drop[nn.PrecisionBF16], drop[nn.PrecisionFP32])
	}
}
