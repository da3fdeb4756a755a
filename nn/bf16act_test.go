package nn

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/testutil"
)

// bf16ChainRef is a float64 model of a bf16 chain: every stored activation
// is rounded to bfloat16 (bf16Round), products of bf16-rounded operands are
// summed in float64. abs holds, per output element, the sum of the
// magnitudes that went into it (|x*w| terms, |bias|, |residual|), which
// scales the error bound.
type bf16ChainRef struct {
	val, abs []float64
}

// convChainRef computes act(conv(x, w) + b + res) as a bf16 chain
// convolution stores it: operands x (already bf16 values) and round(w),
// float64 sums, the result rounded to bf16. x and res are NCHW.
func convChainRef(g convGeom, x []float64, w, b []float32, res []float64, relu bool) bf16ChainRef {
	n := convNum(g.Y)
	acc, abs := make([]float64, n), make([]float64, n)
	convRef{g}.each(func(yi, xi, wi int) {
		p := x[xi] * float64(bf16Round(w[wi]))
		acc[yi] += p
		abs[yi] += math.Abs(p)
	})
	hw := g.Y[2] * g.Y[3]
	out := bf16ChainRef{val: make([]float64, n), abs: abs}
	for i, v := range acc {
		c := (i / hw) % g.Y[1]
		v += float64(b[c])
		abs[i] += math.Abs(float64(b[c]))
		if res != nil {
			v += res[i]
			abs[i] += math.Abs(res[i])
		}
		if relu && v < 0 {
			v = 0
		}
		out.val[i] = float64(bf16Round(float32(v)))
	}
	return out
}

// TestBF16Chain runs a small bf16 chain (ToBlockedBF16, a 3x3 convolution
// with bias and ReLU, a 1x1 convolution with the chain's input as residual
// and ReLU, max pooling, then FromBlocked and GlobalAvgPoolBlocked) through
// the Executor and checks it against bf16ChainRef: element by element
// within 3 bf16 units of the magnitude sum (one for the output's rounding,
// one for an input rounded the other way after float32 instead of float64
// accumulation, one to spare), and that the values coming out of the chain
// are bf16 values (the activations really are stored in bf16). It also
// checks that the Executor pools the BFloat16 tensors at half the bytes of
// the same chain in float32 (ConvOpts without BlockedBF16).
func TestBF16Chain(t *testing.T) {
	convSkipWithoutBF16(t)
	const n, c, h, w, mid = 2, 32, 9, 11, 48
	for _, constW := range []bool{false, true} {
		name := map[bool]string{false: "weights_per_run", true: "const_weights"}[constW]
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(7))
			xv := randSlice(rng, n*c*h*w)
			w1, b1 := randSlice(rng, mid*c*9), randSlice(rng, mid)
			w2, b2 := randSlice(rng, c*mid), randSlice(rng, c)
			for i := range w1 {
				w1[i] /= 12 // keep activations of order 1
			}
			for i := range w2 {
				w2[i] /= 5
			}
			build := func(bf16 bool) (*Executor, []*G.Node) {
				t.Helper()
				g := G.NewGraph()
				x := G.NewTensor(g, G.Float32, 4, G.WithShape(n, c, h, w), G.WithName("x"), G.WithValue(tensorOf(xv, n, c, h, w)))
				node := func(name string, v []float32, shape ...int) *G.Node {
					return G.NewTensor(g, G.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(tensorOf(v, shape...)))
				}
				o := ConvOpts{BF16: true, BlockedIn: true, BlockedOut: true, BlockedBF16: bf16, ConstWeights: constW}
				o3 := o
				o3.Pad = [2]int{1, 1}
				to := ToBlocked
				if bf16 {
					to = ToBlockedBF16
				}
				xb, err := to(x)
				if err != nil {
					t.Fatal(err)
				}
				y1, err := Conv2dFused(xb, node("w1", w1, mid, c, 3, 3), node("b1", b1, mid), nil, o3, true)
				if err != nil {
					t.Fatal(err)
				}
				y2, err := Conv2dFused(y1, node("w2", w2, c, mid, 1, 1), node("b2", b2, c), xb, o, true)
				if err != nil {
					t.Fatal(err)
				}
				y3, err := MaxPool2dBlocked(y2, 3, 2, 1)
				if err != nil {
					t.Fatal(err)
				}
				pooled, err := FromBlocked(y3)
				if err != nil {
					t.Fatal(err)
				}
				mean, err := GlobalAvgPoolBlocked(y2)
				if err != nil {
					t.Fatal(err)
				}
				if bf16 && (y1.Dtype() != BFloat16 || y3.Dtype() != BFloat16 || pooled.Dtype() != tensor.Float32) {
					t.Fatalf("dtypes: y1 %v, y3 %v, out %v; want %v, %v, float32", y1.Dtype(), y3.Dtype(), pooled.Dtype(), BFloat16, BFloat16)
				}
				e, err := NewExecutor(g, pooled, mean)
				if err != nil {
					t.Fatal(err)
				}
				for run := 0; run < 2; run++ {
					if err := e.Run(); err != nil {
						t.Fatal(err)
					}
				}
				return e, []*G.Node{pooled, mean}
			}
			e16, out := build(true)
			defer e16.Close()
			got := out[0].Value().Data().([]float32)
			gotMean := out[1].Value().Data().([]float32)

			// Reference.
			g1, _ := newConvGeom("ref", []int{n, c, h, w}, []int{mid, c, 3, 3}, ConvOpts{Pad: [2]int{1, 1}})
			g2, _ := newConvGeom("ref", []int{n, mid, h, w}, []int{c, mid, 1, 1}, ConvOpts{})
			xr := make([]float64, len(xv))
			for i, v := range xv {
				xr[i] = float64(bf16Round(v))
			}
			r1 := convChainRef(g1, xr, w1, b1, nil, true)
			r2 := convChainRef(g2, r1.val, w2, b2, xr, true)
			// r2.abs grows by the error r1 carries into it: bound the
			// inputs' flips by r1's magnitudes times the weights.
			in1 := make([]float64, len(r2.abs))
			convRef{g2}.each(func(yi, xi, wi int) { in1[yi] += r1.abs[xi] * math.Abs(float64(bf16Round(w2[wi]))) })
			oh, ow := (h+2-3)/2+1, (w+2-3)/2+1
			for i := 0; i < n*c; i++ {
				var sum, sumAbs float64
				for p := 0; p < h*w; p++ {
					sum += r2.val[i*h*w+p]
					sumAbs += r2.abs[i*h*w+p] + in1[i*h*w+p]
				}
				if d := math.Abs(float64(gotMean[i]) - sum/float64(h*w)); d > 3*bf16Unit*sumAbs/float64(h*w)+1e-6 {
					t.Errorf("mean %d: got %g, want %g", i, gotMean[i], sum/float64(h*w))
				}
				for y := 0; y < oh; y++ {
					for x := 0; x < ow; x++ {
						want, bound := math.Inf(-1), 0.0
						for dy := -1; dy <= 1; dy++ {
							for dx := -1; dx <= 1; dx++ {
								yy, xx := 2*y+dy, 2*x+dx
								if yy < 0 || yy >= h || xx < 0 || xx >= w {
									continue
								}
								j := i*h*w + yy*w + xx
								want = math.Max(want, r2.val[j])
								bound = math.Max(bound, 3*bf16Unit*(r2.abs[j]+in1[j]))
							}
						}
						v := got[(i*oh+y)*ow+x]
						if math.Abs(float64(v)-want) > bound+1e-6 {
							t.Errorf("pooled (%d, %d, %d, %d): got %g, want %g (bound %g)", i/c, i%c, y, x, v, want, bound)
						}
						if math.Float32bits(v)&0xffff != 0 {
							t.Errorf("pooled (%d, %d, %d, %d) = %g is not a bf16 value", i/c, i%c, y, x, v)
						}
					}
				}
			}
			s16 := e16.Stats()
			if s16.Unpooled != 0 {
				t.Errorf("bf16 chain: %d values (%d bytes) not pooled", s16.Unpooled, s16.UnpooledBytes)
			}
			e32, _ := build(false)
			defer e32.Close()
			s32 := e32.Stats()
			// The f32 input x and the outputs are the same in both; the
			// chain's four tensors are half the size in bf16.
			if s16.PoolBytes >= s32.PoolBytes {
				t.Errorf("pool bytes: bf16 chain %d, float32 chain %d: want fewer in bf16", s16.PoolBytes, s32.PoolBytes)
			}
			t.Logf("pool bytes: bf16 chain %d, float32 chain %d", s16.PoolBytes, s32.PoolBytes)
		})
	}
}

// TestBF16ChainNoReorder checks what the bf16 chain is for: its
// convolutions read and write the chain tensors in the primitive's own
// layout and data type (no reorder through the arena, which the float32
// blocked chain needs in bf16: source to bf16 acdb, destination back from
// f32 acdb), and it names the kernels that run. Only the float32 weights
// are converted (once with ConstWeights).
func TestBF16ChainNoReorder(t *testing.T) {
	convSkipWithoutBF16(t)
	for _, tc := range []struct {
		name string
		x, w []int
		o    ConvOpts
	}{
		{name: "3x3", x: []int{1, 64, 14, 14}, w: []int{64, 64, 3, 3}, o: ConvOpts{Pad: [2]int{1, 1}}},
		{name: "1x1_stride2", x: []int{2, 256, 14, 14}, w: []int{512, 256, 1, 1}, o: ConvOpts{Stride: [2]int{2, 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chain := range []bool{true, false} {
				o := tc.o
				o.BF16, o.BlockedIn, o.BlockedOut, o.BlockedBF16 = true, true, true, chain
				g, err := newConvGeom("test", tc.x, tc.w, o)
				if err != nil {
					t.Fatal(err)
				}
				for _, sum := range []bool{false, true} {
					d := dnnlConv{kind: dnnlFwd, geom: g, bias: true, relu: true, sum: sum}
					re, err := d.reordered()
					if err != nil {
						t.Fatal(err)
					}
					impl, err := d.impl()
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("bf16 chain %v, residual %v: kernel %s, reordered %v", chain, sum, impl, re)
					acts := strings.Contains(strings.Join(re, " "), "src") || strings.Contains(strings.Join(re, " "), "dst")
					if acts == chain {
						t.Errorf("bf16 chain %v, residual %v: reordered %v: want activations reordered only outside a bf16 chain", chain, sum, re)
					}
					if strings.Contains(impl, "ref") {
						t.Errorf("bf16 chain %v: reference kernel %s", chain, impl)
					}
				}
			}
		})
	}
}

// TestBF16ChainGrad checks training through a bf16 chain: the gradients of
// a chain with every differentiable chain op (ToBlockedBF16, a Conv2dBN
// with scale, shift and ReLU, a Conv2dFused with bias, the chain's input as
// residual and ReLU, GlobalAvgPoolBlocked of its output and FromBlocked of
// the middle activation, whose gradient adds to the second convolution's)
// equal bit for bit those of the same graph as a float32 chain with BF16,
// the path TestConvBF16Backward checks against float32. They must: both
// round every convolution operand to bf16, x holds bf16 values (so the
// residual is the same), and rounding a value to bf16 keeps its sign (the
// ReLU masks). The bf16 chain must also hold less memory at its peak and
// compute the masks in place.
func TestBF16ChainGrad(t *testing.T) {
	convSkipWithoutBF16(t)
	const n, c, h, w, mid = 2, 32, 9, 11, 48
	rng := rand.New(rand.NewSource(11))
	xv := randSlice(rng, n*c*h*w)
	for i, v := range xv {
		xv[i] = bf16Round(v)
	}
	w1, sc1, sh1 := randSlice(rng, mid*c*9), randSlice(rng, mid), randSlice(rng, mid)
	w2, b2 := randSlice(rng, c*mid), randSlice(rng, c)
	r1, r2 := randSlice(rng, n*c), randSlice(rng, n*mid*h*w)
	for i := range w1 {
		w1[i] /= 12
	}
	for i := range w2 {
		w2[i] /= 5
	}
	type result struct {
		grads [][]float32
		stats ExecStats
	}
	run := func(bf16 bool) result {
		t.Helper()
		g := G.NewGraph()
		node := func(name string, v []float32, shape ...int) *G.Node {
			return G.NewTensor(g, G.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(tensorOf(v, shape...)))
		}
		x := node("x", xv, n, c, h, w)
		pw1, psh1, pw2, pb2 := node("w1", w1, mid, c, 3, 3), node("shift1", sh1, mid), node("w2", w2, c, mid, 1, 1), node("b2", b2, c)
		o := ConvOpts{BF16: true, BlockedIn: true, BlockedOut: true, BlockedBF16: bf16}
		o3 := o
		o3.Pad = [2]int{1, 1}
		to := ToBlocked
		if bf16 {
			to = ToBlockedBF16
		}
		must := mustNode(t)
		xb := must(to(x))
		y1 := must(Conv2dBN(xb, pw1, node("scale1", sc1, mid), psh1, nil, o3, true))
		y2 := must(Conv2dFused(y1, pw2, pb2, xb, o, true))
		mean := must(GlobalAvgPoolBlocked(y2))
		l1 := must(G.Sum(G.Must(G.HadamardProd(mean, node("r1", r1, n, c)))))
		l2 := must(G.Sum(G.Must(G.HadamardProd(must(FromBlocked(y1)), node("r2", r2, n, mid, h, w)))))
		loss := must(G.Add(l1, l2))
		wrt := []*G.Node{x, pw1, psh1, pw2, pb2}
		grads, err := G.Grad(loss, wrt...)
		if err != nil {
			t.Fatalf("bf16 chain %v: %v", bf16, err)
		}
		e, err := NewExecutor(g, grads...)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		var res result
		for run := 0; run < 2; run++ { // the second run reuses the pool
			if err := e.Run(); err != nil {
				t.Fatalf("bf16 chain %v: %v", bf16, err)
			}
		}
		for _, gr := range grads {
			res.grads = append(res.grads, append([]float32(nil), gr.Value().Data().([]float32)...))
		}
		res.stats = e.Stats()
		return res
	}
	got, want := run(true), run(false)
	names := []string{"x", "w1", "shift1", "w2", "b2"}
	for i, name := range names {
		diff := 0
		for j := range want.grads[i] {
			if math.Float32bits(got.grads[i][j]) != math.Float32bits(want.grads[i][j]) {
				if diff < 3 {
					t.Errorf("gradient of %s [%d]: bf16 chain %g, float32 chain %g", name, j, got.grads[i][j], want.grads[i][j])
				}
				diff++
			}
		}
		if diff > 0 {
			t.Errorf("gradient of %s: %d of %d elements differ", name, diff, len(want.grads[i]))
		}
	}
	if got.stats.PeakLiveBytes >= want.stats.PeakLiveBytes {
		t.Errorf("peak live bytes: bf16 chain %d, float32 chain %d: want fewer in bf16", got.stats.PeakLiveBytes, want.stats.PeakLiveBytes)
	}
	if got.stats.InPlace < 2 {
		t.Errorf("bf16 chain: %d steps in place, want the 2 ReLU masks at least", got.stats.InPlace)
	}
	t.Logf("peak live bytes: bf16 chain %d, float32 chain %d; in place: %d, %d", got.stats.PeakLiveBytes, want.stats.PeakLiveBytes, got.stats.InPlace, want.stats.InPlace)
}

// TestBF16ChainErrors checks that the bf16 chain ops refuse what they
// cannot do with an error that says why: float32 input to a BlockedBF16
// convolution, BlockedBF16 without BF16, and a BFloat16 input to
// ToBlockedBF16.
func TestBF16ChainErrors(t *testing.T) {
	convSkipWithoutBF16(t)
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 16, 5, 5), G.WithName("x"), G.WithInit(G.GlorotN(1)))
	wt := G.NewTensor(g, G.Float32, 4, G.WithShape(16, 16, 1, 1), G.WithName("w"), G.WithInit(G.GlorotN(1)))
	chain := ConvOpts{BF16: true, BlockedIn: true, BlockedOut: true, BlockedBF16: true}
	if _, err := Conv2d(x, wt, nil, chain); err == nil || !strings.Contains(err.Error(), "want uint16") {
		t.Errorf("float32 x into a bf16 chain: err %v, want a dtype error", err)
	}
	xb, err := ToBlockedBF16(x)
	if err != nil {
		t.Fatal(err)
	}
	noBF16 := chain
	noBF16.BF16 = false
	if _, err := Conv2d(xb, wt, nil, noBF16); err == nil || !strings.Contains(err.Error(), "BlockedBF16 needs BF16") {
		t.Errorf("BlockedBF16 without BF16: err %v", err)
	}
	if _, err := ToBlockedBF16(xb); err == nil {
		t.Errorf("ToBlockedBF16 of a BFloat16 node: no error")
	}
}

// TestConvReLUGradBF16 checks the bf16 chain's ReLU gradient against a
// direct evaluation, element by element, on shapes with several channel
// blocks and several position tiles (the last one partial), with y holding
// the bf16 values where the mask is decided by the bits: +0, -0, the
// smallest positive and negative subnormals, +Inf, -Inf and NaNs. Both
// into a new tensor and in place (UnsafeDo, the executor's way).
func TestConvReLUGradBF16(t *testing.T) {
	special := []uint16{0x0000, 0x8000, 0x0001, 0x8001, 0x7f80, 0xff80, 0x7fc0, 0xffc0, 0x3f80, 0xbf80}
	for _, tc := range []struct{ n, c, h, w, block int }{
		{1, 16, 3, 5, 16},
		{2, 512, 13, 11, 16}, // 64 positions a tile: 3 tiles, the last partial
		{3, 1024, 7, 7, 8},
	} {
		t.Run(fmt.Sprintf("%dx%dx%dx%d_b%d", tc.n, tc.c, tc.h, tc.w, tc.block), func(t *testing.T) {
			n, c, hw, b := tc.n, tc.c, tc.h*tc.w, tc.block
			shape := []int{n, c, tc.h, tc.w}
			rng := rand.New(rand.NewSource(int64(c)))
			yb := make([]uint16, n*c*hw) // channels-last: ((i*hw + p)*c + ch)
			for k := range yb {
				if rng.Intn(4) == 0 {
					yb[k] = special[rng.Intn(len(special))]
				} else {
					yb[k] = uint16(math.Float32bits(float32(rng.NormFloat64())) >> 16)
				}
			}
			dy := randSlice(rng, n*c*hw) // nChw<b>c: (((i*c/b + cb)*hw + p)*b + j)
			want := make([]float32, len(dy))
			for i := 0; i < n; i++ {
				for ch := 0; ch < c; ch++ {
					for p := 0; p < hw; p++ {
						k := ((i*c/b+ch/b)*hw+p)*b + ch%b
						if math.Float32frombits(uint32(yb[(i*hw+p)*c+ch])<<16) > 0 {
							want[k] = dy[k]
						}
					}
				}
			}
			op := convReLUGradBF16Op{shape: [4]int(shape), block: b}
			for _, inPlace := range []bool{false, true} {
				yt := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]uint16(nil), yb...)))
				dyt := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float32(nil), dy...)))
				var got G.Value
				var err error
				if inPlace {
					got, err = op.UnsafeDo(dyt, yt)
				} else {
					got, err = op.Do(dyt, yt)
				}
				if err != nil {
					t.Fatal(err)
				}
				gd := got.Data().([]float32)
				if inPlace && &gd[0] != &dyt.Float32s()[0] {
					t.Error("UnsafeDo did not write into dy")
				}
				for k := range want {
					if math.Float32bits(gd[k]) != math.Float32bits(want[k]) {
						t.Fatalf("in place %v: dx[%d] = %v, want %v", inPlace, k, gd[k], want[k])
					}
				}
			}
		})
	}
}

// TestPositiveMask checks the branch-free ReLU masks against v > 0: every
// bf16 value, and float32 values at the edges (zeros, subnormals, the
// largest finite values, infinities, NaNs, the int32 wrap-around at -0)
// plus a stride through all 2^32 bit patterns.
func TestPositiveMask(t *testing.T) {
	mask := func(positive bool) uint32 {
		if positive {
			return ^uint32(0)
		}
		return 0
	}
	for h := 0; h < 1<<16; h++ {
		want := math.Float32frombits(uint32(h)<<16) > 0
		if got := positiveMaskBF16(uint16(h)); got != mask(want) {
			t.Fatalf("positiveMaskBF16(%#04x) = %#x, want all ones %v", h, got, want)
		}
	}
	bits := []uint32{0, 1, 0x007fffff, 0x00800000, 0x7f7fffff, 0x7f800000, 0x7f800001, 0x7fc00000, 0x7fffffff,
		0x80000000, 0x80000001, 0xff800000, 0xffc00000, 0xffffffff}
	for b := uint64(0); b < 1<<32; b += 65537 {
		bits = append(bits, uint32(b))
	}
	for _, b := range bits {
		want := math.Float32frombits(b) > 0
		if got := positiveMask(math.Float32frombits(b)); got != mask(want) {
			t.Fatalf("positiveMask(bits %#08x) = %#x, want all ones %v", b, got, want)
		}
	}
}

// TestRoundBF16 checks RoundBF16 against oneDNN's conversion
// (ToBlockedBF16) on ties to even and odd, values next to them, the
// largest finite values (one rounds to infinity), infinities, NaNs, zeros
// and random normal values: the bits must agree (NaNs: both NaN).
func TestRoundBF16(t *testing.T) {
	testutil.BF16(t, BF16Error())
	bits := []uint32{0, 0x80000000, 0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0xbf808000, 0xbf818000,
		0x7f7fffff, 0x7f7f7fff, 0x7f7f8000, 0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000,
		0x7f800001, 0x00800000, 0x00808000, 0x00818000}
	r := rand.New(rand.NewSource(1))
	for len(bits) < 16*64 {
		bits = append(bits, math.Float32bits(float32(r.NormFloat64()*math.Exp(r.NormFloat64()*10))))
	}
	const C = 16
	W := len(bits) / C
	x := make([]float32, len(bits))
	for i, b := range bits {
		x[i] = math.Float32frombits(b)
	}
	g := G.NewGraph()
	xn := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, C, 1, W), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(1, C, 1, W), tensor.WithBacking(x))))
	y, err := ToBlockedBF16(xn)
	if err != nil {
		t.Fatal(err)
	}
	var yv G.Value
	G.Read(y, &yv)
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	dnnl := yv.(*tensor.Dense).Uint16s()
	for c := 0; c < C; c++ {
		for w := 0; w < W; w++ {
			v := x[c*W+w]
			got, want := RoundBF16(v), dnnl[w*C+c]
			gotNaN, wantNaN := math.IsNaN(float64(bf16Value(got))), math.IsNaN(float64(bf16Value(want)))
			if got != want && !(gotNaN && wantNaN) {
				t.Errorf("RoundBF16(%g, bits %#08x) = %#04x, oneDNN %#04x", v, math.Float32bits(v), got, want)
			}
		}
	}
}

// TestBlockedFloat32 converts a bf16 chain value to float32 nChw<B>c: every
// element at its blocked offset with its bf16 value, and the gradient
// passed through to x unchanged (through ToBlockedBF16's and FromBlocked's
// own). A float32 input is refused.
func TestBlockedFloat32(t *testing.T) {
	convSkipWithoutBF16(t)
	const n, c, h, w = 2, 32, 5, 7
	r := rand.New(rand.NewSource(9))
	xs, cs := make([]float32, n*c*h*w), make([]float32, n*c*h*w)
	for i := range xs {
		xs[i], cs[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
	}
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float32, 4, G.WithShape(n, c, h, w), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(n, c, h, w), tensor.WithBacking(xs))))
	coef := G.NewTensor(g, G.Float32, 4, G.WithShape(n, c, h, w), G.WithName("coef"),
		G.WithValue(tensor.New(tensor.WithShape(n, c, h, w), tensor.WithBacking(cs))))
	if _, err := BlockedFloat32(x); err == nil || !strings.Contains(err.Error(), "want uint16") {
		t.Errorf("BlockedFloat32 of a float32 node: err %v, want a dtype error", err)
	}
	chain, err := ToBlockedBF16(x)
	if err != nil {
		t.Fatal(err)
	}
	wide, err := BlockedFloat32(chain)
	if err != nil {
		t.Fatal(err)
	}
	if wide.Dtype() != tensor.Float32 {
		t.Fatalf("dtype %v, want float32", wide.Dtype())
	}
	y, err := FromBlocked(wide)
	if err != nil {
		t.Fatal(err)
	}
	loss := G.Must(G.Sum(G.Must(G.HadamardProd(y, coef))))
	if _, err := G.Grad(loss, x); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(x))
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	b := CPU().Block
	blocked := wide.Value().Data().([]float32)
	for i, v := range xs {
		in, ic, ih, iw := i/(c*h*w), i/(h*w)%c, i/w%h, i%w
		want := bf16Round(v)
		if got := blocked[((in*c/b+ic/b)*h*w+ih*w+iw)*b+ic%b]; got != want {
			t.Fatalf("blocked (%d, %d, %d, %d) = %g, want %g", in, ic, ih, iw, got, want)
		}
		if got := y.Value().Data().([]float32)[i]; got != want {
			t.Fatalf("NCHW (%d, %d, %d, %d) = %g, want %g", in, ic, ih, iw, got, want)
		}
	}
	gx, err := x.Grad()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range gx.Data().([]float32) {
		if v != cs[i] {
			t.Fatalf("dx[%d] = %g, want %g", i, v, cs[i])
		}
	}
}
