package detection

import (
	"math/rand"
	"testing"

	"resdet/internal/testutil"
	"resdet/nn"
)

// BenchmarkDetectD2C4 times Predict on Detectron2's R101-C4 construction
// (Detectron2Config, 80 classes, random weights) on one 1333x800 input, the
// size Detectron2 gives a 4:3 photo (no padding), in fp32 and in bf16
// (Options.Precision; skipped on a CPU without bf16). The torch
// counterparts, built from plain torch/torchvision modules with the same
// construction (--bf16: autocast; --channels-last: the layout oneDNN's
// brgconv and AMX kernels need, see nn.ConvOpts.BF16):
//
//	go test ./detection -run '^$' -bench DetectD2C4 -benchtime 1x
//	/usr/bin/python3 detection/testdata/bench_d2_c4.py --height 800 --width 1333 --iters 1
//	/usr/bin/python3 detection/testdata/bench_d2_c4.py --height 800 --width 1333 --iters 1 --bf16
//	/usr/bin/python3 detection/testdata/bench_d2_c4.py --height 800 --width 1333 --iters 1 --bf16 --channels-last
//
// ONEDNN_VERBOSE=1 prints the kernel of every oneDNN call (ours and torch's).
func BenchmarkDetectD2C4(b *testing.B) {
	for _, p := range []nn.Precision{nn.PrecisionFP32, nn.PrecisionBF16} {
		b.Run(string(p), func(b *testing.B) {
			if p == nn.PrecisionBF16 {
				testutil.BF16(b, nn.BF16Error())
			}
			cfg := Detectron2Config("r101-c4", DefaultClassNames(80))
			m, err := New(cfg, Options{Rng: rand.New(rand.NewSource(1)), Precision: p})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			b.Logf("precision %s (%s); oneDNN ISA %s", m.Precision, m.Precision.Reason, nn.CPU().ISA)
			const w, h = 1333, 800
			img := Image{W: w, H: h, OrigW: w, OrigH: h, Data: make([]float32, 3*w*h)}
			rng := rand.New(rand.NewSource(2))
			for i := range img.Data {
				img.Data[i] = float32(rng.NormFloat64() * 50)
			}
			if _, err := m.Predict(img); err != nil { // builds the graphs, converts the weights
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := m.Predict(img); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
