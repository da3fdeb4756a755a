package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"resdet/checkpoint"
	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/inference"
	"resdet/internal/testutil"
	"resdet/nn"
)

// benchDir returns a directory written by detection/testdata/gen_fasterrcnn.py:
// $RESDET_FRCNN_DIR, or one generated here (ResNet-101 C4, 20 classes, a
// 500x375 image resized to 800x600; needs torch, a few minutes).
func benchDir(b *testing.B) string {
	if d := os.Getenv("RESDET_FRCNN_DIR"); d != "" {
		return d
	}
	d := b.TempDir()
	testutil.RunScript(b, "../../detection/testdata/gen_fasterrcnn.py", d, "--depth", "101", "--classes", "20",
		"--image", "500x375", "--min-size", "600", "--max-size", "1000", "--seed", "2")
	return d
}

// BenchmarkDetect times what detect does per image: read the PNG, normalise
// and resize it (imageio), and Predict, on issue 6's construction (a
// torchvision .pth) at VOC size (500x375 -> 800x600), or at the sizes of
// $RESDET_FRCNN_DIR's ref.json. Its cases: align and pool (the RoI op, fp32)
// and align-bf16 (detection.Options.Precision bf16; skipped on a CPU without
// bf16). It reports the peak RSS of the process (VmHWM, weights included;
// run one case alone for that figure), the CPU seconds per image
// (user+system, all threads) and GFLOP/s (Predict's convolution and linear
// FLOPs over wall time):
//
//	RESDET_FRCNN_DIR=/tmp/frcnn go test ./cmd/detect -run '^$' -bench 'Detect/align$' -benchtime 5x
//
// The torchvision side: cmd/detect/testdata/bench_torchvision.py DIR.
// scripts/bench_detect.py's r101_c4_800x1333 cases run both at 800x1333.
func BenchmarkDetect(b *testing.B) {
	dir := benchDir(b)
	var ref struct {
		Depth, Classes   int
		MinSize, MaxSize int `json:"-"`
	}
	var sizes struct {
		MinSize int `json:"min_size"`
		MaxSize int `json:"max_size"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "ref.json"))
	if err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(data, &sizes); err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name, op  string
		precision nn.Precision
	}{
		{"align", detection.RoIOpAlign, nn.PrecisionFP32},
		{"pool", detection.RoIOpPool, nn.PrecisionFP32},
		{"align-bf16", detection.RoIOpAlign, nn.PrecisionBF16},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if c.precision == nn.PrecisionBF16 {
				testutil.BF16(b, nn.BF16Error())
			}
			cfg := detection.DefaultConfig(fmt.Sprintf("r%d-c4", ref.Depth), nil)
			cfg.Transform.MinSize, cfg.Transform.MaxSize = sizes.MinSize, sizes.MaxSize
			cfg.RoIOp.Op = c.op
			m, err := checkpoint.LoadTorchvision(filepath.Join(dir, "model.pth"), cfg, detection.Options{Precision: c.precision})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			b.Logf("precision %s (%s); oneDNN ISA %s", m.Precision, m.Precision.Reason, nn.CPU().ISA)
			debug.FreeOSMemory() // the loaded state dict is garbage now
			tr := imageio.Transform{MinSize: cfg.Transform.MinSize, MaxSize: cfg.Transform.MaxSize, Norm: imageio.Normalization(cfg.Transform.Norm)}
			img := filepath.Join(dir, "image.png")
			if _, _, _, err := inference.DetectFile(m, tr, img, 50); err != nil { // warm-up: builds the graphs
				b.Fatal(err)
			}
			cpu0 := testutil.CPUSeconds()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, _, err := inference.DetectFile(m, tr, img, 50); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			testutil.ReportRun(b, cpu0, m.PredictFLOPs())
		})
	}
}
