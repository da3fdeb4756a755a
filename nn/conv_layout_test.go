package nn

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestToBlockedLayout(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	shape := []int{2, 32, 3, 5}
	N, C, H, W := shape[0], shape[1], shape[2], shape[3]
	xv := randSlice(rng, N*C*H*W)
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(shape...), G.WithName("x"), G.WithValue(convDense(shape, xv)))
	b := G.Must(ToBlocked(x))
	back := G.Must(FromBlocked(b))
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	convCheckBlocked(t, CPU().Block, shape, xv, b.Value().Data().([]float32))
	if e := convMaxRelErr(back.Value().Data().([]float32), xv); e != 0 {
		t.Errorf("FromBlocked(ToBlocked(x)) differs from x by %g", e)
	}
	// Both blocks oneDNN uses (16 with AVX-512, 8 with AVX2), whatever this CPU is.
	for _, bs := range []int{8, 16} {
		to := convLayoutOp{shape: [4]int(shape), toBlocked: true, block: bs}
		blk, err := to.Do(convDense(shape, xv))
		if err != nil {
			t.Fatalf("block %d: %v", bs, err)
		}
		convCheckBlocked(t, bs, shape, xv, blk.Data().([]float32))
		plain, err := convLayoutOp{shape: [4]int(shape), block: bs}.Do(blk)
		if err != nil {
			t.Fatalf("block %d: %v", bs, err)
		}
		if e := convMaxRelErr(plain.Data().([]float32), xv); e != 0 {
			t.Errorf("block %d: back to NCHW differs from x by %g", bs, e)
		}
	}
	if _, err := ToBlocked(G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 24, 2, 2))); err == nil {
		t.Error("ToBlocked with 24 channels: no error")
	}
}

// convCheckBlocked checks that got is x [N, C, H, W] (NCHW values xv) in
// nChw<bs>c: element (n, c, h, w) at ((n*C/bs + c/bs)*H*W + h*W + w)*bs + c%bs.
func convCheckBlocked(t *testing.T, bs int, shape []int, xv, got []float32) {
	t.Helper()
	N, C, H, W := shape[0], shape[1], shape[2], shape[3]
	for n := 0; n < N; n++ {
		for c := 0; c < C; c++ {
			for h := 0; h < H; h++ {
				for w := 0; w < W; w++ {
					want := xv[((n*C+c)*H+h)*W+w]
					if v := got[((n*C/bs+c/bs)*H*W+h*W+w)*bs+c%bs]; v != want {
						t.Fatalf("block %d: blocked (%d,%d,%d,%d) = %v, want %v", bs, n, c, h, w, v, want)
					}
				}
			}
		}
	}
}

// TestConvBlockSizes runs a blocked-in, blocked-out convolution (bias,
// residual, ReLU) and the blocked bias gradient in both of oneDNN's blocks,
// whatever this CPU prefers, against the NCHW results.
func TestConvBlockSizes(t *testing.T) {
	rng := rand.New(rand.NewSource(13))
	plain, err := newConvGeom("test", []int{2, 16, 7, 6}, []int{32, 16, 3, 3}, ConvOpts{Pad: [2]int{1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	xv, wv, bv := randSlice(rng, convNum(plain.X)), randSlice(rng, convNum(plain.W)), randSlice(rng, plain.W[0])
	resv, dyv := randSlice(rng, convNum(plain.Y)), randSlice(rng, convNum(plain.Y))
	w, b := convDense(plain.W[:], wv), convDense([]int{plain.W[0]}, bv)
	op := convOp{geom: plain, bias: true, residual: true, relu: true}
	want, err := op.Do(convDense(plain.X[:], xv), w, b, convDense(plain.Y[:], resv))
	if err != nil {
		t.Fatal(err)
	}
	wantDB, err := convBiasGradOp{shape: plain.Y}.Do(convDense(plain.Y[:], dyv))
	if err != nil {
		t.Fatal(err)
	}
	toBlocked := func(bs int, s [4]int, v []float32) G.Value {
		t.Helper()
		o, err := convLayoutOp{shape: s, toBlocked: true, block: bs}.Do(convDense(s[:], v))
		if err != nil {
			t.Fatalf("block %d: %v", bs, err)
		}
		return o
	}
	for _, bs := range []int{8, 16} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			g := plain
			g.BlockedIn, g.BlockedOut, g.Block = true, true, bs
			bop := op
			bop.geom = g
			yb, err := bop.Do(toBlocked(bs, g.X, xv), w, b, toBlocked(bs, g.Y, resv))
			if err != nil {
				t.Fatal(err)
			}
			y, err := convLayoutOp{shape: g.Y, block: bs}.Do(yb)
			if err != nil {
				t.Fatal(err)
			}
			if e := convMaxRelErr(y.Data().([]float32), want.Data().([]float32)); e > 1e-6 {
				t.Errorf("forward: blocked differs from NCHW by %g (max rel)", e)
			}
			db, err := convBiasGradOp{shape: g.Y, block: bs}.Do(toBlocked(bs, g.Y, dyv))
			if err != nil {
				t.Fatal(err)
			}
			if e := convMaxRelErr(db.Data().([]float32), wantDB.Data().([]float32)); e > 1e-6 {
				t.Errorf("bias gradient: blocked differs from NCHW by %g (max rel)", e)
			}
		})
	}
}

// TestConv2dBlockedMatchesPlain runs a stem-like conv (NCHW in, blocked out)
// and a block conv (blocked in and out, bias, residual, ReLU) and compares
// the outputs and all gradients with the reference.
func TestConv2dBlockedMatchesPlain(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	tests := []struct {
		name   string
		x, w   [4]int
		o      ConvOpts
		plainX bool
	}{
		{name: "stem_plain_in", x: [4]int{1, 3, 13, 11}, w: [4]int{16, 3, 7, 7}, o: ConvOpts{Stride: [2]int{2, 2}, Pad: [2]int{3, 3}}, plainX: true},
		{name: "3x3_blocked", x: [4]int{2, 16, 9, 7}, w: [4]int{32, 16, 3, 3}, o: ConvOpts{Pad: [2]int{1, 1}}},
		{name: "1x1_s2_blocked", x: [4]int{1, 32, 9, 8}, w: [4]int{16, 32, 1, 1}, o: ConvOpts{Stride: [2]int{2, 2}}},
		// ResNeXt's 3x3: 8 channels per group, fewer than the 16 of a layout block.
		{name: "3x3_32groups_of_8_blocked", x: [4]int{1, 256, 6, 5}, w: [4]int{256, 8, 3, 3}, o: ConvOpts{Pad: [2]int{1, 1}, Groups: 32}},
		{name: "3x3_s2_4groups_of_4_blocked", x: [4]int{2, 16, 7, 9}, w: [4]int{32, 4, 3, 3}, o: ConvOpts{Stride: [2]int{2, 2}, Pad: [2]int{1, 1}, Groups: 4}},
		// DC5's 3x3: dilation 2, padding 2.
		{name: "3x3_dilation2_blocked", x: [4]int{1, 32, 7, 6}, w: [4]int{32, 32, 3, 3}, o: ConvOpts{Pad: [2]int{2, 2}, Dilation: [2]int{2, 2}}},
		{name: "3x3_dilation2_2groups_blocked", x: [4]int{1, 64, 6, 7}, w: [4]int{32, 32, 3, 3}, o: ConvOpts{Pad: [2]int{2, 2}, Dilation: [2]int{2, 2}, Groups: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.BlockedIn, o.BlockedOut = !tc.plainX, true
			geom, err := newConvGeom("test", tc.x[:], tc.w[:], tc.o)
			if err != nil {
				t.Fatal(err)
			}
			xv, wv := randSlice(rng, convNum(geom.X)), randSlice(rng, convNum(geom.W))
			bv, resv, rv := randSlice(rng, geom.W[0]), randSlice(rng, convNum(geom.Y)), randSlice(rng, convNum(geom.Y))
			g := G.NewGraph()
			x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(geom.X[:]...), G.WithName("x"), G.WithValue(convDense(geom.X[:], xv)))
			w := G.NewTensor(g, tensor.Float32, 4, G.WithShape(geom.W[:]...), G.WithName("w"), G.WithValue(convDense(geom.W[:], wv)))
			b := G.NewTensor(g, tensor.Float32, 1, G.WithShape(geom.W[0]), G.WithName("b"), G.WithValue(convDense([]int{geom.W[0]}, bv)))
			res := G.NewTensor(g, tensor.Float32, 4, G.WithShape(geom.Y[:]...), G.WithName("res"), G.WithValue(convDense(geom.Y[:], resv)))
			xin := x
			if !tc.plainX {
				xin = G.Must(ToBlocked(x))
			}
			y, err := Conv2dFused(xin, w, b, G.Must(ToBlocked(res)), o, true)
			if err != nil {
				t.Fatal(err)
			}
			yp := G.Must(FromBlocked(y))
			r := G.NewConstant(convDense(geom.Y[:], rv), G.WithName("r"))
			grads, err := G.Backpropagate(G.Nodes{yp}, G.Nodes{r}, G.Nodes{x, w, b, res})
			if err != nil {
				t.Fatal(err)
			}
			m := G.NewTapeMachine(g)
			defer m.Close()
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			ref := convRef{geom}
			want := ref.forward(xv, wv, bv, resv, true)
			if e := convMaxRelErr(yp.Value().Data().([]float32), want); e > 1e-5 {
				t.Errorf("forward: max rel error %g", e)
			}
			dy := make([]float32, len(want))
			for i := range want {
				if want[i] > 0 {
					dy[i] = rv[i]
				}
			}
			dx, dw, db := ref.backward(xv, wv, dy)
			for k, wantG := range [][]float32{dx, dw, db, dy} {
				if e := convMaxRelErr(grads[k].Value().Data().([]float32), wantG); e > 1e-5 {
					t.Errorf("gradient %s: max rel error %g", []string{"x", "w", "b", "res"}[k], e)
				}
			}
		})
	}
}

func TestMaxPool2dBlocked(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	tests := []struct {
		name                string
		shape               []int
		kernel, stride, pad int
	}{
		{name: "stem_3_2_1_odd", shape: []int{1, 16, 11, 9}, kernel: 3, stride: 2, pad: 1},
		{name: "2_2_0", shape: []int{2, 32, 8, 6}, kernel: 2, stride: 2, pad: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			N, C, H, W := tc.shape[0], tc.shape[1], tc.shape[2], tc.shape[3]
			xv := randSlice(rng, N*C*H*W)
			g := G.NewGraph()
			x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(tc.shape...), G.WithName("x"), G.WithValue(convDense(tc.shape, xv)))
			y := G.Must(FromBlocked(G.Must(MaxPool2dBlocked(G.Must(ToBlocked(x)), tc.kernel, tc.stride, tc.pad))))
			m := G.NewTapeMachine(g)
			defer m.Close()
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			OH, OW := (H+2*tc.pad-tc.kernel)/tc.stride+1, (W+2*tc.pad-tc.kernel)/tc.stride+1
			if s := y.Shape(); !s.Eq(tensor.Shape{N, C, OH, OW}) {
				t.Fatalf("shape %v, want %v", s, []int{N, C, OH, OW})
			}
			got := y.Value().Data().([]float32)
			for n := 0; n < N; n++ {
				for c := 0; c < C; c++ {
					for oh := 0; oh < OH; oh++ {
						for ow := 0; ow < OW; ow++ {
							want := float32(math.Inf(-1))
							for kh := 0; kh < tc.kernel; kh++ {
								for kw := 0; kw < tc.kernel; kw++ {
									ih, iw := oh*tc.stride-tc.pad+kh, ow*tc.stride-tc.pad+kw
									if ih >= 0 && ih < H && iw >= 0 && iw < W {
										want = max(want, xv[((n*C+c)*H+ih)*W+iw])
									}
								}
							}
							if v := got[((n*C+c)*OH+oh)*OW+ow]; v != want {
								t.Fatalf("y(%d,%d,%d,%d) = %v, want %v", n, c, oh, ow, v, want)
							}
						}
					}
				}
			}
		})
	}
}
