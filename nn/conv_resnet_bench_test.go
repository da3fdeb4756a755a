package nn

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// convResNetGraph builds a ResNet-101 forward graph (frozen BN folded into
// the convolutions, torchvision v1.5 layout) from this package's ops for one
// image of h x w, up to layer4, random weights. With blocked, activations
// stay in the blocked layout from the stem to the end and are converted back once.
//
// With train, every convolution is a Conv2dBN whose weights are returned as
// learnables (scale and shift are constants, as frozen BN), the stem skips
// its input gradient, and max pooling is the NCHW MaxPool2d (which has a
// gradient), between FromBlocked and ToBlocked when blocked.
func convResNetGraph(b *testing.B, h, w int, blocked, bf16, train, constW bool) (*G.ExprGraph, *G.Node, G.Nodes, float64) {
	rng := rand.New(rand.NewSource(1))
	g := G.NewGraph()
	var flops float64
	var learn G.Nodes
	conv := func(x *G.Node, oc, k, s int, res *G.Node, relu bool) *G.Node {
		c := x.Shape()[1]
		wt := tensor.New(tensor.WithShape(oc, c, k, k), tensor.Of(tensor.Float32))
		wv := wt.Data().([]float32)
		std := math.Sqrt(2 / float64(c*k*k))
		for i := range wv {
			wv[i] = float32(rng.NormFloat64() * std)
		}
		// Unnamed input nodes of equal shape would be merged by gorgonia.
		id := len(learn) + int(flops) // unique per call
		wn := G.NewTensor(g, tensor.Float32, 4, G.WithShape(oc, c, k, k), G.WithValue(wt), G.WithName(fmt.Sprintf("w%d", id)))
		bn := G.NewTensor(g, tensor.Float32, 1, G.WithShape(oc), G.WithValue(convDense([]int{oc}, randSlice(rng, oc))),
			G.WithName(fmt.Sprintf("b%d", id)))
		o := ConvOpts{Stride: [2]int{s, s}, Pad: [2]int{k / 2, k / 2}, BF16: bf16,
			BlockedIn: blocked && c%convBlock == 0, BlockedOut: blocked, ConstWeights: constW}
		var y *G.Node
		var err error
		if train {
			o.NoInputGrad = x.Shape()[1] == 3
			scale := G.NewConstant(convDense([]int{oc}, randSlice(rng, oc)), G.WithName(fmt.Sprintf("s%d", id)))
			learn = append(learn, wn)
			y, err = Conv2dBN(x, wn, scale, bn, res, o, relu)
		} else {
			y, err = Conv2dFused(x, wn, bn, res, o, relu)
		}
		if err != nil {
			b.Fatal(err)
		}
		gm, _ := newConvGeom("bench", x.Shape(), []int{oc, c, k, k}, o)
		flops += gm.flops()
		return y
	}
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 3, h, w), G.WithName("image"),
		G.WithValue(convDense([]int{1, 3, h, w}, randSlice(rng, 3*h*w))))
	y := conv(x, 64, 7, 2, nil, true)
	switch {
	case blocked && !train:
		y = G.Must(MaxPool2dBlocked(y, 3, 2, 1))
	case blocked && train:
		y = G.Must(ToBlocked(G.Must(MaxPool2d(G.Must(FromBlocked(y)), 3, 2, 1))))
	default:
		y = G.Must(MaxPool2d(y, 3, 2, 1))
	}
	for _, st := range []struct{ planes, blocks, stride int }{{64, 3, 1}, {128, 4, 2}, {256, 23, 2}, {512, 3, 2}} {
		for i := 0; i < st.blocks; i++ {
			s := 1
			if i == 0 {
				s = st.stride
			}
			short := y
			if i == 0 {
				short = conv(y, 4*st.planes, 1, s, nil, false)
			}
			t := conv(y, st.planes, 1, 1, nil, true)
			t = conv(t, st.planes, 3, s, nil, true)
			y = conv(t, 4*st.planes, 1, 1, short, true)
		}
	}
	if blocked {
		y = G.Must(FromBlocked(y))
	}
	return g, y, learn, flops
}

// convRSS returns a memory figure of this process from /proc/self/status in
// bytes: "VmHWM:" (peak resident set) or "VmRSS:" (current).
func convRSS(field string) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkResNet101Forward runs a ResNet-101 forward pass (to layer4, frozen
// BN folded, batch 1, 600x1000) through the package's Executor. Variants:
// plain (NCHW between ops), blocked (blocked-layout chain), blocked_const (and
// ConstWeights: weights converted to oneDNN's layout once), and its bf16 form.
// peakRSS_MB is the process's high-water mark (VmHWM) during the timed runs
// (reset after building the graph and the first run; weights are resident);
// rssBeforeRuns_MB the RSS at that point; peakRSSBuild_MB the high-water mark
// before the reset (graph building with random weights and the first run). Run one variant per process for a
// clean figure, e.g. -bench 'ResNet101Forward/blocked$'.
// Torch 1.13 (2 threads): 1.06 s, 0.73 GB.
func BenchmarkResNet101Forward(b *testing.B) {
	for _, mode := range []string{"plain", "blocked", "blocked_const", "blocked_const_bf16"} {
		b.Run(mode, func(b *testing.B) {
			if strings.HasSuffix(mode, "bf16") {
				convSkipWithoutBF16(b)
			}
			defer ReleaseConvBuffers()
			g, y, _, flops := convResNetGraph(b, 600, 1000, strings.HasPrefix(mode, "blocked"), strings.HasSuffix(mode, "bf16"),
				false, strings.Contains(mode, "const"))
			e, err := NewExecutor(g, y)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			if err := e.Run(); err != nil {
				b.Fatal(err)
			}
			debug.FreeOSMemory()
			rssBefore := convRSS("VmRSS:")
			hwmBuild := convRSS("VmHWM:")
			// Reset the high-water mark to the current RSS (Linux clear_refs).
			_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := e.Run(); err != nil {
					b.Fatal(err)
				}
			}
			convReportGFLOPs(b, flops, start)
			st := e.Stats()
			b.ReportMetric(float64(st.PeakLiveBytes)/1e6, "liveMB")
			b.ReportMetric(float64(st.PoolBytes)/1e6, "poolMB")
			b.ReportMetric(float64(dnnlArenaBytes())/1e6, "arenaMB")
			b.ReportMetric(float64(rssBefore)/1e6, "rssBeforeRuns_MB")
			b.ReportMetric(float64(hwmBuild)/1e6, "peakRSSBuild_MB")
			b.ReportMetric(float64(convRSS("VmHWM:"))/1e6, "peakRSS_MB")
		})
	}
}

// BenchmarkResNet101TrainStep runs forward and backward (gradients of
// sum(layer4 output) w.r.t. every convolution weight; frozen BN; the image
// gets no gradient) of ResNet-101 at 600x1000 through gorgonia's
// TapeMachine (plain, blocked; gradients accumulate across runs, no solver
// here) or through this package's Executor (blocked_exec), which runs the
// gradient nodes as ordinary graph nodes and recycles intermediates. GFLOP/s counts 3x the forward FLOPs (the stem's backward-data is
// skipped). Torch 1.13 (2 threads): 2.74 s, 2.4 GB.
func BenchmarkResNet101TrainStep(b *testing.B) {
	for _, mode := range []string{"plain", "blocked", "blocked_exec"} {
		b.Run(mode, func(b *testing.B) {
			g, y, learn, flops := convResNetGraph(b, 600, 1000, strings.HasPrefix(mode, "blocked"), false, true, false)
			cost, err := G.Sum(y)
			if err != nil {
				b.Fatal(err)
			}
			grads, err := G.Grad(cost, learn...)
			if err != nil {
				b.Fatal(err)
			}
			var run func() error
			if strings.HasSuffix(mode, "_exec") {
				// The package's Executor runs the gradient nodes too and
				// recycles every intermediate after its last use.
				e, err := NewExecutor(g, append(G.Nodes{cost}, grads...)...)
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				run = e.Run
			} else {
				m := G.NewTapeMachine(g)
				defer m.Close()
				run = func() error {
					m.Reset()
					return m.RunAll()
				}
			}
			if err := run(); err != nil {
				b.Fatal(err)
			}
			hwmBuild := convRSS("VmHWM:")
			_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := run(); err != nil {
					b.Fatal(err)
				}
			}
			convReportGFLOPs(b, 3*flops, start)
			b.ReportMetric(float64(hwmBuild)/1e6, "peakRSSFirstRun_MB")
			b.ReportMetric(float64(convRSS("VmHWM:"))/1e6, "peakRSS_MB")
		})
	}
}
