package nn

import (
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// naiveUpsample resizes x [n, c, h, w] to [n, c, oh, ow] with the exact rule
// src = floor(dst*in/out) and returns the output and, for the loss Σ y·w, the
// gradient.
func naiveUpsample(x, w []float32, n, c, h, wd, oh, ow int) (y, dx []float32) {
	y = make([]float32, n*c*oh*ow)
	dx = make([]float32, len(x))
	for q := 0; q < n*c; q++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				i := q*h*wd + (oy*h/oh)*wd + ox*wd/ow
				o := q*oh*ow + oy*ow + ox
				y[o] = x[i]
				dx[i] += w[o]
			}
		}
	}
	return y, dx
}

func TestUpsampleNearest(t *testing.T) {
	cases := []struct {
		name       string
		n, c, h, w int
		oh, ow     int
	}{
		{name: "x2", n: 2, c: 3, h: 4, w: 5, oh: 8, ow: 10},
		{name: "x2_rows_only", n: 1, c: 2, h: 3, w: 4, oh: 6, ow: 4},
		{name: "fpn_odd", n: 1, c: 3, h: 3, w: 4, oh: 5, ow: 7},
		{name: "x3", n: 1, c: 2, h: 2, w: 3, oh: 6, ow: 9},
		{name: "down", n: 1, c: 2, h: 7, w: 9, oh: 3, ow: 4},
		{name: "identity", n: 1, c: 2, h: 3, w: 5, oh: 3, ow: 5},
		{name: "one_pixel", n: 2, c: 1, h: 1, w: 1, oh: 3, ow: 2},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(40 + i)))
			x := randSlice(rng, tc.n*tc.c*tc.h*tc.w)
			lw := randSlice(rng, tc.n*tc.c*tc.oh*tc.ow)
			wantY, wantDx := naiveUpsample(x, lw, tc.n, tc.c, tc.h, tc.w, tc.oh, tc.ow)
			res := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return UpsampleNearest(in[0], tc.oh, tc.ow)
			}, []gradInput{{name: "x", shape: []int{tc.n, tc.c, tc.h, tc.w}, data: x}},
				gradCheckOpts{w: lw, eps: 1e-2})
			expectClose(t, "y", res.out, wantY, 0, 0)
			expectClose(t, "dx", res.grads[0], wantDx, 1e-6, 1e-6)
		})
	}
}

func TestNearestIndex(t *testing.T) {
	cases := []struct {
		name         string
		dst, in, out int
		want         int
	}{
		{name: "x2_even", dst: 6, in: 5, out: 10, want: 3},
		{name: "x2_odd", dst: 7, in: 5, out: 10, want: 3},
		{name: "identity", dst: 4, in: 5, out: 5, want: 4},
		{name: "fpn_3_to_5", dst: 4, in: 3, out: 5, want: 2},
		{name: "down_7_to_3", dst: 2, in: 7, out: 3, want: 4},
		// Values from torch 1.13 (F.interpolate on an arange): its float32
		// scale gives 0 where floor(41*2/82) = 1.
		{name: "torch_float32_2_to_82", dst: 41, in: 2, out: 82, want: 0},
		{name: "torch_float32_3_to_123", dst: 41, in: 3, out: 123, want: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := NearestIndex(tc.dst, tc.in, tc.out); got != tc.want {
				t.Errorf("NearestIndex(%d, %d, %d) = %d, want %d", tc.dst, tc.in, tc.out, got, tc.want)
			}
		})
	}
	// Every index is in range, and the map is non-decreasing.
	for in := 1; in <= 40; in++ {
		for out := 1; out <= 90; out++ {
			prev := 0
			for d := 0; d < out; d++ {
				s := NearestIndex(d, in, out)
				if s < prev || s >= in {
					t.Fatalf("NearestIndex(%d, %d, %d) = %d after %d: want non-decreasing in [0, %d)", d, in, out, s, prev, in)
				}
				prev = s
			}
		}
	}
}

func TestUpsampleNearestErrors(t *testing.T) {
	g := G.NewGraph()
	x4 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 3, 4), G.WithName("x4"))
	x3 := G.NewTensor(g, tensor.Float32, 3, G.WithShape(2, 3, 4), G.WithName("x3"))
	x64 := G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, 2, 3, 4), G.WithName("x64"))
	cases := []struct {
		name   string
		x      *G.Node
		oh, ow int
	}{
		{name: "nil", x: nil, oh: 2, ow: 2},
		{name: "3-D", x: x3, oh: 2, ow: 2},
		{name: "float64", x: x64, oh: 2, ow: 2},
		{name: "zero_height", x: x4, oh: 0, ow: 2},
		{name: "negative_width", x: x4, oh: 2, ow: -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := UpsampleNearest(tc.x, tc.oh, tc.ow); err == nil {
				t.Errorf("UpsampleNearest(%s, %d, %d) returned no error", tc.name, tc.oh, tc.ow)
			}
		})
	}
}

// TestResizeTorchParity compares UpsampleNearest and the LastLevelMaxPool
// pooling (MaxPool2d with kernel 1, stride 2) with torch on the inputs of
// testdata/gen_resize_fixtures.py: outputs and gradients of Σ out·w.
func TestResizeTorchParity(t *testing.T) {
	fx := genOpsFixtures(t, "gen_resize_fixtures.py")
	for _, name := range []string{"x2", "x2_fpn_odd", "same", "x3_mixed", "down", "one_pixel", "float32", "scale2"} {
		t.Run("upsample_"+name, func(t *testing.T) {
			c := fx.load(t, "upsample_"+name)
			size := c.get(t, "size")
			r := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return UpsampleNearest(in[0], int(size[0]), int(size[1]))
			}, []gradInput{{name: "x", shape: c.shapes["x"], data: c.get(t, "x")}},
				gradCheckOpts{w: c.get(t, "w"), skipNumeric: true})
			expectClose(t, "y", r.out, c.get(t, "y"), 0, 0)
			d, err := closeTo(r.grads[0], c.get(t, "dx"), 1e-6, 1e-6)
			if err != nil {
				t.Errorf("dx: %v", err)
			}
			t.Logf("dx: worst abs difference %.3g (bound 1e-6 + 1e-6 rel)", d)
		})
	}
	for _, name := range []string{"even", "odd", "one"} {
		t.Run("maxpool1x1s2_"+name, func(t *testing.T) {
			c := fx.load(t, "maxpool1x1s2_"+name)
			r := checkGrads(t, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return MaxPool2d(in[0], 1, 2, 0)
			}, []gradInput{{name: "x", shape: c.shapes["x"], data: c.get(t, "x")}},
				gradCheckOpts{w: c.get(t, "w")})
			expectClose(t, "y", r.out, c.get(t, "y"), 0, 0)
			expectClose(t, "dx", r.grads[0], c.get(t, "dx"), 0, 0)
		})
	}
}

// BenchmarkUpsampleNearest times the FPN's largest top-down step (P3's
// 100x152 grid to P2's 200x304, 256 channels) forward and backward.
func BenchmarkUpsampleNearest(b *testing.B) {
	const c, h, w = 256, 100, 152
	g := newUpGeom(tensor.Shape{1, c, h, w}, 2*h, 2*w)
	for _, dir := range []string{"forward", "backward"} {
		b.Run(dir, func(b *testing.B) {
			var op G.Op = &upsampleOp{g: g}
			in := tensorOf(make([]float32, c*h*w), 1, c, h, w)
			if dir == "backward" {
				op = &upsampleGradOp{g: g}
				in = tensorOf(make([]float32, c*4*h*w), 1, c, 2*h, 2*w)
			}
			pre := op.(G.UsePreallocDoer)
			out, err := op.Do(in)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(4 * c * h * w * 5))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := pre.UsePreallocDo(out, in); err != nil {
					b.Fatalf("%s: %v", dir, err)
				}
			}
		})
	}
}
