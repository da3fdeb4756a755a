package detection

import (
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkRoIAlignC4 times RoIAlign of 300 RoIs from a [1, 1024, 38, 63]
// map to 14x14 (adaptive sampling), forward and backward, on the RoIs that
// `gen_fixtures.py bench` also times torchvision with (2 threads).
func BenchmarkRoIAlignC4(b *testing.B) {
	cases := loadFixtureB(b, "bench_rois.json")
	rois := cases
	g := roiGeom{N: 1, C: 1024, H: 38, W: 63, K: len(rois) / 5, OH: 14, OW: 14}
	r := rand.New(rand.NewSource(1))
	feat := make([]float32, g.N*g.C*g.H*g.W)
	for i := range feat {
		feat[i] = float32(r.NormFloat64())
	}
	y := make([]float32, g.K*g.C*g.OH*g.OW)
	gf := make([]float32, len(feat))
	for i := range y {
		y[i] = 1
	}
	for _, aligned := range []bool{false, true} {
		o := DefaultRoIAlignOpts()
		o.Aligned = aligned
		b.Run(fmt.Sprintf("forward/aligned=%v", aligned), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				roiAlignForward(g, o, feat, rois, y)
			}
		})
		b.Run(fmt.Sprintf("backward/aligned=%v", aligned), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				roiAlignBackward(g, o, rois, y, gf)
			}
		})
	}
}

func BenchmarkRoIPoolC4(b *testing.B) {
	rois := loadFixtureB(b, "bench_rois.json")
	g := roiGeom{N: 1, C: 1024, H: 38, W: 63, K: len(rois) / 5, OH: 14, OW: 14}
	r := rand.New(rand.NewSource(1))
	feat := make([]float32, g.N*g.C*g.H*g.W)
	for i := range feat {
		feat[i] = float32(r.NormFloat64())
	}
	y := make([]float32, g.K*g.C*g.OH*g.OW)
	gf := make([]float32, len(feat))
	o := DefaultRoIPoolOpts()
	b.Run("forward", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			roiPoolForward(g, o, feat, rois, y)
		}
	})
	b.Run("backward", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			roiPoolBackward(g, o, feat, rois, y, gf)
		}
	})
}

// loadFixtureB reads the "rois" array of the first case of a fixture.
func loadFixtureB(b *testing.B, name string) []float32 {
	t := &testing.T{}
	cases := loadFixture(t, name)
	for _, c := range cases {
		v, _ := c.f32(t, "rois")
		if len(v) == 0 {
			b.Fatalf("%s: no rois", name)
		}
		return v
	}
	b.Fatalf("%s: no cases", name)
	return nil
}
