package nn

import (
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
)

// TestConvBF16Chunks checks that a bf16 convolution split into chunks of
// the batch (dnnlConv.chunkSize; here forced by dnnlConv.chunk, uneven
// chunks of 2, 2 and 1 samples and one sample per call) gives the result of
// one call on the whole batch: forward with scaled weights, bias, residual
// and ReLU (NCHW and blocked), backward data (scaled) and backward weights,
// whose chunks' gradients are summed (scaled once, after the sum). A chunk
// reading or writing the wrong samples, or a lost chunk gradient, is off by
// the size of the values, far above the bound (float32 summation order).
func TestConvBF16Chunks(t *testing.T) {
	convSkipWithoutBF16(t)
	cases := []struct {
		name                 string
		kind                 int
		x, w                 [4]int
		o                    ConvOpts
		bias, residual, relu bool
	}{
		{name: "fwd_3x3_stride2", kind: dnnlFwd, x: [4]int{5, 16, 9, 11}, w: [4]int{32, 16, 3, 3},
			o: ConvOpts{Stride: [2]int{2, 2}, Pad: [2]int{1, 1}}, bias: true},
		{name: "fwd_1x1_blocked_residual_relu", kind: dnnlFwd, x: [4]int{5, 32, 6, 7}, w: [4]int{48, 32, 1, 1},
			o: ConvOpts{BlockedIn: true, BlockedOut: true}, bias: true, residual: true, relu: true},
		{name: "bwd_data_3x3", kind: dnnlBwdData, x: [4]int{5, 16, 8, 8}, w: [4]int{32, 16, 3, 3},
			o: ConvOpts{Pad: [2]int{1, 1}}},
		{name: "bwd_data_1x1_blocked", kind: dnnlBwdData, x: [4]int{5, 32, 7, 5}, w: [4]int{16, 32, 1, 1},
			o: ConvOpts{BlockedIn: true, BlockedOut: true}},
		{name: "bwd_weights_3x3", kind: dnnlBwdWeights, x: [4]int{5, 16, 8, 8}, w: [4]int{32, 16, 3, 3},
			o: ConvOpts{Pad: [2]int{1, 1}}},
		{name: "bwd_weights_1x1_blocked_stride2", kind: dnnlBwdWeights, x: [4]int{5, 32, 9, 9}, w: [4]int{64, 32, 1, 1},
			o: ConvOpts{Stride: [2]int{2, 2}, BlockedIn: true, BlockedOut: true}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(31 + i)))
			tc.o.BF16 = true
			g, err := newConvGeom("test", tc.x[:], tc.w[:], tc.o)
			if err != nil {
				t.Fatal(err)
			}
			x, w, y := randSlice(rng, convNum(g.X)), randSlice(rng, convNum(g.W)), randSlice(rng, convNum(g.Y))
			ex := convExtra{scale: randSlice(rng, g.W[0])}
			if tc.residual {
				ex.residual = randSlice(rng, convNum(g.Y))
			}
			b := randSlice(rng, g.W[0])
			// run returns the result of the call with chunk samples per
			// call (0: the whole batch in one call).
			run := func(chunk int) []float32 {
				t.Helper()
				d := dnnlConv{kind: tc.kind, geom: g, bias: tc.bias, sum: tc.residual, relu: tc.relu, chunk: chunk}
				var bufs [][]float32
				var out []float32
				switch tc.kind {
				case dnnlFwd:
					out = make([]float32, len(y))
					bufs = [][]float32{x, w}
					if tc.bias {
						bufs = append(bufs, b)
					}
					bufs = append(bufs, out)
				case dnnlBwdData:
					out = make([]float32, len(x))
					bufs = [][]float32{w, y, out}
				default:
					out = make([]float32, len(w))
					bufs = [][]float32{x, y, out}
				}
				if err := d.run(bufs, ex); err != nil {
					t.Fatal(err)
				}
				return out
			}
			want := run(0)
			for _, chunk := range []int{2, 1} {
				if e := convMaxRelErr(run(chunk), want); e > 1e-5 {
					t.Errorf("%d samples per call: max rel error %g against one call, want <= 1e-5", chunk, e)
				}
			}
		})
	}
}

// TestConvBF16ArenaBound runs a bf16 training step of two 1x1 convolutions
// through the Executor and checks the engine's arena afterwards. The first
// convolution has the large input (x [96, 256, 14, 14]: 9.6 MB in bf16),
// the second the large output (y [96, 512, 14, 14]: 38.5 MB in float32,
// which its forward writes in the primitive's channels-last layout and then
// copies to NCHW). The arena must hold no more than convChunkBytes (a call
// needing more runs in chunks of the batch; the second forward needs 41 MB)
// plus the weights-sized buffer. Issue 14: one buffer per argument position
// held the sum over positions of the largest copy any call put there (here
// the first convolution's bf16 input plus the second's float32 output plus
// the bf16 output gradient, about 70 MB), and a call's copies were never
// split (41 MB).
func TestConvBF16ArenaBound(t *testing.T) {
	convSkipWithoutBF16(t)
	ReleaseConvBuffers()
	defer ReleaseConvBuffers()
	rng := rand.New(rand.NewSource(41))
	g := G.NewGraph()
	x := randParam(g, rng, "x", 96, 256, 14, 14)
	w1, w2 := randParam(g, rng, "w1", 64, 256, 1, 1), randParam(g, rng, "w2", 512, 64, 1, 1)
	y1 := G.Must(Conv2dFused(x, w1, nil, nil, ConvOpts{BF16: true}, true))
	y2 := G.Must(Conv2d(y1, w2, nil, ConvOpts{BF16: true}))
	grads, err := G.Grad(G.Must(G.Sum(y2)), x, w1, w2)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewExecutor(g, grads...)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Run(); err != nil {
		t.Fatal(err)
	}
	eng, err := dnnlGet()
	if err != nil {
		t.Fatal(err)
	}
	eng.mu.Lock()
	lanes := len(eng.lanes)
	eng.mu.Unlock()
	bound := lanes * (convChunkBytes + 4*512*64)
	got := dnnlArenaBytes()
	t.Logf("arena %d bytes on %d lanes, bound %d", got, lanes, bound)
	if got > bound {
		t.Errorf("arena after a bf16 training step: %d bytes on %d lanes, want <= %d (convChunkBytes and the weights' float32 size per lane)",
			got, lanes, bound)
	}
}
