package ops

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"

	"resdet/internal/testutil"
	"resdet/nn"
)

// TestRoIAlignBF16 checks RoIAlignBF16 against what it replaces,
// nn.ToBlockedBF16 of RoIAlign's float32 output (oneDNN's rounding), both
// read back through nn.FromBlocked with loss sum(y * gy): the values must
// be bit-identical and equal nn.RoundBF16 of RoIAlign's output, and the
// gradients with respect to the map bit-identical too (the chain
// gradient's nChw<B>c -> NCHW conversion).
func TestRoIAlignBF16(t *testing.T) {
	testutil.BF16(t, nn.BF16Error())
	tests := []struct {
		name       string
		n, c, h, w int
		k, out     int
		sampling   int
		aligned    bool
	}{
		{"c4", 1, 32, 13, 17, 24, 7, 0, false},
		{"aligned two images", 2, 48, 9, 11, 15, 4, 2, true},
		{"few rois", 1, 16, 8, 8, 2, 5, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(int64(tc.k)))
			shape := []int{tc.n, tc.c, tc.h, tc.w}
			feat := make([]float32, tc.n*tc.c*tc.h*tc.w)
			for i := range feat {
				feat[i] = float32(r.NormFloat64())
			}
			rois := randRoIs(r, tc.k, tc.n, 8*float32(tc.w), 8*float32(tc.h))
			gy := make([]float32, tc.k*tc.c*tc.out*tc.out)
			for i := range gy {
				gy[i] = float32(r.NormFloat64())
			}
			o := RoIAlignOpts{OutH: tc.out, OutW: tc.out, SpatialScale: 0.125, SamplingRatio: tc.sampling, Aligned: tc.aligned}
			viaChain := func(f, r *G.Node) (*G.Node, error) {
				y, err := RoIAlignBF16(f, r, o)
				if err != nil {
					return nil, err
				}
				return nn.FromBlocked(y)
			}
			viaReorder := func(f, r *G.Node) (*G.Node, error) {
				y, err := RoIAlign(f, r, o)
				if err != nil {
					return nil, err
				}
				if y, err = nn.ToBlockedBF16(y); err != nil {
					return nil, err
				}
				return nn.FromBlocked(y)
			}
			got, gotGrad := runRoI(t, viaChain, feat, shape, rois, gy)
			want, wantGrad := runRoI(t, viaReorder, feat, shape, rois, gy)
			plain, _ := runRoI(t, func(f, r *G.Node) (*G.Node, error) { return RoIAlign(f, r, o) }, feat, shape, rois, gy)
			rounded := 0
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("value %d: RoIAlignBF16 %g, RoIAlign then ToBlockedBF16 %g", i, got[i], want[i])
				}
				if r := math.Float32frombits(uint32(nn.RoundBF16(plain[i])) << 16); got[i] != r {
					t.Fatalf("value %d: %g, want RoundBF16(%g) = %g", i, got[i], plain[i], r)
				}
				if got[i] != plain[i] {
					rounded++
				}
			}
			if rounded < len(got)/2 {
				t.Errorf("only %d of %d values changed by rounding to bf16", rounded, len(got))
			}
			nonzero := 0
			for i := range gotGrad {
				if math.Float32bits(gotGrad[i]) != math.Float32bits(wantGrad[i]) {
					t.Fatalf("gradient %d: RoIAlignBF16 %g, RoIAlign then ToBlockedBF16 %g", i, gotGrad[i], wantGrad[i])
				}
				if gotGrad[i] != 0 {
					nonzero++
				}
			}
			if nonzero == 0 {
				t.Errorf("the map's gradient is zero")
			}
		})
	}
}

func TestRoIAlignBF16Errors(t *testing.T) {
	g := G.NewGraph()
	f := G.NewTensor(g, nn.BFloat16, 4, G.WithShape(1, 16, 4, 4), G.WithName("f16"))
	f24 := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 24, 4, 4), G.WithName("f24"))
	r := G.NewMatrix(g, G.Float32, G.WithShape(3, 5), G.WithName("rois"))
	o := RoIAlignOpts{OutH: 2, OutW: 2, SpatialScale: 1}
	for name, feat := range map[string]*G.Node{"bf16 map": f, "24 channels": f24} {
		if _, err := RoIAlignBF16(feat, r, o); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
