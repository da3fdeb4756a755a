package detection

import (
	"bufio"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"

	"resdet/box"
	"resdet/optim"
)

// BenchmarkTrainStepR101 times one training iteration (forward, backward,
// SGD step) of the paper's detector, ResNet-101 C4 with frozen BN, stem and
// res2 frozen, torchvision's sampling defaults (256 anchors, 512 RoIs per
// image), on one 600x800 image with three ground-truth boxes. It reports
// the peak resident memory of the process (VmHWM, MB). The torchvision
// side: scripts/bench_train_torchvision.py (same sizes, 2 threads).
func BenchmarkTrainStepR101(b *testing.B) {
	cfg := DefaultConfig("r101-c4", DefaultClassNames(20))
	m, err := NewTrainable(cfg, TrainBuild{Rng: rand.New(rand.NewSource(1)), FreezeAt: 2})
	if err != nil {
		b.Fatal(err)
	}
	tr := NewTrainer(m, TrainerConfig{})
	defer tr.Close()
	sgd, err := optim.NewSGD(tr.Params(), optim.DefaultSGDConfig())
	if err != nil {
		b.Fatal(err)
	}
	const w, h = 800, 600
	r := rand.New(rand.NewSource(2))
	img := TrainImage{Data: make([]float32, 3*w*h), W: w, H: h,
		Boxes:  []box.Box{{X1: 50, Y1: 60, X2: 300, Y2: 400}, {X1: 400, Y1: 100, X2: 700, Y2: 300}, {X1: 200, Y1: 350, X2: 450, Y2: 580}},
		Labels: []int{3, 7, 12}}
	for i := range img.Data {
		img.Data[i] = float32(r.NormFloat64())
	}
	step := func(i int) {
		if _, err := tr.Step([]TrainImage{img}, rand.New(rand.NewSource(int64(i)))); err != nil {
			b.Fatal(err)
		}
		if err := sgd.Step(1e-4); err != nil {
			b.Fatal(err)
		}
	}
	step(-1) // builds the graph
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step(i)
	}
	b.StopTimer()
	if hwm := vmHWM(); hwm > 0 {
		b.ReportMetric(hwm, "peakMB")
	}
}

// vmHWM returns the process's peak resident memory in MB (0 if unknown).
func vmHWM() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
