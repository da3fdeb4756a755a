package ops

import (
	"math"
	"math/rand"
	"testing"
)

// TestAlignBinsEqualsNCHWKernel runs RoIAlign's channels-last forward pass
// (alignBins on a transposed map, results transposed back) and the NCHW
// kernel MultiLevelRoIAlign uses (alignChannels) on the same random maps
// and RoIs, aligned and not, fixed and adaptive sampling, channel counts
// that are not multiples of 4 or 16 and few RoIs (channel blocks split
// between goroutines): the outputs must be bit-identical.
func TestAlignBinsEqualsNCHWKernel(t *testing.T) {
	tests := []struct {
		name          string
		n, c, h, w, k int
		out, sampling int
		aligned       bool
	}{
		{"c4", 2, 64, 19, 25, 40, 14, 0, false},
		{"aligned", 1, 48, 13, 17, 30, 7, 0, true},
		{"odd channels", 1, 7, 9, 11, 25, 5, 2, false},
		{"one channel", 2, 1, 6, 6, 9, 3, 0, true},
		{"few rois", 1, 37, 10, 12, 2, 4, 3, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(int64(tc.c)))
			g := roiGeom{N: tc.n, C: tc.c, H: tc.h, W: tc.w, K: tc.k, OH: tc.out, OW: tc.out}
			o := RoIAlignOpts{OutH: tc.out, OutW: tc.out, SpatialScale: 0.25, SamplingRatio: tc.sampling, Aligned: tc.aligned}
			feat := make([]float32, g.N*g.C*g.H*g.W)
			for i := range feat {
				feat[i] = float32(r.NormFloat64())
			}
			rois := randRoIs(r, g.K, g.N, 4*float32(g.W), 4*float32(g.H))
			got := make([]float32, g.K*g.C*g.OH*g.OW)
			roiAlignForward(g, o, feat, rois, got, nil)
			want := make([]float32, len(got))
			hw, bins := g.H*g.W, g.OH*g.OW
			for k := 0; k < g.K; k++ {
				p := o.plan(rois[5*k:5*k+5], g.H, g.W, nil)
				alignChannels(&p, feat[p.batch*g.C*hw:(p.batch+1)*g.C*hw], want[k*g.C*bins:(k+1)*g.C*bins], hw, bins, 0, g.C)
			}
			nonzero := 0
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("value %d (roi %d, channel %d, bin %d): channels-last %g, NCHW kernel %g",
						i, i/(g.C*bins), i/bins%g.C, i%bins, got[i], want[i])
				}
				if got[i] != 0 {
					nonzero++
				}
			}
			if nonzero < len(got)/10 {
				t.Fatalf("only %d of %d values are nonzero: the RoIs miss the map", nonzero, len(got))
			}
		})
	}
}

// TestTranspose checks transpose on shapes around its 16x8 tiles, with row
// strides wider than the rows.
func TestTranspose(t *testing.T) {
	for _, s := range [][2]int{{1, 1}, {8, 16}, {9, 17}, {7, 15}, {24, 33}, {196, 1024}} {
		rows, cols := s[0], s[1]
		ss, ds := cols+3, rows+2
		src := make([]float32, rows*ss)
		for i := range src {
			src[i] = float32(i)
		}
		dst := make([]float32, cols*ds)
		for i := range dst {
			dst[i] = -1
		}
		transpose(dst, ds, src, ss, rows, cols)
		for j := 0; j < cols; j++ {
			for i := 0; i < ds; i++ {
				want := float32(-1)
				if i < rows {
					want = src[i*ss+j]
				}
				if dst[j*ds+i] != want {
					t.Fatalf("%dx%d: dst[%d][%d] = %g, want %g", rows, cols, j, i, dst[j*ds+i], want)
				}
			}
		}
	}
}

// TestDivide checks divide against float32 division, bit for bit, for the
// sample counts RoIAlign divides by (powers of two take a multiplication),
// on values from every binade, subnormals included.
func TestDivide(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	var xs []float32
	for e := -149; e < 128; e++ {
		xs = append(xs, float32(math.Ldexp(1, e)), float32(math.Ldexp(-1.75, e)), float32(math.Ldexp(1+0x1p-23, e)))
	}
	for range 1000 {
		xs = append(xs, math.Float32frombits(r.Uint32()&0x7f7fffff|r.Uint32()&0x80000000))
	}
	for count := 1; count <= 1<<12; count++ {
		if count > 64 && count&(count-1) != 0 {
			continue
		}
		v := make([]float32, len(xs))
		divide(v, xs, float32(count))
		for i, x := range xs {
			if want := x / float32(count); math.Float32bits(v[i]) != math.Float32bits(want) {
				t.Fatalf("divide(%g (bits %#08x), %d) = %g, want %g", x, math.Float32bits(x), count, v[i], want)
			}
		}
	}
}
