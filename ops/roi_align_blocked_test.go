package ops

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"

	"resdet/internal/testutil"
	"resdet/nn"
)

// TestRoIAlignBlockedLayouts checks RoIAlignBlocked and RoIAlignBF16
// against what they replace, nn.ToBlocked (resp. nn.ToBlockedBF16, oneDNN's
// rounding) of RoIAlign's NCHW output, all read back through
// nn.FromBlocked with loss sum(y * gy), on channel counts of one to three
// 16-channel blocks, aligned and not, fixed and adaptive sampling, one and
// two images. The values must be bit-identical to the reference and equal
// RoIAlign's output (rounded by nn.RoundBF16 for RoIAlignBF16, which must
// change most of them), and the gradients with respect to the map
// bit-identical to the reference's (the blocked gradient read as it is
// against its conversion to NCHW).
func TestRoIAlignBlockedLayouts(t *testing.T) {
	ops := []struct {
		name    string
		bf16    bool
		build   func(f, r *G.Node, o RoIAlignOpts) (*G.Node, error)
		toBlock func(*G.Node) (*G.Node, error)
	}{
		{"RoIAlignBlocked", false, RoIAlignBlocked, nn.ToBlocked},
		{"RoIAlignBF16", true, RoIAlignBF16, nn.ToBlockedBF16},
	}
	cases := []struct {
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
	for _, op := range ops {
		for _, tc := range cases {
			t.Run(op.name+"/"+tc.name, func(t *testing.T) {
				if op.bf16 {
					testutil.BF16(t, nn.BF16Error())
				}
				r := rand.New(rand.NewSource(int64(tc.k)))
				shape := []int{tc.n, tc.c, tc.h, tc.w}
				feat, rois := randRoIProblem(r, shape, tc.k, 0.125)
				gy := make([]float32, tc.k*tc.c*tc.out*tc.out)
				for i := range gy {
					gy[i] = float32(r.NormFloat64())
				}
				o := RoIAlignOpts{OutH: tc.out, OutW: tc.out, SpatialScale: 0.125, SamplingRatio: tc.sampling, Aligned: tc.aligned}
				direct := func(f, r *G.Node) (*G.Node, error) {
					y, err := op.build(f, r, o)
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
					if y, err = op.toBlock(y); err != nil {
						return nil, err
					}
					return nn.FromBlocked(y)
				}
				got, gotGrad := runRoI(t, direct, feat, shape, rois, gy)
				want, wantGrad := runRoI(t, viaReorder, feat, shape, rois, gy)
				plain, _ := runRoI(t, func(f, r *G.Node) (*G.Node, error) { return RoIAlign(f, r, o) }, feat, shape, rois, gy)
				rounded := 0
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("value %d: %s %g, RoIAlign then its conversion %g", i, op.name, got[i], want[i])
					}
					wantPlain := plain[i]
					if op.bf16 {
						wantPlain = math.Float32frombits(uint32(nn.RoundBF16(plain[i])) << 16)
					}
					if math.Float32bits(got[i]) != math.Float32bits(wantPlain) {
						t.Fatalf("value %d: %g, want %g (RoIAlign's %g)", i, got[i], wantPlain, plain[i])
					}
					if got[i] != plain[i] {
						rounded++
					}
				}
				if op.bf16 && rounded < len(got)/2 {
					t.Errorf("only %d of %d values changed by rounding to bf16", rounded, len(got))
				}
				nonzero := 0
				for i := range gotGrad {
					if math.Float32bits(gotGrad[i]) != math.Float32bits(wantGrad[i]) {
						t.Fatalf("gradient %d: %s %g, RoIAlign then its conversion %g", i, op.name, gotGrad[i], wantGrad[i])
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
}

func TestRoIAlignBlockedErrors(t *testing.T) {
	g := G.NewGraph()
	f := G.NewTensor(g, nn.BFloat16, 4, G.WithShape(1, 16, 4, 4), G.WithName("f16"))
	f24 := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 24, 4, 4), G.WithName("f24"))
	r := G.NewMatrix(g, G.Float32, G.WithShape(3, 5), G.WithName("rois"))
	o := RoIAlignOpts{OutH: 2, OutW: 2, SpatialScale: 1}
	for name, feat := range map[string]*G.Node{"bf16 map": f, "24 channels": f24} {
		for op, build := range map[string]func(f, r *G.Node, o RoIAlignOpts) (*G.Node, error){"RoIAlignBF16": RoIAlignBF16, "RoIAlignBlocked": RoIAlignBlocked} {
			if _, err := build(feat, r, o); err == nil {
				t.Errorf("%s %s: no error", op, name)
			} else {
				t.Logf("%s %s: %v", op, name, err)
			}
		}
	}
}
