package ops

import (
	"fmt"
	"math/rand"
	"syscall"
	"testing"
	"time"
)

// reportCPU reports the process CPU time (user + system, all threads) per
// op as cpu-ms/op: on a shared machine it is steadier than wall time. Use as
// defer reportCPU(b)().
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRoIAlignC4 times RoIAlign of 300 RoIs from a [1, 1024, 38, 63]
// map to 14x14 (adaptive sampling), forward (float32 NCHW, and
// RoIAlignBF16's bf16 chain output) and backward, on the RoIs that
// `/usr/bin/python3 testdata/gen_fixtures.py bench DIR` also times
// torchvision with (2 threads; its roi_align kernels are single-threaded).
func BenchmarkRoIAlignC4(b *testing.B) {
	g, rois, feat, y, gf := benchC4(b)
	for i := range y {
		y[i] = 1
	}
	for _, aligned := range []bool{false, true} {
		o := DefaultRoIAlignOpts()
		o.Aligned = aligned
		b.Run(fmt.Sprintf("forward/aligned=%v", aligned), func(b *testing.B) {
			buf := new(scratch)
			defer reportCPU(b)()
			for i := 0; i < b.N; i++ {
				roiAlignForward(g, o, feat, rois, y, buf, 1)
			}
		})
		b.Run(fmt.Sprintf("forward-bf16/aligned=%v", aligned), func(b *testing.B) {
			y16 := make([]uint16, len(y))
			op := alignBlockedOp{g: g, o: o, bf16: true, block: 16, buf: new(scratch)}
			defer reportCPU(b)()
			for i := 0; i < b.N; i++ {
				op.forwardBF16(feat, rois, y16)
			}
		})
		b.Run(fmt.Sprintf("forward-blocked/aligned=%v", aligned), func(b *testing.B) {
			buf := new(scratch)
			defer reportCPU(b)()
			for i := 0; i < b.N; i++ {
				roiAlignForward(g, o, feat, rois, y, buf, 16)
			}
		})
		b.Run(fmt.Sprintf("backward/aligned=%v", aligned), func(b *testing.B) {
			buf := new(scratch)
			defer reportCPU(b)()
			for i := 0; i < b.N; i++ {
				roiAlignBackward(g, o, rois, y, gf, 1, buf)
			}
		})
		b.Run(fmt.Sprintf("backward-blocked/aligned=%v", aligned), func(b *testing.B) {
			// The bf16 head's gradient layout (nChw16c), as RoIAlignBF16's
			// gradient reads it; the values do not matter here.
			buf := new(scratch)
			defer reportCPU(b)()
			for i := 0; i < b.N; i++ {
				roiAlignBackward(g, o, rois, y, gf, 16, buf)
			}
		})
	}
}

func BenchmarkRoIPoolC4(b *testing.B) {
	g, rois, feat, y, gf := benchC4(b)
	o := DefaultRoIPoolOpts()
	roiPoolForward(g, o, feat, rois, y)
	gy := make([]float32, len(y))
	for i := range gy {
		gy[i] = 1
	}
	y2 := make([]float32, len(y))
	b.Run("forward", func(b *testing.B) {
		defer reportCPU(b)()
		for i := 0; i < b.N; i++ {
			roiPoolForward(g, o, feat, rois, y2)
		}
	})
	b.Run("backward", func(b *testing.B) {
		defer reportCPU(b)()
		for i := 0; i < b.N; i++ {
			roiPoolBackward(g, o, feat, rois, y, gy, gf)
		}
	})
}

// benchC4 returns the RoI benchmarks' geometry (300 RoIs of bench_rois.json
// on a [1, 1024, 38, 63] map, 14x14 output), the RoIs [K, 5], a seeded
// random feature map, and zeroed outputs y [K, 1024, 14, 14] and feature
// gradients gf (the map's size).
func benchC4(b *testing.B) (g roiGeom, rois, feat, y, gf []float32) {
	rois = loadFixtureB(b, "bench_rois.json")
	g = roiGeom{N: 1, C: 1024, H: 38, W: 63, K: len(rois) / 5, OH: 14, OW: 14}
	r := rand.New(rand.NewSource(1))
	feat = make([]float32, g.N*g.C*g.H*g.W)
	for i := range feat {
		feat[i] = float32(r.NormFloat64())
	}
	return g, rois, feat, make([]float32, g.K*g.C*g.OH*g.OW), make([]float32, len(feat))
}

// loadFixtureB reads the "rois" array of the first case of a fixture.
func loadFixtureB(b *testing.B, name string) []float32 {
	for _, c := range fixtures.Load(b, name) {
		v, _ := c.F32(b, "rois")
		return v
	}
	return nil
}
