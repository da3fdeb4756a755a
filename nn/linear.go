package nn

import (
	"errors"
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Linear returns x·wᵀ + b, a fully connected layer with torch's weight layout.
// x: [N, In]; w: [Out, In]; b: [Out] or nil. Returns [N, Out]. The matrix
// multiplies run in oneDNN's sgemm (Threads() threads). Gradients flow to x, w and b.
func Linear(x, w, b *G.Node) (*G.Node, error) { return LinearWith(x, w, b, LinearOpts{}) }

// LinearOpts configures LinearWith.
type LinearOpts struct {
	// BF16 runs the forward product in bfloat16: x and w rounded to bf16,
	// accumulation, bias and output in float32 (oneDNN's bf16 convolution
	// with a 1x1 kernel, [N, In, 1, 1] * [Out, In, 1, 1]: the same memory
	// as x and w). It fails on CPUs without bf16 (see BF16Supported).
	// Gradients, if asked for (mixed-precision training), run in bf16 too,
	// as the convolution's (ConvOpts.BF16): dx from w and dy rounded to
	// bf16, dw from x and dy rounded to bf16, both accumulated and returned
	// in float32 (oneDNN's 1x1 convolution backward primitives on the same
	// memory); the bias gradient is float32.
	BF16 bool
	// ConstWeights (with BF16) keeps w converted to bf16 after the first
	// run, as ConvOpts.ConstWeights.
	ConstWeights bool
}

// LinearWith is Linear with options.
func LinearWith(x, w, b *G.Node, o LinearOpts) (*G.Node, error) {
	if x == nil || w == nil {
		return nil, errors.New("nn: Linear: x or w is nil")
	}
	xs, ws := x.Shape(), w.Shape()
	if x.Dtype() != tensor.Float32 || w.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("nn: Linear: x is %v, w is %v, want float32", x.Dtype(), w.Dtype())
	}
	if len(xs) != 2 || len(ws) != 2 || xs[1] != ws[1] {
		return nil, fmt.Errorf("nn: Linear: x %v and w %v: want x [N, In] and w [Out, In]", xs, ws)
	}
	op := &linearOp{n: xs[0], in: xs[1], out: ws[0], bf16: o.BF16, constW: o.BF16 && o.ConstWeights}
	if op.bf16 {
		if err := checkBF16(); err != nil {
			return nil, fmt.Errorf("nn: Linear: x %v and w %v: %w", xs, ws, err)
		}
	}
	if b == nil {
		return G.ApplyOp(op, x, w)
	}
	if err := nodeVec("Linear", "b", b, ws[0]); err != nil {
		return nil, fmt.Errorf("%w (w is %v)", err, ws)
	}
	op.bias = true
	return G.ApplyOp(op, x, w, b)
}

// linearOp: (x [N, In], w [Out, In][, b [Out]]) -> [N, Out].
type linearOp struct {
	HostOp
	n, in, out   int
	bias         bool
	bf16, constW bool // LinearOpts
}

// conv is the bf16 product as a 1x1 convolution on the same memory: one
// image whose N rows are N positions, x [1, In, N, 1] and y [1, Out, N, 1]
// channels-last (convGeom.NHWC). As a batch of N 1x1 images ([N, In, 1,
// 1]) oneDNN 2.6's brgconv_1x1 computed one row per image, a matrix-vector
// product each: 72 GFLOP/s on the FPN box head's fc6 (250 x 12544 x 1024)
// against 600-800 for the convolutions around it.
func (op *linearOp) conv() dnnlConv {
	g := convGeom{X: [4]int{1, op.in, op.n, 1}, W: [4]int{op.out, op.in, 1, 1}, Y: [4]int{1, op.out, op.n, 1},
		Stride: [2]int{1, 1}, Dil: [2]int{1, 1}, Groups: 1, BF16: true, NHWC: true}
	return dnnlConv{kind: dnnlFwd, geom: g, bias: op.bias}
}

func (op *linearOp) Arity() int {
	if op.bias {
		return 3
	}
	return 2
}
func (op *linearOp) Type() hm.Type {
	m := tensorT(2)
	if op.bias {
		return hm.NewFnType(m, m, tensorT(1), m)
	}
	return hm.NewFnType(m, m, m)
}
func (op *linearOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.n, op.out}, nil
}
func (op *linearOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *linearOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	want := []tensor.Shape{{op.n, op.in}, {op.out, op.in}}
	if op.bias {
		want = append(want, tensor.Shape{op.out})
	}
	in, err := inputsF32("Linear", vals, want...)
	if err != nil {
		return nil, err
	}
	t, y, err := outputF32("Linear", prealloc, tensor.Shape{op.n, op.out})
	if err != nil {
		return nil, err
	}
	if op.bf16 && op.n > 0 {
		return t, op.conv().run(append(in, y), convExtra{constWeights: op.constW})
	}
	beta := float32(0)
	if op.bias {
		for i := 0; i < op.n; i++ {
			copy(y[i*op.out:(i+1)*op.out], in[2])
		}
		beta = 1
	}
	if err := sgemm(false, true, op.n, op.out, op.in, 1, in[0], op.in, in[1], op.in, beta, y, op.out); err != nil {
		return nil, err
	}
	return t, nil
}
func (op *linearOp) String() string {
	if op.bf16 {
		return fmt.Sprintf("nn.Linear(n=%d,in=%d,out=%d,bias=%v,bf16,const=%v)", op.n, op.in, op.out, op.bias, op.constW)
	}
	return fmt.Sprintf("nn.Linear(n=%d,in=%d,out=%d,bias=%v)", op.n, op.in, op.out, op.bias)
}
func (op *linearOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *linearOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *linearOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}
func (op *linearOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("nn: Linear gradient: got %d inputs, want %d", len(inputs), op.Arity())
	}
	x, w := inputs[0], inputs[1]
	out := make(G.Nodes, len(inputs))
	var err error
	if op.bf16 && op.n > 0 {
		g := op.conv().geom
		if out[0], err = G.ApplyOp(&linearBF16GradOp{kind: dnnlBwdData, geom: g}, w, grad); err != nil {
			return nil, fmt.Errorf("nn: Linear gradient w.r.t. x: %w", err)
		}
		if out[1], err = G.ApplyOp(&linearBF16GradOp{kind: dnnlBwdWeights, geom: g}, x, grad); err != nil {
			return nil, fmt.Errorf("nn: Linear gradient w.r.t. w: %w", err)
		}
	} else {
		out[0], out[1], err = op.gradF32(x, w, grad)
		if err != nil {
			return nil, err
		}
	}
	if op.bias {
		if out[2], err = G.ApplyOp(&sumRowsOp{rows: op.n, cols: op.out}, grad); err != nil {
			return nil, fmt.Errorf("nn: Linear gradient w.r.t. b: %w", err)
		}
	}
	return out, nil
}

// gradF32 returns the float32 gradients w.r.t. x and w.
func (op *linearOp) gradF32(x, w, grad *G.Node) (dx, dw *G.Node, err error) {
	// dx [N, In] = gy [N, Out] · w [Out, In]
	if dx, err = G.ApplyOp(&gemmOp{m: op.n, n: op.in, k: op.out}, grad, w); err != nil {
		return nil, nil, fmt.Errorf("nn: Linear gradient w.r.t. x: %w", err)
	}
	// dw [Out, In] = gyᵀ [Out, N] · x [N, In]
	if dw, err = G.ApplyOp(&gemmOp{m: op.out, n: op.in, k: op.n, transA: true}, grad, x); err != nil {
		return nil, nil, fmt.Errorf("nn: Linear gradient w.r.t. w: %w", err)
	}
	return dx, dw, nil
}

// linearBF16GradOp is a bf16 Linear's gradient as oneDNN's 1x1
// convolution backward on geom (linearOp.conv's: X [1, In, N, 1],
// W [Out, In, 1, 1], Y [1, Out, N, 1] channels-last, the same memory as
// the 2-D tensors). kind
// dnnlBwdData: (w [Out, In], dy [N, Out]) -> dx [N, In]; dnnlBwdWeights:
// (x [N, In], dy [N, Out]) -> dw [Out, In].
type linearBF16GradOp struct {
	HostOp
	kind int
	geom convGeom
}

// shapes returns the first input's and the output's shapes.
func (op *linearBF16GradOp) shapes() (a, out tensor.Shape) {
	n, in, o := op.geom.X[2], op.geom.X[1], op.geom.W[0]
	if op.kind == dnnlBwdData {
		return tensor.Shape{o, in}, tensor.Shape{n, in}
	}
	return tensor.Shape{n, in}, tensor.Shape{o, in}
}
func (op *linearBF16GradOp) Arity() int    { return 2 }
func (op *linearBF16GradOp) Type() hm.Type { m := tensorT(2); return hm.NewFnType(m, m, m) }
func (op *linearBF16GradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	_, out := op.shapes()
	return out, nil
}
func (op *linearBF16GradOp) Do(vals ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(nil, vals...)
}
func (op *linearBF16GradOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	a, out := op.shapes()
	in, err := inputsF32(op.String(), vals, a, tensor.Shape{op.geom.Y[2], op.geom.Y[1]})
	if err != nil {
		return nil, err
	}
	t, res, err := outputF32(op.String(), prealloc, out)
	if err != nil {
		return nil, err
	}
	if err := (dnnlConv{kind: op.kind, geom: op.geom}).run([][]float32{in[0], in[1], res}, convExtra{}); err != nil {
		return nil, fmt.Errorf("nn: %s: %w", op, err)
	}
	return t, nil
}
func (op *linearBF16GradOp) String() string {
	what := "dx"
	if op.kind == dnnlBwdWeights {
		what = "dw"
	}
	return fmt.Sprintf("nn.LinearBF16Grad(%s,n=%d,in=%d,out=%d)", what, op.geom.X[2], op.geom.X[1], op.geom.W[0])
}
func (op *linearBF16GradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *linearBF16GradOp) Hashcode() uint32      { return hashOf(op.String()) }

// gemmOp: (A, B) -> op(A)·op(B), op(A) [m, k], op(B) [k, n]; A is stored
// [k, m] when transA, B is stored [n, k] when transB.
type gemmOp struct {
	HostOp
	m, n, k        int
	transA, transB bool
}

func (op *gemmOp) shapes() (a, b tensor.Shape) {
	a, b = tensor.Shape{op.m, op.k}, tensor.Shape{op.k, op.n}
	if op.transA {
		a = tensor.Shape{op.k, op.m}
	}
	if op.transB {
		b = tensor.Shape{op.n, op.k}
	}
	return a, b
}
func (op *gemmOp) Arity() int    { return 2 }
func (op *gemmOp) Type() hm.Type { m := tensorT(2); return hm.NewFnType(m, m, m) }
func (op *gemmOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.m, op.n}, nil
}
func (op *gemmOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *gemmOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	as, bs := op.shapes()
	in, err := inputsF32("matmul", vals, as, bs)
	if err != nil {
		return nil, err
	}
	t, c, err := outputF32("matmul", prealloc, tensor.Shape{op.m, op.n})
	if err != nil {
		return nil, err
	}
	if err := sgemm(op.transA, op.transB, op.m, op.n, op.k, 1, in[0], as[1], in[1], bs[1], 0, c, op.n); err != nil {
		return nil, err
	}
	return t, nil
}
func (op *gemmOp) String() string {
	return fmt.Sprintf("nn.MatMul(m=%d,n=%d,k=%d,tA=%v,tB=%v)", op.m, op.n, op.k, op.transA, op.transB)
}
func (op *gemmOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *gemmOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *gemmOp) DiffWRT(n int) []bool  { return make([]bool, n) }
func (op *gemmOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, errors.New("nn: Linear gradient: second derivative not implemented")
}

// sumRowsOp: [rows, cols] -> [cols], the column sums (float64 accumulation).
type sumRowsOp struct {
	HostOp
	rows, cols int
}

func (op *sumRowsOp) Arity() int    { return 1 }
func (op *sumRowsOp) Type() hm.Type { return hm.NewFnType(tensorT(2), tensorT(1)) }
func (op *sumRowsOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.cols}, nil
}
func (op *sumRowsOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *sumRowsOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	in, err := inputsF32("column sum", vals, tensor.Shape{op.rows, op.cols})
	if err != nil {
		return nil, err
	}
	t, out, err := outputF32("column sum", prealloc, tensor.Shape{op.cols})
	if err != nil {
		return nil, err
	}
	acc := make([]float64, op.cols)
	for i := 0; i < op.rows; i++ {
		row := in[0][i*op.cols : (i+1)*op.cols]
		for j, v := range row {
			acc[j] += float64(v)
		}
	}
	for j, v := range acc {
		out[j] = float32(v)
	}
	return t, nil
}
func (op *sumRowsOp) String() string        { return fmt.Sprintf("nn.SumRows(%d,%d)", op.rows, op.cols) }
func (op *sumRowsOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *sumRowsOp) Hashcode() uint32      { return hashOf(op.String()) }
func (op *sumRowsOp) DiffWRT(n int) []bool  { return make([]bool, n) }
func (op *sumRowsOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, errors.New("nn: Linear gradient: second derivative not implemented")
}
