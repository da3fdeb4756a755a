package ops

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"

	"resdet/internal/testutil"
	"resdet/nn"
)

// TestRoIAlignStep checks RoIAlignOpts.Step on every RoIAlign op (NCHW,
// float32 blocked, bf16 chain, two levels) against the same op without
// it: the output with Step s must be the full output's bins (s*i, s*j),
// bit for bit, and the map's gradient for an output gradient gy must be
// the full op's gradient for gy placed at those bins with zeros elsewhere,
// bit for bit. Cases: the C4 head's 14x14 with step 2, an odd size whose
// last bin is not the grid's (7 by 3), a non-square grid, aligned and
// adaptive sampling, fixed sampling, and two images.
func TestRoIAlignStep(t *testing.T) {
	type build func(f, r *G.Node, o RoIAlignOpts) (*G.Node, error)
	blocked := func(b build) build {
		return func(f, r *G.Node, o RoIAlignOpts) (*G.Node, error) {
			y, err := b(f, r, o)
			if err != nil {
				return nil, err
			}
			return nn.FromBlocked(y)
		}
	}
	// Two levels: the RoIs alternate between the map and its 2x
	// subsampled copy.
	twoLevels := func(t *testing.T, o RoIAlignOpts, feat []float32, shape []int, rois, gy []float32) ([]float32, []float32) {
		n, c, h, w := shape[0], shape[1], shape[2], shape[3]
		half := make([]float32, 0, n*c*(h/2)*(w/2))
		for p := range n * c {
			for y := 0; y < h/2*2; y += 2 {
				for x := 0; x < w/2*2; x += 2 {
					half = append(half, feat[(p*h+y)*w+x])
				}
			}
		}
		levels := make([]float32, len(rois)/5)
		for k := range levels {
			levels[k] = float32(k % 2)
		}
		scale := o.SpatialScale
		o.SpatialScale = 0
		y, grads := runMultiLevel(t, o, []float32{scale, scale / 2}, [][]float32{feat, half},
			[][]int{shape, {n, c, h / 2, w / 2}}, rois, levels, gy)
		return y, append(grads[0], grads[1]...)
	}
	ops := []struct {
		name string
		bf16 bool
		run  func(t *testing.T, o RoIAlignOpts, feat []float32, shape []int, rois, gy []float32) ([]float32, []float32)
	}{
		{"RoIAlign", false, single(RoIAlign)},
		{"RoIAlignBlocked", false, single(blocked(RoIAlignBlocked))},
		{"RoIAlignBF16", true, single(blocked(RoIAlignBF16))},
		{"MultiLevelRoIAlign", false, twoLevels},
	}
	cases := []struct {
		name       string
		n, c, h, w int
		k          int
		o          RoIAlignOpts
	}{
		{"c4 14x14 step 2", 1, 32, 21, 27, 13, RoIAlignOpts{OutH: 14, OutW: 14, SpatialScale: 0.125, Aligned: true, Step: 2}},
		{"7x7 step 3", 2, 16, 12, 16, 9, RoIAlignOpts{OutH: 7, OutW: 7, SpatialScale: 0.125, SamplingRatio: 2, Step: 3}},
		{"5x4 step 2", 1, 16, 10, 9, 8, RoIAlignOpts{OutH: 5, OutW: 4, SpatialScale: 0.125, Step: 2}},
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
				full := tc.o
				full.Step = 0
				s := tc.o.Step
				oh, ow := tc.o.OutSize()
				if want := [2]int{(tc.o.OutH + s - 1) / s, (tc.o.OutW + s - 1) / s}; [2]int{oh, ow} != want {
					t.Fatalf("OutSize %dx%d, want %v", oh, ow, want)
				}
				gy := make([]float32, tc.k*tc.c*oh*ow)
				gyFull := make([]float32, tc.k*tc.c*tc.o.OutH*tc.o.OutW)
				// at maps a stepped bin (plane p = k*C + c, row i, column j)
				// to its offset in the full output.
				at := func(p, i, j int) int { return (p*tc.o.OutH+s*i)*tc.o.OutW + s*j }
				for p := range tc.k * tc.c {
					for i := range oh {
						for j := range ow {
							v := float32(r.NormFloat64())
							gy[(p*oh+i)*ow+j] = v
							gyFull[at(p, i, j)] = v
						}
					}
				}
				y, grad := op.run(t, tc.o, feat, shape, rois, gy)
				yFull, gradFull := op.run(t, full, feat, shape, rois, gyFull)
				if len(y) != len(gy) {
					t.Fatalf("%d outputs, want %d", len(y), len(gy))
				}
				nonzero := 0
				for p := range tc.k * tc.c {
					for i := range oh {
						for j := range ow {
							got, want := y[(p*oh+i)*ow+j], yFull[at(p, i, j)]
							if math.Float32bits(got) != math.Float32bits(want) {
								t.Fatalf("plane %d bin (%d, %d): %g, full output's bin (%d, %d) %g", p, i, j, got, s*i, s*j, want)
							}
							if got != 0 {
								nonzero++
							}
						}
					}
				}
				if nonzero < len(y)/5 { // many RoIs are partly or wholly off the map
					t.Errorf("only %d of %d outputs are not zero", nonzero, len(y))
				}
				nonzero = 0
				for i := range grad {
					if math.Float32bits(grad[i]) != math.Float32bits(gradFull[i]) {
						t.Fatalf("gradient %d: %g, full op's %g", i, grad[i], gradFull[i])
					}
					if grad[i] != 0 {
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

// single runs a one-map RoIAlign op (build) forward and backward.
func single(b func(f, r *G.Node, o RoIAlignOpts) (*G.Node, error)) func(t *testing.T, o RoIAlignOpts, feat []float32, shape []int, rois, gy []float32) ([]float32, []float32) {
	return func(t *testing.T, o RoIAlignOpts, feat []float32, shape []int, rois, gy []float32) ([]float32, []float32) {
		return runRoI(t, func(f, r *G.Node) (*G.Node, error) { return b(f, r, o) }, feat, shape, rois, gy)
	}
}

// TestRoIAlignStepErrors: a negative Step, and a zero output size (which
// (OutH-1)/Step+1 would round up to one bin), are errors naming the field.
func TestRoIAlignStepErrors(t *testing.T) {
	g := G.NewGraph()
	f := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 16, 4, 4), G.WithName("f"))
	r := G.NewMatrix(g, G.Float32, G.WithShape(3, 5), G.WithName("rois"))
	for _, tc := range []struct {
		o    RoIAlignOpts
		want string
	}{
		{RoIAlignOpts{OutH: 2, OutW: 2, SpatialScale: 1, Step: -1}, "Step = -1"},
		{RoIAlignOpts{OutH: 0, OutW: 2, SpatialScale: 1, Step: 2}, "output size 0x2"},
	} {
		for name, build := range map[string]func(f, r *G.Node, o RoIAlignOpts) (*G.Node, error){
			"RoIAlign": RoIAlign, "RoIAlignBlocked": RoIAlignBlocked, "RoIAlignBF16": RoIAlignBF16,
			"MultiLevelRoIAlign": func(f, r *G.Node, o RoIAlignOpts) (*G.Node, error) {
				o.SpatialScale = 0
				return MultiLevelRoIAlign(G.Nodes{f}, []float32{1}, r, G.NewVector(g, G.Float32, G.WithShape(3)), o)
			},
		} {
			_, err := build(f, r, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s %v: error %v, want one containing %q", name, tc.o, err, tc.want)
			}
		}
	}
}
