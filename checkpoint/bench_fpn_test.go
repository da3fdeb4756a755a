package checkpoint

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/internal/testutil"
	"resdet/nn"
)

// BenchmarkDetectFPN times one image through torchvision's
// fasterrcnn_resnet50_fpn (v1) as detect runs it: read the PNG, resize and
// normalise it (imageio, 640x480 -> 1066x800), Predict. The weights and the
// image come from testdata/gen_tv_fpn.py at 800/1333: $RESDET_TVFPN_DIR, or
// a folder generated here (needs torch, a few minutes). Besides ns/op it
// reports CPU-s/op (user+system, all threads), peak-RSS-MB (the process's
// VmHWM: run this benchmark alone in its process) and GFLOP/s (the
// convolution and matrix-multiply FLOPs of Predict's graphs over wall
// time, detection.FasterRCNN.PredictFLOPs):
//
//	go test ./checkpoint -run '^$' -bench DetectFPN -benchtime 3x
//
// The torchvision side is checkpoint/testdata/bench_tv_fpn.py DIR;
// scripts/bench_detect.py (make bench-detect) runs both and prints the
// ratios.
func BenchmarkDetectFPN(b *testing.B) { benchDetectFPN(b, nn.PrecisionFP32) }

// BenchmarkDetectFPNBF16 is BenchmarkDetectFPN in bf16 (Options.Precision;
// skipped on a CPU without bf16).
func BenchmarkDetectFPNBF16(b *testing.B) {
	testutil.BF16(b, nn.BF16Error())
	benchDetectFPN(b, nn.PrecisionBF16)
}

func benchDetectFPN(b *testing.B, p nn.Precision) {
	// go test calls a benchmark twice with -benchtime Nx (N = 1, then N):
	// collect the first call's detector so that this one reuses its memory
	// and the peak RSS is one detector's.
	runtime.GC()
	dir := os.Getenv("RESDET_TVFPN_DIR")
	if dir == "" {
		dir = b.TempDir()
		testutil.RunScript(b, "testdata/gen_tv_fpn.py", dir, "--arch", "v1", "--min-size", "800", "--max-size", "1333")
	}
	var ref fpnRef
	data, err := os.ReadFile(filepath.Join(dir, "ref.json"))
	if err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		b.Fatal(err)
	}
	cfg := detection.DefaultConfig(detection.ArchTVR50FPN, nil)
	cfg.Transform.MinSize, cfg.Transform.MaxSize = ref.MinSize, ref.MaxSize
	m, err := LoadTorchvision(filepath.Join(dir, "model.pth"), cfg, detection.Options{Precision: p})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	tr := imageio.Transform{MinSize: ref.MinSize, MaxSize: ref.MaxSize, Norm: imageio.Normalization(cfg.Transform.Norm)}
	path := filepath.Join(dir, ref.Images[0].File)
	once := func() {
		s, err := tr.Load(path, nil, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Predict(detection.Image{Data: s.Image.Data, W: s.Image.W, H: s.Image.H, OrigW: s.OrigW, OrigH: s.OrigH}); err != nil {
			b.Fatal(err)
		}
	}
	once() // builds the graphs
	b.ResetTimer()
	cpu0 := testutil.CPUSeconds()
	for i := 0; i < b.N; i++ {
		once()
	}
	b.StopTimer()
	testutil.ReportRun(b, cpu0, m.PredictFLOPs())
}
