package detection

import (
	"math/rand"
	"runtime"
	"testing"

	"resdet/internal/testutil"
	"resdet/nn"
)

// BenchmarkDetectD2C4 times Predict on Detectron2's R101-C4 construction
// (Detectron2Config, 80 classes, random weights) on one blank 1333x800
// input, the size Detectron2 gives a 4:3 photo (no padding), with its 1000
// proposals, in fp32. Besides ns/op it reports CPU-s/op (user+system, all
// threads), peak-RSS-MB (the process's VmHWM: run this benchmark alone in
// its process) and GFLOP/s (the convolution and matrix-multiply FLOPs of
// Predict's graphs over wall time, FasterRCNN.PredictFLOPs). The torch
// counterpart, built from plain torch/torchvision modules with the same
// construction, is testdata/bench_d2_c4.py; scripts/bench_detect.py (make
// bench-detect) runs both and prints the ratios:
//
//	go test ./detection -run '^$' -bench 'DetectD2C4$' -benchtime 1x
//	/usr/bin/python3 detection/testdata/bench_d2_c4.py --height 800 --width 1333 --iters 1
//
// BenchmarkDetectD2C4BF16 is the same in bf16 (Options.Precision; skipped
// on a CPU without bf16); its torch counterparts (--bf16: autocast;
// --channels-last: the layout oneDNN's brgconv and AMX kernels need, see
// nn.ConvOpts.BF16):
//
//	/usr/bin/python3 detection/testdata/bench_d2_c4.py --height 800 --width 1333 --iters 1 --bf16
//	/usr/bin/python3 detection/testdata/bench_d2_c4.py --height 800 --width 1333 --iters 1 --bf16 --channels-last
//
// ONEDNN_VERBOSE=1 prints the kernel of every oneDNN call (ours and torch's).
func BenchmarkDetectD2C4(b *testing.B) { benchD2C4(b, nn.PrecisionFP32) }

// BenchmarkDetectD2C4BF16 is BenchmarkDetectD2C4 in bf16.
func BenchmarkDetectD2C4BF16(b *testing.B) {
	testutil.BF16(b, nn.BF16Error())
	benchD2C4(b, nn.PrecisionBF16)
}

func benchD2C4(b *testing.B, p nn.Precision) {
	// go test calls a benchmark twice with -benchtime Nx (N = 1, then N):
	// collect the first call's detector so that this one reuses its memory
	// and the peak RSS is one detector's.
	runtime.GC()
	cfg := Detectron2Config("r101-c4", DefaultClassNames(80))
	m, err := New(cfg, Options{Rng: rand.New(rand.NewSource(1)), Precision: p})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	b.Logf("precision %s (%s); oneDNN ISA %s", m.Precision, m.Precision.Reason, nn.CPU().ISA)
	const w, h = 1333, 800
	// A blank image, as testdata/bench_d2_c4.py: the RPN keeps its 1000
	// proposals (on noise it kept a handful, leaving the box head, the
	// largest part of the work, out).
	img := Image{W: w, H: h, OrigW: w, OrigH: h, Data: make([]float32, 3*w*h)}
	if _, err := m.Predict(img); err != nil { // builds the graphs, converts the weights
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := testutil.CPUSeconds()
	for range b.N {
		if _, err := m.Predict(img); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	testutil.ReportRun(b, cpu0, m.PredictFLOPs())
}
