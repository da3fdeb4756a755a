package ops

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// alignKernelCases are the maps and RoIs on which the channels-last
// kernels are compared with the NCHW ones: aligned and not, fixed and
// adaptive sampling (counts of 4 and 9, a power of two and not), channel
// counts that are not multiples of 4 or 16 (channel ranges split off the
// blocks of a blocked gradient) and few RoIs (channel blocks split
// between goroutines).
var alignKernelCases = []struct {
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
	{"sampling 3, 16 channels", 2, 16, 10, 12, 12, 4, 3, true},
}

// TestAlignBinsEqualsNCHWKernel runs RoIAlign's channels-last forward pass
// (alignBins on a transposed map, results transposed back) and the NCHW
// kernel MultiLevelRoIAlign uses (alignChannels) on the same random maps
// and RoIs, aligned and not, fixed and adaptive sampling, channel counts
// that are not multiples of 4 or 16 and few RoIs (channel blocks split
// between goroutines): the outputs must be bit-identical.
func TestAlignBinsEqualsNCHWKernel(t *testing.T) {
	for _, tc := range alignKernelCases {
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
			roiAlignForward(g, o, feat, rois, got, nil, 1)
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

// TestAlignBackwardEqualsNCHWKernel runs RoIAlign's channels-last backward
// pass (roiAlignBackward) and the NCHW kernel MultiLevelRoIAlign uses
// (alignBackwardChannels, one RoI after the other) on the same output
// gradients and RoIs: the feature gradients must be bit-identical, with the
// output gradient NCHW and in the blocked layouts of bf16 heads (nChw8c,
// nChw16c), and again on a second run with the same scratch.
func TestAlignBackwardEqualsNCHWKernel(t *testing.T) {
	for _, tc := range alignKernelCases {
		for _, block := range []int{1, 8, 16} {
			if tc.c%block != 0 {
				continue
			}
			t.Run(fmt.Sprintf("%s/block=%d", tc.name, block), func(t *testing.T) {
				r := rand.New(rand.NewSource(int64(tc.c + block)))
				g := roiGeom{N: tc.n, C: tc.c, H: tc.h, W: tc.w, K: tc.k, OH: tc.out, OW: tc.out}
				o := RoIAlignOpts{OutH: tc.out, OutW: tc.out, SpatialScale: 0.25, SamplingRatio: tc.sampling, Aligned: tc.aligned}
				rois := randRoIs(r, g.K, g.N, 4*float32(g.W), 4*float32(g.H))
				hw, bins := g.H*g.W, g.OH*g.OW
				gy := make([]float32, g.K*g.C*bins) // NCHW
				for i := range gy {
					gy[i] = float32(r.NormFloat64())
				}
				blocked := make([]float32, len(gy)) // nChw<block>c
				for k := range g.K {
					for c := range g.C {
						for bin := range bins {
							blocked[k*g.C*bins+(c/block*bins+bin)*block+c%block] = gy[(k*g.C+c)*bins+bin]
						}
					}
				}
				want := make([]float32, g.N*g.C*hw)
				for k := range g.K {
					p := o.plan(rois[5*k:5*k+5], g.H, g.W, nil)
					alignBackwardChannels(&p, gy[k*g.C*bins:(k+1)*g.C*bins], want[p.batch*g.C*hw:(p.batch+1)*g.C*hw], hw, bins, 0, g.C)
				}
				buf := new(scratch)
				for run := 1; run <= 2; run++ {
					got := make([]float32, len(want))
					for i := range got {
						got[i] = float32(r.NormFloat64()) // overwritten
					}
					roiAlignBackward(g, o, rois, blocked, got, block, buf)
					nonzero := 0
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("run %d: gradient %d (image %d, channel %d, cell %d): channels-last %g, NCHW kernel %g",
								run, i, i/(g.C*hw), i/hw%g.C, i%hw, got[i], want[i])
						}
						if got[i] != 0 {
							nonzero++
						}
					}
					if nonzero < len(got)/50 {
						t.Fatalf("only %d of %d gradients are nonzero: the RoIs miss the map", nonzero, len(got))
					}
				}
			})
		}
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
