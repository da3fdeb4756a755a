package vec

import (
	"math"
	"math/rand"
	"testing"
)

// specials are float32 values where a kernel is easiest to get wrong:
// signed zeros, subnormals, the extremes, infinities, NaNs (quiet and
// signalling, both signs, with payloads), and values exactly halfway
// between two bf16 numbers (even and odd lower neighbour).
var specials = []uint32{
	0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007fffff, 0x807fffff, 0x00800000,
	0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f800000, 0xff800000,
	0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fbfffff, 0x7fff0000, 0xffffffff,
	0x3f808000, 0x3f818000, 0xbf808000, 0xbf818000, 0x3f80ffff, 0x3f807fff, 0x3f800001,
	0x3f800000, 0x40490fdb, 0xc0490fdb,
}

// inputs returns n float32 values: the specials, cycled, interleaved with
// random ones of every exponent.
func inputs(r *rand.Rand, n int) []float32 {
	xs := make([]float32, n)
	for i := range xs {
		if i%3 == 0 {
			xs[i] = math.Float32frombits(specials[(i/3)%len(specials)])
		} else {
			xs[i] = math.Float32frombits(r.Uint32())
		}
	}
	return xs
}

// withGo runs f with the assembly kernels turned off.
func withGo(f func()) {
	saved := hasAVX2
	hasAVX2 = false
	defer func() { hasAVX2 = saved }()
	f()
}

// lengths covers the empty slice, lengths shorter than one vector step,
// exact multiples of it and lengths with tails.
var lengths = []int{0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1024, 1031}

// same32 reports whether a and b have the same bits, or are both NaNs: Go
// leaves the payload of a NaN made from two NaNs unspecified (its compiler
// may swap the operands of an addition), so the kernels need not match it.
func same32(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || a != a && b != b
}

func TestBilerp(t *testing.T) {
	if !hasAVX2 {
		t.Log("no AVX2 on this CPU: comparing the plain Go form with itself and with the formula")
	}
	r := rand.New(rand.NewSource(1))
	weights := [][4]float32{
		{0.25, 0.25, 0.25, 0.25},
		{1, 0, 0, 0},
		{0, 0, 0, 1},
		{-0.0, 0, 0, 0}, // a -0 weight: t is -0 where the cells are positive
		{0.3125, 0.1875, 0.3125, 0.1875},
		{float32(r.Float64()), float32(r.Float64()), float32(r.Float64()), float32(r.Float64())},
	}
	for _, n := range lengths {
		for wi, w := range weights {
			for _, add := range []bool{false, true} {
				a, b, c, d := inputs(r, n), inputs(r, n), inputs(r, n), inputs(r, n)
				for i := range n { // mostly finite cells, so that most sums are not NaN
					if i%5 != 0 {
						a[i], b[i], c[i], d[i] = float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())
					}
				}
				base := inputs(r, n)
				got := append([]float32(nil), base...)
				Bilerp(got, a, b, c, d, &w, add)
				want := append([]float32(nil), base...)
				withGo(func() { Bilerp(want, a, b, c, d, &w, add) })
				for i := range n {
					// The formula, written out once more.
					t0 := float32(w[0]*a[i]) + float32(w[1]*b[i])
					t0 += float32(w[2] * c[i])
					t0 += float32(w[3] * d[i])
					s := float32(0)
					if add {
						s = base[i]
					}
					formula := s + t0
					if !same32(got[i], want[i]) || !same32(want[i], formula) {
						t.Fatalf("n=%d weights %d add=%v, element %d: Bilerp %g (%#08x), plain Go %g (%#08x), formula %g (%#08x)",
							n, wi, add, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]), formula, math.Float32bits(formula))
					}
				}
			}
		}
	}
}

// TestBilerpFirstSampleZero: a first sample whose sum is -0 gives +0, as
// torchvision's 0 + val does; a later -0 sample leaves a -0 sum as it is.
func TestBilerpFirstSampleZero(t *testing.T) {
	for _, n := range []int{3, 8, 16} {
		a := make([]float32, n)
		for i := range a {
			a[i] = float32(math.Copysign(0, -1))
		}
		w := [4]float32{1, 1, 1, 1}
		dst := make([]float32, n)
		Bilerp(dst, a, a, a, a, &w, false)
		for i, v := range dst {
			if math.Float32bits(v) != 0 {
				t.Fatalf("n=%d: first sample of -0 cells: dst[%d] = %#08x, want +0", n, i, math.Float32bits(v))
			}
		}
		copy(dst, a)
		Bilerp(dst, a, a, a, a, &w, true)
		for i, v := range dst {
			if math.Float32bits(v) != 0x80000000 {
				t.Fatalf("n=%d: -0 + -0 sample: dst[%d] = %#08x, want -0", n, i, math.Float32bits(v))
			}
		}
	}
}

// divisors are the q of the division tests: powers of two (a
// multiplication by 1/q in the kernels) up to the ends of the normal range,
// where 1/q is subnormal or q is, and other values.
var divisors = []float32{1, 2, 4, 16, 0.5, 3, 6, 7, 9, 1 << 12, 0, -2, -3, float32(math.Inf(1)),
	math.Float32frombits(1), 0x1p-126, 0x1p-127, 0x1p126, 0x1p127}

// tinyToo replaces every fourth element of x, from the third, by a tiny
// normal or subnormal value, whose quotient by q may be subnormal or zero.
func tinyToo(r *rand.Rand, x []float32) []float32 {
	for i := 2; i < len(x); i += 4 {
		x[i] = float32(r.NormFloat64() * 0x1p-120)
	}
	return x
}

func TestDiv(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for _, n := range lengths {
		for _, q := range divisors {
			src := tinyToo(r, inputs(r, n))
			got := make([]float32, n)
			Div(got, src, q)
			inPlace := append([]float32(nil), src...)
			Div(inPlace, inPlace, q)
			for i, x := range src {
				want := x / q
				if !same32(got[i], want) || !same32(inPlace[i], want) {
					t.Fatalf("n=%d q=%g: Div(%g (%#08x)) = %g (in place %g), want %g (%#08x)",
						n, q, x, math.Float32bits(x), got[i], inPlace[i], want, math.Float32bits(want))
				}
			}
		}
	}
}

func TestAddMulDiv(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	qs := []float32{1, 2, 4, 16, 0.5, 3, 6, 9, 1 << 12, 0, float32(math.Inf(1)), 0x1p-126, 0x1p-127, 0x1p126, 0x1p127}
	for _, n := range lengths {
		for _, q := range qs {
			for _, w := range []float32{0.25, 0.1875, -0.75, 0, float32(r.Float64())} {
				x := inputs(r, n)
				for i := range n { // mostly ordinary values, some tiny ones
					switch i % 4 {
					case 1:
						x[i] = float32(r.NormFloat64())
					case 2:
						x[i] = float32(r.NormFloat64() * 0x1p-120)
					}
				}
				base := inputs(r, n)
				got := append([]float32(nil), base...)
				AddMulDiv(got, x, w, q)
				for i := range n {
					want := base[i] + float32(x[i]*w)/q
					if !same32(got[i], want) {
						t.Fatalf("n=%d q=%g w=%g, element %d: %g + %g*w/q = %g (%#08x), want %g (%#08x)",
							n, q, w, i, base[i], x[i], got[i], math.Float32bits(got[i]), want, math.Float32bits(want))
					}
				}
			}
		}
	}
}

func TestPow2(t *testing.T) {
	for _, c := range []struct {
		q    float32
		want bool
	}{
		{1, true}, {2, true}, {4096, true}, {0.5, true}, {0x1p-125, true}, {0x1p125, true},
		{0x1p-126, true}, {0x1p127, true}, // 1/q = 2^126; 1/q = 2^-127, subnormal but exact
		{0x1p-127, false}, // subnormal: 1/q = 2^127 is fine, but smaller ones overflow; all take the division
		{3, false}, {-2, false}, {0, false}, {float32(math.Inf(1)), false}, {float32(math.NaN()), false}, {0x1p-149, false},
	} {
		if got := pow2(c.q); got != c.want {
			t.Errorf("pow2(%g) = %v, want %v", c.q, got, c.want)
		}
	}
}

func TestDivBF16(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for _, n := range lengths {
		for _, q := range divisors {
			src := tinyToo(r, inputs(r, n))
			got := make([]uint16, n)
			DivBF16(got, src, q)
			for i, x := range src {
				if want := RoundBF16(x / q); got[i] != want {
					t.Fatalf("n=%d q=%g: DivBF16(%g (%#08x)) = %#04x, want %#04x", n, q, x, math.Float32bits(x), got[i], want)
				}
			}
		}
	}
}

// TestAccumBF16 sums runs of bf16 values (the top halves of the special
// float32 values, NaNs and subnormals included, and random ones) into
// float64 accumulators over several calls, as the C4 head's mean does, and
// compares every accumulator with the plain Go form's and with the formula.
func TestAccumBF16(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for _, n := range lengths {
		got, goForm, want := make([]float64, n), make([]float64, n), make([]float64, n)
		for call := range 5 {
			x := make([]uint16, n)
			for i, v := range inputs(r, n) {
				x[i] = uint16(math.Float32bits(v) >> 16)
				if call == 4 && i%5 == 1 { // large magnitudes: sums that round
					x[i] = uint16(math.Float32bits(float32(r.NormFloat64()*1e30)) >> 16)
				}
			}
			AccumBF16(got, x)
			withGo(func() { AccumBF16(goForm, x) })
			for i, h := range x {
				want[i] += float64(math.Float32frombits(uint32(h) << 16))
			}
		}
		for i := range got {
			if !same64(got[i], want[i]) || !same64(goForm[i], want[i]) {
				t.Fatalf("n=%d, element %d: %g (%#016x), Go form %g, want %g (%#016x)", n, i,
					got[i], math.Float64bits(got[i]), goForm[i], want[i], math.Float64bits(want[i]))
			}
		}
	}
}

// same64 is same32 for float64.
func same64(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || a != a && b != b
}

// TestRoundBF16 checks the scalar rounding against values worked out by
// hand (RoundBF16 is also checked against oneDNN's own conversion, in nn).
func TestRoundBF16(t *testing.T) {
	for _, c := range []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // halfway, lower neighbour even: down
		{0x3f818000, 0x3f82}, // halfway, lower neighbour odd: up
		{0x3f808001, 0x3f81}, // above halfway: up
		{0x3f807fff, 0x3f80}, // below halfway: down
		{0xbf818000, 0xbf82}, // the same for negative values
		{0x7f7fffff, 0x7f80}, // the largest float32 rounds to +inf
		{0xff800000, 0xff80}, // -inf
		{0x80000000, 0x8000}, // -0
		{0x00000001, 0x0000}, // the smallest subnormal rounds to +0
		{0x7f800001, 0x7fc0}, // signalling NaN becomes quiet
		{0xffc12345, 0xffc1}, // NaN keeps its sign and top payload bits
	} {
		if got := RoundBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("RoundBF16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
}

// TestPanicsOnShortInputs: a source shorter than the output is a bug in
// the caller, reported before any element is written.
func TestPanicsOnShortInputs(t *testing.T) {
	w := [4]float32{1, 0, 0, 0}
	for name, f := range map[string]func(){
		"Bilerp": func() {
			Bilerp(make([]float32, 9), make([]float32, 9), make([]float32, 8), make([]float32, 9), make([]float32, 9), &w, true)
		},
		"Div":       func() { Div(make([]float32, 9), make([]float32, 8), 2) },
		"AddMulDiv": func() { AddMulDiv(make([]float32, 9), make([]float32, 8), 1, 4) },
		"DivBF16":   func() { DivBF16(make([]uint16, 17), make([]float32, 16), 2) },
		"AccumBF16": func() { AccumBF16(make([]float64, 9), make([]uint16, 8)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with a short input did not panic", name)
				}
			}()
			f()
		}()
	}
}

func BenchmarkBilerp(b *testing.B) {
	const n = 1024
	r := rand.New(rand.NewSource(1))
	a, c1, c2, c3, dst := inputs(r, n), inputs(r, n), inputs(r, n), inputs(r, n), make([]float32, n)
	w := [4]float32{0.1, 0.2, 0.3, 0.4}
	b.SetBytes(4 * 5 * n)
	for b.Loop() {
		Bilerp(dst, a, c1, c2, c3, &w, true)
	}
}

func BenchmarkAccumBF16(b *testing.B) {
	const n = 2048
	acc, x := make([]float64, n), make([]uint16, n)
	for i, v := range inputs(rand.New(rand.NewSource(1)), n) {
		x[i] = uint16(math.Float32bits(v) >> 16)
	}
	b.SetBytes(2 * n)
	for b.Loop() {
		AccumBF16(acc, x)
	}
}

func BenchmarkDivBF16(b *testing.B) {
	const n = 1024
	src, dst := inputs(rand.New(rand.NewSource(1)), n), make([]uint16, n)
	b.SetBytes(6 * n)
	for b.Loop() {
		DivBF16(dst, src, 4)
	}
}
