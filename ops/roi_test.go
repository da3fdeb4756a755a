package ops

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/testutil"
)

type roiBuilder func(feat, rois *G.Node) (*G.Node, error)

// runRoI builds op on feat (a learnable input) and constant rois, runs it
// forward and backward with loss sum(y * gy), and returns y and dL/dfeat.
func runRoI(t *testing.T, build roiBuilder, feat []float32, featShape []int, rois []float32, gy []float32) (y, gfeat []float32) {
	t.Helper()
	g := G.NewGraph()
	f := G.NewTensor(g, tensor.Float32, 4, G.WithShape(featShape...), G.WithName("feat"),
		G.WithValue(tensor.New(tensor.WithShape(featShape...), tensor.WithBacking(append([]float32(nil), feat...)))))
	r := G.NewConstant(roiTensor(append([]float32(nil), rois...)), G.WithName("rois"))
	out, err := build(f, r)
	if err != nil {
		t.Fatal(err)
	}
	y, grads := forwardBackward(t, g, out, gy, f)
	return y, grads[0]
}

// forwardBackward runs graph g forward and backward with loss
// sum(out * gy) and returns out's value and dL/dx for each of xs.
func forwardBackward(t *testing.T, g *G.ExprGraph, out *G.Node, gy []float32, xs ...*G.Node) (y []float32, grads [][]float32) {
	t.Helper()
	gyN := G.NewConstant(tensor.New(tensor.WithShape(out.Shape()...), tensor.WithBacking(append([]float32(nil), gy...))), G.WithName("gy"))
	prod, err := G.HadamardProd(out, gyN)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := G.Sum(prod)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := G.Grad(loss, xs...); err != nil {
		t.Fatal(err)
	}
	var yv G.Value
	G.Read(out, &yv)
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		gv, err := x.Grad()
		if err != nil {
			t.Fatal(err)
		}
		grads = append(grads, append([]float32(nil), gv.Data().([]float32)...))
	}
	return append([]float32(nil), yv.Data().([]float32)...), grads
}

// maxAbsDiff returns max |a-b| and max |b|.
func maxAbsDiff(t *testing.T, what string, a, b []float32) (diff, scale float64) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d values, want %d", what, len(a), len(b))
	}
	for i := range a {
		diff = max(diff, math.Abs(float64(a[i])-float64(b[i])))
		scale = max(scale, math.Abs(float64(b[i])))
	}
	return diff, scale
}

func TestRoIAlignParity(t *testing.T) { testRoIAlignParity(t, fixtures.Load(t, "roi_align.json")) }
func TestRoIPoolParity(t *testing.T)  { testRoIPoolParity(t, fixtures.Load(t, "roi_pool.json")) }

// TestLargeParity compares with torchvision on C4-sized inputs generated
// at test time: RoIAlign/RoIPool of 200 RoIs on [2, 64, 38, 50].
func TestLargeParity(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := fixtures.Large(t)
	t.Run("RoIAlign", func(t *testing.T) { testRoIAlignParity(t, testutil.LoadFixture(t, dir, "roi_align.json")) })
	t.Run("RoIPool", func(t *testing.T) { testRoIPoolParity(t, testutil.LoadFixture(t, dir, "roi_pool.json")) })
}

func testRoIAlignParity(t *testing.T, cases map[string]testutil.FixtureCase) {
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			feat, fs := c.F32(t, "feat")
			rois, _ := c.F32(t, "rois")
			var scale float64
			var out []int
			var sr int
			var aligned bool
			c.Scalar(t, "scale", &scale)
			c.Scalar(t, "out", &out)
			c.Scalar(t, "sampling_ratio", &sr)
			c.Scalar(t, "aligned", &aligned)
			o := RoIAlignOpts{OutH: out[0], OutW: out[1], SpatialScale: float32(scale), SamplingRatio: sr, Aligned: aligned}
			gy, _ := c.F32(t, "grad_y")
			y, gf := runRoI(t, func(f, r *G.Node) (*G.Node, error) { return RoIAlign(f, r, o) }, feat, fs, rois, gy)
			wantY, _ := c.F32(t, "y")
			wantG, _ := c.F32(t, "grad_feat")
			dy, sy := maxAbsDiff(t, "forward", y, wantY)
			dg, sg := maxAbsDiff(t, "gradient", gf, wantG)
			t.Logf("max abs error: forward %.3g (bound 0, values up to %.3g), gradient %.3g (bound 1e-6, values up to %.3g)", dy, sy, dg, sg)
			if dy != 0 || dg > 1e-6 {
				t.Errorf("max abs error vs torchvision: forward %.3g (want exact), gradient %.3g", dy, dg)
			}
		})
	}
}

func testRoIPoolParity(t *testing.T, cases map[string]testutil.FixtureCase) {
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			feat, fs := c.F32(t, "feat")
			rois, _ := c.F32(t, "rois")
			var scale float64
			var out []int
			c.Scalar(t, "scale", &scale)
			c.Scalar(t, "out", &out)
			o := RoIPoolOpts{OutH: out[0], OutW: out[1], SpatialScale: float32(scale)}
			gy, _ := c.F32(t, "grad_y")
			y, gf := runRoI(t, func(f, r *G.Node) (*G.Node, error) { return RoIPool(f, r, o) }, feat, fs, rois, gy)
			wantY, _ := c.F32(t, "y")
			wantG, _ := c.F32(t, "grad_feat")
			dy, _ := maxAbsDiff(t, "forward", y, wantY)
			dg, _ := maxAbsDiff(t, "gradient", gf, wantG)
			t.Logf("max abs error: forward %.3g (bound 0), gradient %.3g (bound 1e-6)", dy, dg)
			if dy != 0 || dg > 1e-6 {
				t.Errorf("max abs error vs torchvision: forward %.3g (want exact), gradient %.3g", dy, dg)
			}
		})
	}
}

// randRoIs returns k RoIs over an image of iw x ih pixels, some partly or
// wholly outside and some degenerate, with batch indices below n.
// randRoIProblem returns a standard normal feature map of shape [N, C, H,
// W] and k RoIs (randRoIs) on the image it covers at scale.
func randRoIProblem(r *rand.Rand, shape []int, k int, scale float32) (feat, rois []float32) {
	feat = make([]float32, shape[0]*shape[1]*shape[2]*shape[3])
	for i := range feat {
		feat[i] = float32(r.NormFloat64())
	}
	return feat, randRoIs(r, k, shape[0], float32(shape[3])/scale, float32(shape[2])/scale)
}

func randRoIs(r *rand.Rand, k, n int, iw, ih float32) []float32 {
	out := make([]float32, 0, 5*k)
	for i := 0; i < k; i++ {
		x1 := r.Float32()*iw*1.4 - 0.2*iw
		y1 := r.Float32()*ih*1.4 - 0.2*ih
		w, h := r.Float32()*iw*0.7, r.Float32()*ih*0.7
		switch i % 7 {
		case 5:
			w = 0
		case 6:
			w = -w / 4
		}
		out = append(out, float32(r.Intn(n)), x1, y1, x1+w, y1+h)
	}
	return out
}

// The RoIAlign output is linear in feat, so central differences of
// L = sum(gy * y) are exact up to float32 rounding.
func TestRoIAlignGradientFiniteDifferences(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	for _, o := range []RoIAlignOpts{
		{OutH: 3, OutW: 4, SpatialScale: 0.5, SamplingRatio: 2},
		{OutH: 4, OutW: 3, SpatialScale: 0.25, SamplingRatio: 0, Aligned: true},
		{OutH: 2, OutW: 2, SpatialScale: 1, SamplingRatio: -1},
	} {
		t.Run(o.String(), func(t *testing.T) {
			g := roiGeom{N: 2, C: 3, H: 7, W: 9, K: 12, OH: o.OutH, OW: o.OutW}
			feat := make([]float32, g.N*g.C*g.H*g.W)
			for i := range feat {
				feat[i] = float32(r.NormFloat64())
			}
			rois := randRoIs(r, g.K, g.N, float32(g.W)/o.SpatialScale, float32(g.H)/o.SpatialScale)
			gy := make([]float32, g.K*g.C*g.OH*g.OW)
			for i := range gy {
				gy[i] = float32(r.NormFloat64())
			}
			loss := func(f []float32) float64 {
				y := make([]float32, len(gy))
				roiAlignForward(g, o, f, rois, y, nil, 1)
				var s float64
				for i := range y {
					s += float64(y[i]) * float64(gy[i])
				}
				return s
			}
			grad := make([]float32, len(feat))
			roiAlignBackward(g, o, rois, gy, grad, 1, nil)
			const eps = 0.25
			var worst float64
			nonzero := 0
			for i := range feat {
				f := append([]float32(nil), feat...)
				f[i] = feat[i] + eps
				lp := loss(f)
				f[i] = feat[i] - eps
				lm := loss(f)
				num := (lp - lm) / (2 * eps)
				worst = max(worst, math.Abs(num-float64(grad[i])))
				if grad[i] != 0 {
					nonzero++
				}
			}
			t.Logf("max |analytic - numeric| = %.3g over %d cells (%d with gradient)", worst, len(feat), nonzero)
			if worst > 1e-4 || nonzero == 0 {
				t.Errorf("gradient check failed: max error %.3g, %d nonzero", worst, nonzero)
			}
		})
	}
}

func TestRoIOpErrors(t *testing.T) {
	g := G.NewGraph()
	feat := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 5, 5), G.WithName("feat"))
	rois := G.NewMatrix(g, tensor.Float32, G.WithShape(3, 5), G.WithName("rois"))
	bad := G.NewMatrix(g, tensor.Float32, G.WithShape(3, 4), G.WithName("bad"))
	vec := G.NewTensor(g, tensor.Float32, 3, G.WithShape(2, 5, 5), G.WithName("vec"))
	tests := []struct {
		name  string
		build func() (*G.Node, error)
		want  string
	}{
		{"align rois [3 4]", func() (*G.Node, error) { return RoIAlign(feat, bad, DefaultRoIAlignOpts()) }, "[K, 5]"},
		{"align feat 3-D", func() (*G.Node, error) { return RoIAlign(vec, rois, DefaultRoIAlignOpts()) }, "[N, C, H, W]"},
		{"align zero output", func() (*G.Node, error) { return RoIAlign(feat, rois, RoIAlignOpts{SpatialScale: 1}) }, "output size"},
		{"align zero scale", func() (*G.Node, error) { return RoIAlign(feat, rois, RoIAlignOpts{OutH: 2, OutW: 2}) }, "spatial scale"},
		{"pool rois [3 4]", func() (*G.Node, error) { return RoIPool(feat, bad, DefaultRoIPoolOpts()) }, "[K, 5]"},
		{"pool zero scale", func() (*G.Node, error) { return RoIPool(feat, rois, RoIPoolOpts{OutH: 2, OutW: 2}) }, "spatial scale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.build()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestRoIOpRunErrors(t *testing.T) {
	feat := tensor.New(tensor.WithShape(1, 2, 5, 5), tensor.Of(tensor.Float32))
	g := roiGeom{N: 1, C: 2, H: 5, W: 5, K: 2, OH: 2, OW: 2}
	tests := []struct {
		name string
		rois []float32
		want string
	}{
		{"batch index out of range", []float32{0, 1, 1, 3, 3, 1, 1, 1, 3, 3}, "roi 1: batch index 1"},
		{"fractional batch index", []float32{0.5, 1, 1, 3, 3, 0, 1, 1, 3, 3}, "roi 0: batch index 0.5"},
		{"NaN coordinate", []float32{0, 1, 1, 3, 3, 0, 1, float32(math.NaN()), 3, 3}, "roi 1: value 2 is NaN"},
		{"infinite coordinate", []float32{0, 1, 1, float32(math.Inf(1)), 3, 0, 1, 1, 3, 3}, "roi 0: value 3 is +Inf"},
	}
	ops := []G.Op{
		roiOp{g: g, k: RoIAlignOpts{OutH: 2, OutW: 2, SpatialScale: 1}},
		roiOp{g: g, k: RoIPoolOpts{OutH: 2, OutW: 2, SpatialScale: 1}},
	}
	for _, tt := range tests {
		for _, op := range ops {
			t.Run(tt.name+"/"+strings.SplitN(op.String(), "{", 2)[0], func(t *testing.T) {
				_, err := op.Do(feat, roiTensor(tt.rois))
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("err = %v, want it to mention %q", err, tt.want)
				}
			})
		}
	}
}

func TestRoIAlignHugeRoI(t *testing.T) {
	g := roiGeom{N: 1, C: 1, H: 5, W: 5, K: 1, OH: 2, OW: 2}
	op := roiOp{g: g, k: RoIAlignOpts{OutH: 2, OutW: 2, SpatialScale: 1}}
	feat := tensor.New(tensor.WithShape(1, 1, 5, 5), tensor.Of(tensor.Float32))
	_, err := op.Do(feat, roiTensor([]float32{0, 0, 0, 1e9, 3}))
	if err == nil || !strings.Contains(err.Error(), "sampling grid") {
		t.Errorf("err = %v, want a sampling grid error", err)
	}
}

// FuzzRoIAlign runs both RoI ops on one arbitrary RoI: they must return an
// error or a finite result, never panic, and sampling points must stay on
// the map with weights summing to 1.
func FuzzRoIAlign(f *testing.F) {
	f.Add(float32(0), float32(0), float32(10), float32(10), float32(0.5), 0, false)
	f.Add(float32(-5), float32(3), float32(2), float32(-1), float32(1), 2, true)
	f.Add(float32(1e7), float32(-1e7), float32(3e7), float32(1), float32(0.0625), -1, false)
	f.Fuzz(func(t *testing.T, x1, y1, x2, y2, scale float32, sr int, aligned bool) {
		if !(scale > 0) || sr > 64 {
			return
		}
		g := roiGeom{N: 1, C: 2, H: 6, W: 7, K: 1, OH: 3, OW: 2}
		feat := make([]float32, 84)
		for i := range feat {
			feat[i] = float32(i%13) - 6
		}
		ft := tensor.New(tensor.WithShape(1, 2, 6, 7), tensor.WithBacking(feat))
		rois := roiTensor([]float32{0, x1, y1, x2, y2})
		o := RoIAlignOpts{OutH: 3, OutW: 2, SpatialScale: scale, SamplingRatio: sr, Aligned: aligned}
		ops := []G.Op{roiOp{g: g, k: o}, roiOp{g: g, k: RoIPoolOpts{OutH: 3, OutW: 2, SpatialScale: scale}}}
		for _, op := range ops {
			v, err := op.Do(ft, rois)
			if err != nil {
				continue
			}
			for _, y := range v.Data().([]float32) {
				if math.IsNaN(float64(y)) || y < -6 || y > 6 {
					t.Fatalf("%v: output %v out of the input's range", op, y)
				}
			}
		}
		if o.check("fuzz", rois.Data().([]float32), 1) != nil {
			return
		}
		p := o.plan(rois.Data().([]float32), g.H, g.W, nil)
		for _, s := range p.samples {
			if !s.ok {
				continue
			}
			var sum float32
			for j := range s.p {
				if s.p[j] < 0 || int(s.p[j]) >= g.H*g.W || s.w[j] < 0 || s.w[j] > 1 {
					t.Fatalf("sample %+v off the map", s)
				}
				sum += s.w[j]
			}
			if math.Abs(float64(sum)-1) > 1e-5 {
				t.Fatalf("sample %+v: weights sum to %v", s, sum)
			}
		}
	})
}

func TestRoIOpPrealloc(t *testing.T) {
	g := roiGeom{N: 1, C: 2, H: 5, W: 5, K: 1, OH: 2, OW: 2}
	op := roiOp{g: g, k: RoIAlignOpts{OutH: 2, OutW: 2, SpatialScale: 1, SamplingRatio: 1}}
	feat := tensor.New(tensor.WithShape(1, 2, 5, 5), tensor.WithBacking(make([]float32, 50)))
	feat.Data().([]float32)[0] = 4
	rois := roiTensor([]float32{0, 0, 0, 2, 2})
	right := tensor.New(tensor.WithShape(1, 2, 2, 2), tensor.Of(tensor.Float32))
	got, err := op.UsePreallocDo(right, feat, rois)
	if err != nil {
		t.Fatal(err)
	}
	if got != right {
		t.Error("a prealloc of the right shape was not used")
	}
	// Bin (0,0) samples cell (0.5, 0.5): weight 0.25 on cell (0,0) = 4.
	if v := right.Data().([]float32)[0]; v != 1 {
		t.Errorf("output[0] = %v, want 1", v)
	}
	wrong := tensor.New(tensor.WithShape(2, 2, 2, 1), tensor.Of(tensor.Float32))
	got, err = op.UsePreallocDo(wrong, feat, rois)
	if err != nil {
		t.Fatal(err)
	}
	if got == wrong || !got.Shape().Eq(tensor.Shape{1, 2, 2, 2}) {
		t.Errorf("a prealloc of the wrong shape was used: got shape %v", got.Shape())
	}
}

// Ops with different parameters must hash differently, or gorgonia merges
// their nodes.
func TestRoIOpHash(t *testing.T) {
	g := roiGeom{N: 1, C: 2, H: 5, W: 5, K: 1, OH: 2, OW: 2}
	base := RoIAlignOpts{OutH: 2, OutW: 2, SpatialScale: 1}
	variants := []G.Op{roiOp{g: g, k: base}}
	o := base
	o.Aligned = true
	variants = append(variants, roiOp{g: g, k: o})
	o = base
	o.SamplingRatio = 2
	variants = append(variants, roiOp{g: g, k: o})
	o = base
	o.SpatialScale = 0.5
	variants = append(variants, roiOp{g: g, k: o})
	g2 := g
	g2.H = 6
	variants = append(variants, roiOp{g: g2, k: base}, roiGradOp{g: g, k: base},
		roiOp{g: g, k: RoIPoolOpts{OutH: 2, OutW: 2, SpatialScale: 1}})
	seen := map[uint32]string{}
	for _, op := range variants {
		h := op.Hashcode()
		if prev, ok := seen[h]; ok {
			t.Errorf("%v and %v hash alike", prev, op)
		}
		seen[h] = op.String()
	}
}
