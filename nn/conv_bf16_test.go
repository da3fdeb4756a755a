package nn

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// bf16Unit is bfloat16's unit roundoff: 8 significand bits (7 stored),
// round to nearest even, so a rounded value is v(1+e) with |e| <= 2^-8.
const bf16Unit = 1.0 / 256

// bf16BackwardBound returns the elementwise error bound of a product sum
// computed from bf16-rounded operands with float32 accumulation, against
// the float32 result of the same sum: each term a*b becomes
// a(1+e1)*b(1+e2), off by at most (2u+u^2)|a*b| with u = bf16Unit, and
// either result's float32 accumulation of L terms is off by at most
// L*2^-24*sum|a*b| (the classic recursive-summation bound, twice for the
// two results). abs is sum|a*b| for each output (the same backward
// primitive run in float32 on |a| and |b|), L the reduction length.
func bf16BackwardBound(abs float32, l int) float64 {
	return (2*bf16Unit+bf16Unit*bf16Unit+2*float64(l)*math.Exp2(-24))*float64(abs) + 1e-30
}

// TestConvBF16Backward checks the bf16 backward-data and backward-weights
// primitives (ConvOpts.BF16 in training: bf16 operands, float32
// accumulation and float32 gradients) against the float32 ones on the same
// inputs, element by element within bf16BackwardBound, and that the bf16
// result is really rounded (not a float32 computation). The bound is
// computed by running the float32 primitive on the absolute values of the
// operands, so it holds for any reduction length (C*KH*KW for dy -> dx
// summed over OutC*KH*KW, N*OH*OW for dw). The "wrong" rows check that the
// comparison fails for a wrong backward: the float32 gradient of the
// weights transposed in their two channel axes, or of dy shifted by one
// pixel.
func TestConvBF16Backward(t *testing.T) {
	convSkipWithoutBF16(t)
	cases := []struct {
		name   string
		x, w   [4]int
		o      ConvOpts
		scaled bool
	}{
		{name: "3x3_pad1", x: [4]int{2, 32, 11, 13}, w: [4]int{32, 32, 3, 3}, o: ConvOpts{Pad: [2]int{1, 1}}},
		{name: "1x1_stride2_blocked", x: [4]int{1, 64, 14, 10}, w: [4]int{32, 64, 1, 1}, o: ConvOpts{Stride: [2]int{2, 2}, BlockedIn: true, BlockedOut: true}},
		{name: "7x7_stride2_stem", x: [4]int{1, 3, 29, 31}, w: [4]int{16, 3, 7, 7}, o: ConvOpts{Stride: [2]int{2, 2}, Pad: [2]int{3, 3}, BlockedOut: true}},
		{name: "3x3_dilated_scaled", x: [4]int{1, 16, 12, 12}, w: [4]int{48, 16, 3, 3}, o: ConvOpts{Pad: [2]int{2, 2}, Dilation: [2]int{2, 2}}, scaled: true},
	}
	for _, tc := range cases {
		for _, kind := range []string{"data", "weights"} {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				rng := rand.New(rand.NewSource(int64(len(tc.name) + len(kind))))
				g32, err := newConvGeom("test", tc.x[:], tc.w[:], tc.o)
				if err != nil {
					t.Fatal(err)
				}
				g16 := g32
				g16.BF16 = true
				xv, wv, dy := randSlice(rng, convNum(g32.X)), randSlice(rng, convNum(g32.W)), randSlice(rng, convNum(g32.Y))
				var scale []float32
				if tc.scaled {
					scale = randSlice(rng, g32.W[0])
				}
				// run computes the backward kind on (a, dy) with geometry g:
				// a is w for dx, x for dw.
				a, l := wv, g32.W[0]*g32.W[2]*g32.W[3]
				if kind == "weights" {
					a, l = xv, g32.Y[0]*g32.Y[2]*g32.Y[3]
				}
				run := func(g convGeom, a, dy, scale []float32) []float32 {
					t.Helper()
					aShape := g.W[:]
					if kind == "weights" {
						aShape = g.X[:]
					}
					in := []G.Value{convDense(aShape, a), convDense(g.Y[:], dy)}
					if tc.scaled {
						in = append(in, convDense(g.W[:1], scale))
					}
					op := convBwdDataOp{geom: g, scaled: tc.scaled}
					var v G.Value
					if kind == "weights" {
						v, err = convBwdWeightsOp(op).Do(in...)
					} else {
						v, err = op.Do(in...)
					}
					if err != nil {
						t.Fatal(err)
					}
					return v.Data().([]float32)
				}
				abs := func(v []float32) []float32 {
					o := make([]float32, len(v))
					for i := range v {
						o[i] = float32(math.Abs(float64(v[i])))
					}
					return o
				}
				want := run(g32, a, dy, scale)
				got := run(g16, a, dy, scale)
				bound := run(g32, abs(a), abs(dy), abs(scale))
				check := func(what string, got, want []float32) (worst float64, bad string) {
					var maxDiff float64
					for i := range got {
						d := math.Abs(float64(got[i]) - float64(want[i]))
						maxDiff = math.Max(maxDiff, d)
						if b := bf16BackwardBound(bound[i], l); d > b && bad == "" {
							bad = fmt.Sprintf("%s[%d]: %g, float32 %g: |diff| %.3g > bound %.3g", what, i, got[i], want[i], d, b)
						}
						worst = math.Max(worst, d/bf16BackwardBound(bound[i], l))
					}
					if maxDiff == 0 && bad == "" {
						bad = what + ": identical to float32 (not computed in bf16?)"
					}
					return worst, bad
				}
				worst, bad := check("bf16", got, want)
				t.Logf("%s: worst |diff| / bound %.3f (reduction length %d)", kind, worst, l)
				if bad != "" {
					t.Error(bad)
				}
				// A wrong backward must fail the same check.
				wrong := make([]float32, len(dy))
				copy(wrong[1:], dy) // dy shifted by one pixel
				wa := a
				if kind == "data" && g32.W[0] == g32.W[1] {
					wa = convTransposeIO(a, g32.W) // w with OutC and C swapped
				}
				if _, bad := check("wrong", run(g32, wa, wrong, scale), want); bad == "" {
					t.Errorf("a wrong float32 backward passes the bf16 check")
				}
			})
		}
	}
}

// convTransposeIO swaps the first two axes of w [O, I, KH, KW] (O == I).
func convTransposeIO(w []float32, s [4]int) []float32 {
	o := make([]float32, len(w))
	k := s[2] * s[3]
	for i := 0; i < s[0]; i++ {
		for j := 0; j < s[1]; j++ {
			copy(o[(j*s[1]+i)*k:(j*s[1]+i+1)*k], w[(i*s[1]+j)*k:(i*s[1]+j+1)*k])
		}
	}
	return o
}

// TestLinearBF16Backward checks a bf16 Linear's gradients (LinearOpts.BF16
// in training: oneDNN's 1x1 convolution backward on bf16 operands) against
// the float32 products, element by element within bf16BackwardBound, as
// TestConvBF16Backward does; that the graph's gradient uses them; and that
// a wrong gradient (dy shifted by one element) fails the check.
func TestLinearBF16Backward(t *testing.T) {
	convSkipWithoutBF16(t)
	const n, in, out = 37, 200, 48
	rng := rand.New(rand.NewSource(3))
	x, w, dy := randSlice(rng, n*in), randSlice(rng, out*in), randSlice(rng, n*out)
	lin := &linearOp{n: n, in: in, out: out, bf16: true}
	g := lin.conv().geom
	abs := func(v []float32) []float32 {
		o := make([]float32, len(v))
		for i := range v {
			o[i] = float32(math.Abs(float64(v[i])))
		}
		return o
	}
	for _, tc := range []struct {
		name string
		kind int
		a    []float32
		l    int // reduction length
		// f32 computes the float32 gradient from (a, dy).
		f32 func(a, dy []float32) []float32
	}{
		{name: "dx", kind: dnnlBwdData, a: w, l: out, f32: func(a, dy []float32) []float32 {
			v, err := (&gemmOp{m: n, n: in, k: out}).Do(convDense([]int{n, out}, dy), convDense([]int{out, in}, a))
			if err != nil {
				t.Fatal(err)
			}
			return v.Data().([]float32)
		}},
		{name: "dw", kind: dnnlBwdWeights, a: x, l: n, f32: func(a, dy []float32) []float32 {
			v, err := (&gemmOp{m: out, n: in, k: n, transA: true}).Do(convDense([]int{n, out}, dy), convDense([]int{n, in}, a))
			if err != nil {
				t.Fatal(err)
			}
			return v.Data().([]float32)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := &linearBF16GradOp{kind: tc.kind, geom: g}
			aShape, _ := op.shapes()
			v, err := op.Do(convDense(aShape, tc.a), convDense([]int{n, out}, dy))
			if err != nil {
				t.Fatal(err)
			}
			got, want, bound := v.Data().([]float32), tc.f32(tc.a, dy), tc.f32(abs(tc.a), abs(dy))
			check := func(got []float32) (worst float64, ok bool) {
				ok = true
				var maxDiff float64
				for i := range got {
					d := math.Abs(float64(got[i]) - float64(want[i]))
					maxDiff = math.Max(maxDiff, d)
					b := bf16BackwardBound(bound[i], tc.l)
					worst = math.Max(worst, d/b)
					ok = ok && d <= b
				}
				return worst, ok && maxDiff > 0
			}
			worst, ok := check(got)
			t.Logf("%s: worst |diff| / bound %.3f (reduction length %d)", tc.name, worst, tc.l)
			if !ok {
				t.Errorf("bf16 %s: worst |diff| / bound %.3f, or identical to float32", tc.name, worst)
			}
			wrong := make([]float32, len(dy))
			copy(wrong[1:], dy)
			if _, ok := check(tc.f32(tc.a, wrong)); ok {
				t.Errorf("a wrong %s passes the bf16 check", tc.name)
			}
		})
	}
	// The graph's gradients are these ops.
	gr := G.NewGraph()
	xn := G.NewMatrix(gr, tensor.Float32, G.WithShape(n, in), G.WithName("x"), G.WithValue(convDense([]int{n, in}, x)))
	wn := G.NewMatrix(gr, tensor.Float32, G.WithShape(out, in), G.WithName("w"), G.WithValue(convDense([]int{out, in}, w)))
	y, err := LinearWith(xn, wn, nil, LinearOpts{BF16: true})
	if err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(G.Must(G.Sum(y)), xn, wn)
	if err != nil {
		t.Fatal(err)
	}
	for i, gn := range grads {
		if _, ok := gn.Op().(*linearBF16GradOp); !ok {
			t.Errorf("gradient %d is %v, want a linearBF16GradOp", i, gn.Op())
		}
	}
}
