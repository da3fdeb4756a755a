package nn

import (
	"errors"
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// AffineOpts selects the fused parts of Affine.
type AffineOpts struct {
	// ReLU applies max(·, 0) after the residual add.
	ReLU bool
	// FrozenParams declares scale and shift constant (frozen batch norm in a
	// training graph): no gradient is built for them, which saves one pass over
	// x and the incoming gradient per backward. G.Grad with respect to scale or
	// shift then returns an error. It is implied when both are G.NewConstant
	// nodes.
	FrozenParams bool
}

// Affine returns y = x*scale[c] + shift[c] (+ residual), followed by a ReLU if
// relu is set: frozen batch norm (see FoldBN) fused with the residual add and
// the activation, in one pass over memory. x: [N, C, H, W]; scale, shift: [C];
// residual: nil or [N, C, H, W]. Returns [N, C, H, W]. Gradients flow to x,
// scale, shift and residual.
func Affine(x, scale, shift, residual *G.Node, relu bool) (*G.Node, error) {
	return AffineWith(x, scale, shift, residual, AffineOpts{ReLU: relu})
}

// AffineWith is Affine with options.
func AffineWith(x, scale, shift, residual *G.Node, o AffineOpts) (*G.Node, error) {
	s, err := nodeShape4("Affine", "x", x)
	if err != nil {
		return nil, err
	}
	if err := nodeVec("Affine", "scale", scale, s[1]); err != nil {
		return nil, fmt.Errorf("%w (x is %v)", err, s)
	}
	if err := nodeVec("Affine", "shift", shift, s[1]); err != nil {
		return nil, fmt.Errorf("%w (x is %v)", err, s)
	}
	op := &affineOp{shape: s, relu: o.ReLU, frozen: o.FrozenParams || (isConstant(scale) && isConstant(shift))}
	if residual == nil {
		return G.ApplyOp(op, x, scale, shift)
	}
	rs, err := nodeShape4("Affine", "residual", residual)
	if err != nil {
		return nil, err
	}
	if !rs.Eq(s) {
		return nil, fmt.Errorf("nn: Affine: residual has shape %v, x has %v", rs, s)
	}
	op.residual = true
	return G.ApplyOp(op, x, scale, shift, residual)
}

// isConstant reports whether n was made by G.NewConstant: gorgonia's
// constant ops are the ones holding their value.
func isConstant(n *G.Node) bool {
	_, ok := n.Op().(interface{ Value() G.Value })
	return ok
}

// FoldBN folds frozen batch-norm parameters into a per-channel affine map:
// scale = gamma/sqrt(variance+eps), shift = beta - mean*scale (computed in
// float64, rounded once). All slices have length C. FoldBN panics if the
// lengths differ.
func FoldBN(gamma, beta, mean, variance []float32, eps float32) (scale, shift []float32) {
	c := len(gamma)
	if len(beta) != c || len(mean) != c || len(variance) != c {
		panic(fmt.Sprintf("nn: FoldBN: lengths gamma %d, beta %d, mean %d, variance %d differ",
			len(gamma), len(beta), len(mean), len(variance)))
	}
	scale = make([]float32, c)
	shift = make([]float32, c)
	for i := range gamma {
		s := float64(gamma[i]) / math.Sqrt(float64(variance[i])+float64(eps))
		scale[i] = float32(s)
		shift[i] = float32(float64(beta[i]) - float64(mean[i])*s)
	}
	return scale, shift
}

// relu32 returns max(v, 0) without a branch: the sign bit, smeared over the
// word, clears negative values (-0 and negative NaNs become +0).
func relu32(v float32) float32 {
	b := math.Float32bits(v)
	return math.Float32frombits(b &^ uint32(int32(b)>>31))
}

// posMask returns all ones if the float with bits b is > 0 (or a NaN with the
// sign bit clear), else 0, without a branch: masks over random signs would
// mispredict half the time.
func posMask(b uint32) uint32 {
	nonzero := uint32(int32(b|-b) >> 31)
	return nonzero &^ uint32(int32(b)>>31)
}

// affineKernel computes y = x*scale[c] + shift[c] (+ r) (ReLU) over planes of hw
// elements, c = plane mod len(scale). r may be nil.
func affineKernel(y, x, r, scale, shift []float32, hw int, relu bool) {
	n, nc := len(x), len(scale)
	parallelParts(n, parts(n), func(_, lo, hi int) {
		for lo < hi {
			p := lo / hw
			end := min(hi, (p+1)*hw)
			c := p % nc
			s, b := scale[c], shift[c]
			switch {
			case r == nil && !relu:
				affineSeg(y[lo:end], x[lo:end], s, b)
			case r == nil:
				affineSegReLU(y[lo:end], x[lo:end], s, b)
			case !relu:
				affineSegRes(y[lo:end], x[lo:end], r[lo:end], s, b)
			default:
				affineSegResReLU(y[lo:end], x[lo:end], r[lo:end], s, b)
			}
			lo = end
		}
	})
}

// The segment loops below are unrolled by 4 (about 15-20% faster than the
// plain loops here: less loop overhead, more independent work per
// iteration); the three-index slices let the compiler drop bounds checks.

func affineSeg(y, x []float32, s, b float32) {
	n := len(x)
	y = y[:n]
	i := 0
	for ; i+4 <= n; i += 4 {
		xx, yy := x[i:i+4:i+4], y[i:i+4:i+4]
		yy[0] = xx[0]*s + b
		yy[1] = xx[1]*s + b
		yy[2] = xx[2]*s + b
		yy[3] = xx[3]*s + b
	}
	for ; i < n; i++ {
		y[i] = x[i]*s + b
	}
}

func affineSegReLU(y, x []float32, s, b float32) {
	n := len(x)
	y = y[:n]
	i := 0
	for ; i+4 <= n; i += 4 {
		xx, yy := x[i:i+4:i+4], y[i:i+4:i+4]
		yy[0] = relu32(xx[0]*s + b)
		yy[1] = relu32(xx[1]*s + b)
		yy[2] = relu32(xx[2]*s + b)
		yy[3] = relu32(xx[3]*s + b)
	}
	for ; i < n; i++ {
		y[i] = relu32(x[i]*s + b)
	}
}

func affineSegRes(y, x, r []float32, s, b float32) {
	n := len(x)
	y, r = y[:n], r[:n]
	i := 0
	for ; i+4 <= n; i += 4 {
		xx, rr, yy := x[i:i+4:i+4], r[i:i+4:i+4], y[i:i+4:i+4]
		yy[0] = xx[0]*s + b + rr[0]
		yy[1] = xx[1]*s + b + rr[1]
		yy[2] = xx[2]*s + b + rr[2]
		yy[3] = xx[3]*s + b + rr[3]
	}
	for ; i < n; i++ {
		y[i] = x[i]*s + b + r[i]
	}
}

func affineSegResReLU(y, x, r []float32, s, b float32) {
	n := len(x)
	y, r = y[:n], r[:n]
	i := 0
	for ; i+4 <= n; i += 4 {
		xx, rr, yy := x[i:i+4:i+4], r[i:i+4:i+4], y[i:i+4:i+4]
		yy[0] = relu32(xx[0]*s + b + rr[0])
		yy[1] = relu32(xx[1]*s + b + rr[1])
		yy[2] = relu32(xx[2]*s + b + rr[2])
		yy[3] = relu32(xx[3]*s + b + rr[3])
	}
	for ; i < n; i++ {
		y[i] = relu32(x[i]*s + b + r[i])
	}
}

// affineGradXKernel computes dx = g*scale[c], where g = gy, or gy masked by
// y > 0 if y is not nil (the ReLU case).
func affineGradXKernel(dx, y, gy, scale []float32, hw int) {
	n, nc := len(gy), len(scale)
	parallelParts(n, parts(n), func(_, lo, hi int) {
		for lo < hi {
			p := lo / hw
			end := min(hi, (p+1)*hw)
			s := scale[p%nc]
			if y == nil {
				affineSeg(dx[lo:end], gy[lo:end], s, 0)
			} else {
				maskScaleSeg(dx[lo:end], y[lo:end], gy[lo:end], s)
			}
			lo = end
		}
	})
}

func maskScaleSeg(dx, y, gy []float32, s float32) {
	n := len(y)
	dx, gy = dx[:n], gy[:n]
	i := 0
	for ; i+4 <= n; i += 4 {
		yy, gg, dd := y[i:i+4:i+4], gy[i:i+4:i+4], dx[i:i+4:i+4]
		dd[0] = maskF(gg[0], yy[0]) * s
		dd[1] = maskF(gg[1], yy[1]) * s
		dd[2] = maskF(gg[2], yy[2]) * s
		dd[3] = maskF(gg[3], yy[3]) * s
	}
	for ; i < n; i++ {
		dx[i] = maskF(gy[i], y[i]) * s
	}
}

// maskF returns g if y > 0, else 0, without a branch.
func maskF(g, y float32) float32 {
	return math.Float32frombits(math.Float32bits(g) & posMask(math.Float32bits(y)))
}

// affineGradParamsKernel returns dscale[c] = Σ g·x and dshift[c] = Σ g over the
// planes of channel c, in out[0:C] and out[C:2C]; g is gy, or gy masked by
// y > 0 if y is not nil. Sums are accumulated in float64.
func affineGradParamsKernel(out, x, y, gy []float32, nc, hw int) {
	n := len(x)
	np := parts(n)
	partial := make([]float64, np*2*nc)
	parallelParts(n, np, func(part, lo, hi int) {
		acc := partial[part*2*nc : (part+1)*2*nc]
		for lo < hi {
			p := lo / hw
			end := min(hi, (p+1)*hw)
			c := p % nc
			var sgx, sg float64
			if y == nil {
				sgx, sg = dotSumSeg(gy[lo:end], x[lo:end])
			} else {
				sgx, sg = maskedDotSumSeg(gy[lo:end], x[lo:end], y[lo:end])
			}
			acc[c] += sgx
			acc[nc+c] += sg
			lo = end
		}
	})
	for c := 0; c < 2*nc; c++ {
		var s float64
		for p := 0; p < np; p++ {
			s += partial[p*2*nc+c]
		}
		out[c] = float32(s)
	}
}

// dotSumSeg returns Σ g·x and Σ g, accumulated in float32 in four
// independent chains (the add latency, not memory, bounds a single chain)
// over runs of 64 elements and in float64 across runs.
func dotSumSeg(g, x []float32) (float64, float64) {
	x = x[:len(g)]
	var sgx, sg float64
	for len(g) >= 64 {
		gg, xx := g[:64:64], x[:64:64]
		var a0, a1, a2, a3, b0, b1, b2, b3 float32
		for i := 0; i < 64; i += 4 {
			g4, x4 := gg[i:i+4:i+4], xx[i:i+4:i+4]
			a0 += g4[0] * x4[0]
			a1 += g4[1] * x4[1]
			a2 += g4[2] * x4[2]
			a3 += g4[3] * x4[3]
			b0 += g4[0]
			b1 += g4[1]
			b2 += g4[2]
			b3 += g4[3]
		}
		sgx += float64((a0 + a1) + (a2 + a3))
		sg += float64((b0 + b1) + (b2 + b3))
		g, x = g[64:], x[64:]
	}
	for i, v := range g {
		sgx += float64(v * x[i])
		sg += float64(v)
	}
	return sgx, sg
}

// maskedDotSumSeg is dotSumSeg with g masked by y > 0.
func maskedDotSumSeg(g, x, y []float32) (float64, float64) {
	x, y = x[:len(g)], y[:len(g)]
	var sgx, sg float64
	for len(g) >= 64 {
		gg, xx, yy := g[:64:64], x[:64:64], y[:64:64]
		var a0, a1, a2, a3, b0, b1, b2, b3 float32
		for i := 0; i < 64; i += 4 {
			g4, x4, y4 := gg[i:i+4:i+4], xx[i:i+4:i+4], yy[i:i+4:i+4]
			m0, m1, m2, m3 := maskF(g4[0], y4[0]), maskF(g4[1], y4[1]), maskF(g4[2], y4[2]), maskF(g4[3], y4[3])
			a0 += m0 * x4[0]
			a1 += m1 * x4[1]
			a2 += m2 * x4[2]
			a3 += m3 * x4[3]
			b0 += m0
			b1 += m1
			b2 += m2
			b3 += m3
		}
		sgx += float64((a0 + a1) + (a2 + a3))
		sg += float64((b0 + b1) + (b2 + b3))
		g, x, y = g[64:], x[64:], y[64:]
	}
	for i, v := range g {
		m := maskF(v, y[i])
		sgx += float64(m * x[i])
		sg += float64(m)
	}
	return sgx, sg
}

// affineOp: (x, scale, shift[, residual]) -> y.
type affineOp struct {
	HostOp
	shape          tensor.Shape
	relu, residual bool
	frozen         bool
}

func (op *affineOp) Arity() int {
	if op.residual {
		return 4
	}
	return 3
}
func (op *affineOp) Type() hm.Type {
	t, v := tensorT(4), tensorT(1)
	if op.residual {
		return hm.NewFnType(t, v, v, t, t)
	}
	return hm.NewFnType(t, v, v, t)
}
func (op *affineOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}
func (op *affineOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *affineOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	c := tensor.Shape{op.shape[1]}
	want := []tensor.Shape{op.shape, c, c}
	if op.residual {
		want = append(want, op.shape)
	}
	in, err := inputsF32("Affine", vals, want...)
	if err != nil {
		return nil, err
	}
	t, y, err := outputF32("Affine", prealloc, op.shape)
	if err != nil {
		return nil, err
	}
	var r []float32
	if op.residual {
		r = in[3]
	}
	affineKernel(y, in[0], r, in[1], in[2], op.shape[2]*op.shape[3], op.relu)
	return t, nil
}
func (op *affineOp) String() string {
	return fmt.Sprintf("nn.Affine%v(relu=%v,residual=%v,frozen=%v)", op.shape, op.relu, op.residual, op.frozen)
}
func (op *affineOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *affineOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *affineOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = !op.frozen || i == 0 || i == 3
	}
	return d
}
func (op *affineOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("nn: Affine gradient: got %d inputs, want %d", len(inputs), op.Arity())
	}
	x, scale := inputs[0], inputs[1]
	out := make(G.Nodes, len(inputs))
	var err error
	gx := &affineGradXOp{shape: op.shape, relu: op.relu}
	if op.relu {
		out[0], err = G.ApplyOp(gx, output, grad, scale)
	} else {
		out[0], err = G.ApplyOp(gx, grad, scale)
	}
	if err != nil {
		return nil, fmt.Errorf("nn: Affine gradient w.r.t. x: %w", err)
	}
	if !op.frozen {
		gp := &affineGradParamsOp{shape: op.shape, relu: op.relu}
		var p *G.Node
		if op.relu {
			p, err = G.ApplyOp(gp, x, output, grad)
		} else {
			p, err = G.ApplyOp(gp, x, grad)
		}
		if err != nil {
			return nil, fmt.Errorf("nn: Affine gradient w.r.t. scale and shift: %w", err)
		}
		for i := 0; i < 2; i++ {
			if out[1+i], err = G.ApplyOp(&rowOp{rows: 2, cols: op.shape[1], row: i}, p); err != nil {
				return nil, fmt.Errorf("nn: Affine gradient w.r.t. scale and shift: %w", err)
			}
		}
	}
	if op.residual {
		out[3] = grad
		if op.relu {
			if out[3], err = G.ApplyOp(&reluGradOp{shape: op.shape}, output, grad); err != nil {
				return nil, fmt.Errorf("nn: Affine gradient w.r.t. residual: %w", err)
			}
		}
	}
	return out, nil
}

// affineGradXOp: ([y,] gy, scale) -> dx = g*scale[c], g = gy masked by y > 0
// when relu.
type affineGradXOp struct {
	HostOp
	shape tensor.Shape
	relu  bool
}

func (op *affineGradXOp) Arity() int {
	if op.relu {
		return 3
	}
	return 2
}
func (op *affineGradXOp) Type() hm.Type {
	t, v := tensorT(4), tensorT(1)
	if op.relu {
		return hm.NewFnType(t, t, v, t)
	}
	return hm.NewFnType(t, v, t)
}
func (op *affineGradXOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}
func (op *affineGradXOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *affineGradXOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	c := tensor.Shape{op.shape[1]}
	want := []tensor.Shape{op.shape, c}
	if op.relu {
		want = []tensor.Shape{op.shape, op.shape, c}
	}
	in, err := inputsF32("Affine gradient", vals, want...)
	if err != nil {
		return nil, err
	}
	t, dx, err := outputF32("Affine gradient", prealloc, op.shape)
	if err != nil {
		return nil, err
	}
	hw := op.shape[2] * op.shape[3]
	if op.relu {
		affineGradXKernel(dx, in[0], in[1], in[2], hw)
	} else {
		affineGradXKernel(dx, nil, in[0], in[1], hw)
	}
	return t, nil
}
func (op *affineGradXOp) String() string {
	return fmt.Sprintf("nn.AffineGradX%v(relu=%v)", op.shape, op.relu)
}
func (op *affineGradXOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *affineGradXOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *affineGradXOp) DiffWRT(n int) []bool  { return make([]bool, n) }
func (op *affineGradXOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, errors.New("nn: Affine gradient: second derivative not implemented")
}

// affineGradParamsOp: (x, [y,] gy) -> [2, C]: row 0 = dscale, row 1 = dshift.
type affineGradParamsOp struct {
	HostOp
	shape tensor.Shape
	relu  bool
}

func (op *affineGradParamsOp) Arity() int {
	if op.relu {
		return 3
	}
	return 2
}
func (op *affineGradParamsOp) Type() hm.Type {
	t, m := tensorT(4), tensorT(2)
	if op.relu {
		return hm.NewFnType(t, t, t, m)
	}
	return hm.NewFnType(t, t, m)
}
func (op *affineGradParamsOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{2, op.shape[1]}, nil
}
func (op *affineGradParamsOp) Do(vals ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(nil, vals...)
}
func (op *affineGradParamsOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	want := []tensor.Shape{op.shape, op.shape}
	if op.relu {
		want = append(want, op.shape)
	}
	in, err := inputsF32("Affine parameter gradient", vals, want...)
	if err != nil {
		return nil, err
	}
	nc := op.shape[1]
	t, out, err := outputF32("Affine parameter gradient", prealloc, tensor.Shape{2, nc})
	if err != nil {
		return nil, err
	}
	hw := op.shape[2] * op.shape[3]
	if op.relu {
		affineGradParamsKernel(out, in[0], in[1], in[2], nc, hw)
	} else {
		affineGradParamsKernel(out, in[0], nil, in[1], nc, hw)
	}
	return t, nil
}
func (op *affineGradParamsOp) String() string {
	return fmt.Sprintf("nn.AffineGradParams%v(relu=%v)", op.shape, op.relu)
}
func (op *affineGradParamsOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *affineGradParamsOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *affineGradParamsOp) DiffWRT(n int) []bool  { return make([]bool, n) }
func (op *affineGradParamsOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, errors.New("nn: Affine parameter gradient: second derivative not implemented")
}

// rowOp: [rows, cols] -> [cols], a copy of row `row`. Used to split the packed
// parameter gradients.
type rowOp struct {
	HostOp
	rows, cols, row int
}

func (op *rowOp) Arity() int                                     { return 1 }
func (op *rowOp) Type() hm.Type                                  { return hm.NewFnType(tensorT(2), tensorT(1)) }
func (op *rowOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.Shape{op.cols}, nil }
func (op *rowOp) Do(vals ...G.Value) (G.Value, error)            { return op.UsePreallocDo(nil, vals...) }
func (op *rowOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	in, err := inputsF32("row", vals, tensor.Shape{op.rows, op.cols})
	if err != nil {
		return nil, err
	}
	t, out, err := outputF32("row", prealloc, tensor.Shape{op.cols})
	if err != nil {
		return nil, err
	}
	copy(out, in[0][op.row*op.cols:(op.row+1)*op.cols])
	return t, nil
}
func (op *rowOp) String() string {
	return fmt.Sprintf("nn.Row(%d of [%d %d])", op.row, op.rows, op.cols)
}
func (op *rowOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *rowOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *rowOp) DiffWRT(n int) []bool  { return make([]bool, n) }
func (op *rowOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, errors.New("nn: row: not differentiable")
}
