package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"testing"

	"resdet/checkpoint"
	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/inference"
	"resdet/internal/testutil"
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
// torchvision .pth) at VOC size (500x375 -> 800x600). It reports the peak
// RSS of the process (weights included; run it alone for that figure) and the
// CPU seconds per image (user+system, all threads):
//
//	RESDET_FRCNN_DIR=/tmp/frcnn go test ./cmd/detect -run '^$' -bench Detect/align -benchtime 5x
//
// The torchvision side: cmd/detect/testdata/bench_torchvision.py DIR.
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
	for _, op := range []string{detection.RoIOpAlign, detection.RoIOpPool} {
		b.Run(op, func(b *testing.B) {
			cfg := detection.DefaultConfig(fmt.Sprintf("r%d-c4", ref.Depth), nil)
			cfg.Transform.MinSize, cfg.Transform.MaxSize = sizes.MinSize, sizes.MaxSize
			cfg.RoIOp.Op = op
			m, err := checkpoint.LoadTorchvision(filepath.Join(dir, "model.pth"), cfg, detection.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			debug.FreeOSMemory() // the loaded state dict is garbage now
			tr := imageio.Transform{MinSize: cfg.Transform.MinSize, MaxSize: cfg.Transform.MaxSize, Norm: imageio.Normalization(cfg.Transform.Norm)}
			img := filepath.Join(dir, "image.png")
			if _, _, _, err := inference.DetectFile(m, tr, img, 50); err != nil { // warm-up: builds the graphs
				b.Fatal(err)
			}
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, _, err := inference.DetectFile(m, tr, img, 50); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric((cpuTime()-cpu0)/float64(b.N), "CPU-s/op")
			var ru syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
				b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MB")
			}
		})
	}
}

// cpuTime returns the process's user+system CPU seconds (less sensitive to
// other processes on a shared machine than wall time).
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
