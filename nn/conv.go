package nn

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ConvOpts configures a 2-D convolution. Pairs are (H, W).
type ConvOpts struct {
	Stride, Pad, Dilation [2]int // zero values mean stride 1, pad 0, dilation 1
	Groups                int    // 0 or 1: ordinary convolution

	// BF16 runs the convolution in bfloat16 (x and w rounded to bf16;
	// accumulation, bias, post-ops and output in float32). Meant for CPUs
	// with AVX512-BF16 or AMX; oneDNN emulates it on other AVX-512 CPUs, and
	// building the op fails on CPUs without AVX-512 (see BF16Supported).
	// Gradients, if asked for (mixed-precision training), run in bf16 too:
	// backward data rounds w and dy to bf16 and returns dx in float32,
	// backward weights rounds x and dy to bf16 and accumulates dw in
	// float32; the bias gradient, the ReLU mask and the residual's gradient
	// stay float32. The user's tensors (x, w, dy, dx, dw) are float32
	// throughout: the weights are rounded to bf16 on every run unless
	// ConstWeights. On an AVX512-BF16 CPU without AMX (oneDNN 2.6.3,
	// ONEDNN_VERBOSE) the backward primitives are jit_bf16:avx512_core_bf16
	// (1x1: jit_bf16_1x1:avx512_core_bf16) on nChw16c (aBcd16b) bf16
	// diff_dst, with weights ABcd8a16b2a (backward data) and f32
	// diff_weights ABcd16b16a (backward weights; the stem's 3-channel
	// input: src abcd, diff_weights Acdb16a); the forward is the brgconv
	// below.
	//
	// Layouts, and why they decide whether AMX is used (issue 14): the
	// primitive is created with the source and weights as bf16 and the
	// destination as f32 (bf16 in a bf16 chain), all three in format `any`,
	// prop kind forward_inference, user scratchpad, no fpmath mode (it only
	// matters for f32 primitives). oneDNN 2.6's AMX kernels
	// (brgconv:avx512_core_amx_bf16, jit:avx512_core_amx) and its
	// brgconv:avx512_core_bf16 accept only channels-last activations
	// (acdb = nhwc) with VNNI-blocked weights (AcdB16a2b, AcdB64a2b, ...):
	// they take `any` and choose those, and refuse any other fixed tag. A
	// bf16 source fixed to the blocked nChw16c (aBcd16b) or to plain NCHW,
	// or weights fixed to oihw, leave only jit_bf16:avx512_core_bf16 (no
	// AMX) or a reference kernel. That is what torch 1.13 does with NCHW
	// tensors under autocast (ONEDNN_VERBOSE: src aBcd16b, weights
	// ABcd8b16a2b, jit_bf16:avx512_core_bf16); with channels_last tensors it
	// gets acdb and brgconv, as this path does. On an AVX512-BF16 CPU
	// without AMX this path runs brgconv:avx512_core_bf16 (1x1:
	// brgconv_1x1:avx512_core_bf16), src bf16 acdb, weights bf16 AcdB64a2b
	// (AcdB16a2b for narrow layers), dst f32 acdb; oneDNN picks the AMX
	// brgconv on AMX CPUs from the same request. Outside a bf16 chain
	// (BlockedBF16) the activations between ops stay float32 (NCHW or
	// BlockedIn/BlockedOut's nChw16c), so every bf16 convolution reorders
	// its input f32 -> bf16 acdb and its output f32 acdb -> the user layout
	// (ConstWeights converts the weights once); in a bf16 chain only the
	// weights are converted. The copies live in the engine's per-lane arena
	// during the call; without ConstWeights, a call whose copies would
	// exceed 32 MiB runs on chunks of the batch (convChunkBytes).
	BF16 bool

	// BlockedBF16 (with BF16) makes the blocked tensors (x if BlockedIn; y
	// and residual if BlockedOut) bfloat16 in channels-last order (oneDNN's
	// acdb, the layout of ToBlockedBF16), nodes of dtype BFloat16, instead
	// of float32 nChw16c. The convolution then reads and writes them as
	// they are: no reorder and no arena copy, half the bytes per
	// activation, and the residual add and ReLU run on the bf16 destination
	// (as torch's autocast with channels_last tensors: bf16 in, bf16 out).
	// Accumulation and the bias stay float32. Gradients of the chain's
	// values are float32 in the f32 blocked layout (nChw<Block>c, as with
	// BlockedIn/BlockedOut alone); what training saves for the backward
	// pass (x for the weight gradient, y for the ReLU mask) is bf16, half
	// the bytes of an f32 chain. The results are those of the f32 chain
	// with BF16, up to the rounding of y to bf16.
	BlockedBF16 bool

	// NoInputGrad declares that x needs no gradient (e.g. the image going into
	// the stem): the gradient w.r.t. x is not built, which saves the
	// backward-data convolution. G.Grad w.r.t. x then fails.
	NoInputGrad bool

	// BlockedIn says x is stored in oneDNN's blocked layout for this CPU
	// (nChw16c or nChw8c, see ToBlocked) instead of NCHW; BlockedOut says the
	// same of y and residual. The node shapes stay [N, C, H, W]. Chains of
	// convolutions in blocked layout skip the two layout conversions per
	// convolution that plain NCHW needs. Other ops of this package expect
	// NCHW: convert with FromBlocked first. Require C (resp. OutC) to be a
	// multiple of 16 on every CPU.
	BlockedIn, BlockedOut bool

	// ConstWeights declares that w (and Conv2dBN's scale) keep their values
	// and their memory for as long as the graph runs (inference with loaded
	// weights). The forward op then converts them to oneDNN's layout once,
	// on the first run, and keeps that copy (one extra copy of the weights,
	// keyed by their address; ReleaseConvBuffers drops it) instead of
	// converting on every run. The copy keeps the weights themselves
	// reachable until ReleaseConvBuffers, so that no later tensor can take
	// their address. Changing the weights in place afterwards is not seen:
	// leave it false for training.
	ConstWeights bool
}

// convBlock is the channel multiple the blocked layout requires on every
// CPU: the largest block oneDNN uses (nChw16c).
const convBlock = 16

// convBlockDefault is the block assumed if oneDNN cannot be asked.
const convBlockDefault = 16

// convGeom is a fully specified convolution: shapes and normalised options.
// It is comparable and hashable.
type convGeom struct {
	X, W, Y          [4]int // x [N, C, H, W], w [OutC, C/Groups, KH, KW], y [N, OutC, OH, OW]
	Stride, Pad, Dil [2]int
	Groups           int
	BF16             bool
	BlockedIn        bool // x (and dx) in nChw<Block>c
	BlockedOut       bool // y, residual (and dy) in nChw<Block>c
	Block            int  // channel block of the blocked layout (8 or 16); 0 if neither is blocked
	ChainBF16        bool // the blocked tensors are bf16 acdb (ConvOpts.BlockedBF16), not f32 nChw<Block>c
	// NHWC: x and y (and their gradients), where not blocked, are float32
	// channels-last (acdb) instead of NCHW: a Linear's x [N, In] and y
	// [N, Out] are [1, In, N, 1] and [1, Out, N, 1] in that layout
	// (linearOp.conv).
	NHWC bool
}

// newConvGeom checks x and w against o and computes the output shape.
func newConvGeom(op string, x, w tensor.Shape, o ConvOpts) (convGeom, error) {
	var g convGeom
	if len(x) != 4 || len(w) != 4 {
		return g, fmt.Errorf("nn: %s: x %v and w %v: want 4-D x [N, C, H, W] and w [OutC, C/Groups, KH, KW]", op, x, w)
	}
	copy(g.X[:], x)
	copy(g.W[:], w)
	g.Groups = max(o.Groups, 1)
	g.BF16 = o.BF16
	if g.BF16 {
		if err := checkBF16(); err != nil {
			return g, fmt.Errorf("nn: %s: x %v and w %v: %w", op, x, w, err)
		}
	}
	g.BlockedIn, g.BlockedOut = o.BlockedIn, o.BlockedOut
	if (g.BlockedIn && g.X[1]%convBlock != 0) || (g.BlockedOut && g.W[0]%convBlock != 0) {
		return g, fmt.Errorf("nn: %s: x %v and w %v: blocked layout needs channels divisible by %d", op, x, w, convBlock)
	}
	if g.BlockedIn || g.BlockedOut {
		g.Block = CPU().Block
	}
	if o.BlockedBF16 {
		if !g.BF16 || !(g.BlockedIn || g.BlockedOut) {
			return g, fmt.Errorf("nn: %s: x %v and w %v: BlockedBF16 needs BF16 and BlockedIn or BlockedOut", op, x, w)
		}
		g.ChainBF16 = true
	}
	for i := 0; i < 2; i++ {
		g.Stride[i] = o.Stride[i]
		if g.Stride[i] == 0 {
			g.Stride[i] = 1
		}
		g.Dil[i] = o.Dilation[i]
		if g.Dil[i] == 0 {
			g.Dil[i] = 1
		}
		g.Pad[i] = o.Pad[i]
		if g.Stride[i] < 0 || g.Dil[i] < 0 || g.Pad[i] < 0 {
			return g, fmt.Errorf("nn: %s: negative stride %v, dilation %v or pad %v", op, o.Stride, o.Dilation, o.Pad)
		}
	}
	for _, d := range append(g.X[:], g.W[:]...) {
		if d <= 0 {
			return g, fmt.Errorf("nn: %s: x %v and w %v: every dimension must be positive", op, x, w)
		}
	}
	if g.X[1] != g.W[1]*g.Groups || g.W[0]%g.Groups != 0 {
		return g, fmt.Errorf("nn: %s: x %v and w %v with %d groups: want C = w[1]*groups and OutC divisible by groups", op, x, w, g.Groups)
	}
	g.Y = [4]int{g.X[0], g.W[0], 0, 0}
	for i := 0; i < 2; i++ {
		ext := g.Dil[i]*(g.W[2+i]-1) + 1
		g.Y[2+i] = (g.X[2+i]+2*g.Pad[i]-ext)/g.Stride[i] + 1
		if g.X[2+i]+2*g.Pad[i] < ext {
			g.Y[2+i] = 0
		}
	}
	if g.Y[2] <= 0 || g.Y[3] <= 0 {
		return g, fmt.Errorf("nn: %s: x %v and w %v with pad %v, dilation %v: kernel larger than the padded input", op, x, w, g.Pad, g.Dil)
	}
	return g, nil
}

func (g convGeom) String() string {
	return fmt.Sprintf("x%v w%v y%v s%v p%v d%v g%d bf16=%v blk=%v,%v/%d chainbf16=%v", g.X, g.W, g.Y, g.Stride, g.Pad, g.Dil, g.Groups, g.BF16, g.BlockedIn, g.BlockedOut, g.Block, g.ChainBF16)
}

// flops returns the multiply-adds of the forward convolution times two.
func (g convGeom) flops() float64 {
	return 2 * float64(g.Y[0]*g.Y[1]*g.Y[2]*g.Y[3]) * float64(g.W[1]*g.W[2]*g.W[3])
}

// Conv2d builds a 2-D convolution (cross-correlation, as torch.nn.Conv2d).
// x: [N, C, H, W]; w: [OutC, C/Groups, KH, KW] (torch layout); b: [OutC] or
// nil. Returns [N, OutC, OH, OW] with OH = (H + 2*PadH - DilH*(KH-1) - 1)/StrideH + 1
// (same for W). All float32. Differentiable w.r.t. x, w and b.
func Conv2d(x, w, b *G.Node, o ConvOpts) (*G.Node, error) {
	return Conv2dFused(x, w, b, nil, o, false)
}

// Conv2dFused builds y = act(conv(x, w) + b + residual), act = ReLU if relu,
// else identity, in one oneDNN primitive (bias, sum and ReLU post-ops).
// Shapes as in Conv2d; residual is nil or [N, OutC, OH, OW]. Frozen batch
// norm folds into w and b (see FoldConvBN), so conv + BN + add + ReLU of a
// ResNet block is one op. Differentiable w.r.t. every input.
func Conv2dFused(x, w, b, residual *G.Node, o ConvOpts, relu bool) (*G.Node, error) {
	return convBuild("Conv2d", x, w, nil, b, residual, o, relu)
}

// Conv2dBN builds y = act(conv(x, w)*scale[o] + shift[o] + residual), a
// convolution followed by a frozen batch norm (scale and shift from FoldBN),
// the residual add and ReLU if relu, as one oneDNN primitive: the scale is
// applied to the weights (w*scale[o]) and shift is the bias. Shapes as in
// Conv2d; scale and shift are [OutC]; residual is nil or [N, OutC, OH, OW].
// Differentiable w.r.t. x, w, shift and residual; scale is treated as a
// constant (frozen BN). For a learnable scale use Conv2d and Affine.
func Conv2dBN(x, w, scale, shift, residual *G.Node, o ConvOpts, relu bool) (*G.Node, error) {
	if scale == nil || shift == nil {
		return nil, fmt.Errorf("nn: Conv2dBN: scale and shift are required")
	}
	return convBuild("Conv2dBN", x, w, scale, shift, residual, o, relu)
}

func convBuild(name string, x, w, scale, b, residual *G.Node, o ConvOpts, relu bool) (*G.Node, error) {
	g, err := newConvGeom(name, x.Shape(), w.Shape(), o)
	if err != nil {
		return nil, err
	}
	for i, n := range []*G.Node{x, w, scale, b, residual} {
		want := tensor.Float32
		if (i == 0 && g.xBF16()) || (i == 4 && g.yBF16()) {
			want = BFloat16
		}
		if n != nil && n.Dtype() != want {
			return nil, fmt.Errorf("nn: %s: input %s has dtype %v, want %v", name, n.Name(), n.Dtype(), want)
		}
	}
	op := convOp{geom: g, scaled: scale != nil, bias: b != nil, residual: residual != nil, relu: relu,
		noInputGrad: o.NoInputGrad, constWeights: o.ConstWeights}
	in := []*G.Node{x, w}
	if scale != nil {
		if s := scale.Shape(); len(s) != 1 || s[0] != g.W[0] {
			return nil, fmt.Errorf("nn: %s: w %v and scale %v: want scale [%d]", name, w.Shape(), s, g.W[0])
		}
		in = append(in, scale)
	}
	if b != nil {
		if s := b.Shape(); len(s) != 1 || s[0] != g.W[0] {
			return nil, fmt.Errorf("nn: %s: w %v and b %v: want b [%d]", name, w.Shape(), s, g.W[0])
		}
		in = append(in, b)
	}
	if residual != nil {
		if s := residual.Shape(); !s.Eq(tensor.Shape(g.Y[:])) {
			return nil, fmt.Errorf("nn: %s: output %v and residual %v: want equal shapes", name, g.Y, s)
		}
		in = append(in, residual)
	}
	y, err := G.ApplyOp(op, in...)
	if err != nil {
		return nil, fmt.Errorf("nn: %s %v: %w", name, g, err)
	}
	return y, nil
}

// FoldConvBN folds a frozen per-channel affine y = conv(x, w)*scale + shift
// into the weights and bias: it returns w' = w*scale[o] and b' = b*scale + shift
// (b may be nil, meaning zero). w is [OutC, ...] flattened, scale and shift
// [OutC]. FoldConvBN panics if the lengths disagree.
func FoldConvBN(w, b, scale, shift []float32) (wf, bf []float32) {
	wf, bf = make([]float32, len(w)), make([]float32, len(scale))
	FoldConvBNInto(wf, bf, w, b, scale, shift)
	return wf, bf
}

// FoldConvBNInto is FoldConvBN writing w' into wf (len(w)) and b' into bf
// (len(scale)) instead of new slices; wf may be w itself (folding in place),
// bf may be b. It panics if the lengths disagree.
func FoldConvBNInto(wf, bf, w, b, scale, shift []float32) {
	oc := len(scale)
	if oc == 0 || len(shift) != oc || len(w)%oc != 0 || (b != nil && len(b) != oc) || len(wf) != len(w) || len(bf) != oc {
		panic(fmt.Sprintf("nn: FoldConvBN: len(w)=%d, len(b)=%d, len(scale)=%d, len(shift)=%d, len(wf)=%d, len(bf)=%d",
			len(w), len(b), len(scale), len(shift), len(wf), len(bf)))
	}
	per := len(w) / oc
	for o := 0; o < oc; o++ {
		for i := o * per; i < (o+1)*per; i++ {
			wf[i] = w[i] * scale[o]
		}
		v := shift[o]
		if b != nil {
			v += b[o] * scale[o]
		}
		bf[o] = v
	}
}

// convTensorType is the hm type of a float tensor of the given rank.
func convTensorType(dims int) hm.Type {
	return G.TensorType{Dims: dims, Of: hm.TypeVariable('a')}
}

func convHash(s fmt.Stringer) uint32 {
	h := fnv.New32a()
	fmt.Fprint(h, s.String())
	return h.Sum32()
}

// convData returns the float32 data of v, which must have the given shape.
func convData(op string, arg string, v G.Value, shape []int) ([]float32, error) {
	t, ok := v.(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("nn: %s: %s is %T, want a tensor", op, arg, v)
	}
	if t.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("nn: %s: %s has dtype %v, want float32", op, arg, t.Dtype())
	}
	if !t.Shape().Eq(tensor.Shape(shape)) {
		return nil, fmt.Errorf("nn: %s: %s has shape %v, want %v", op, arg, t.Shape(), shape)
	}
	if d, ok := t.(*tensor.Dense); ok && d.RequiresIterator() {
		t = d.Materialize()
	}
	data, ok := t.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("nn: %s: %s holds %T, want []float32", op, arg, t.Data())
	}
	return data, nil
}

// convOut returns prealloc's data if it is a float32 dense tensor of the
// given shape, else a new tensor.
func convOut(prealloc G.Value, shape []int) (*tensor.Dense, []float32) {
	if d, ok := prealloc.(*tensor.Dense); ok && d.Dtype() == tensor.Float32 &&
		d.Shape().Eq(tensor.Shape(shape)) && !d.RequiresIterator() {
		return d, d.Data().([]float32)
	}
	d := tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
	return d, d.Data().([]float32)
}

// convOp is the forward convolution with optional per-output-channel weight
// scale, bias, residual (sum post-op) and ReLU. Inputs: x, w, [scale], [b],
// [residual].
type convOp struct {
	HostOp
	geom         convGeom
	scaled       bool
	bias         bool
	residual     bool
	relu         bool
	noInputGrad  bool
	constWeights bool
}

// index returns the input positions of scale, b and residual (-1 if absent)
// and the arity.
func (op convOp) index() (scale, bias, res, n int) {
	scale, bias, res, n = -1, -1, -1, 2
	if op.scaled {
		scale, n = n, n+1
	}
	if op.bias {
		bias, n = n, n+1
	}
	if op.residual {
		res, n = n, n+1
	}
	return scale, bias, res, n
}

func (op convOp) Arity() int {
	_, _, _, n := op.index()
	return n
}

// xBF16 and yBF16 report whether x, and y and the residual, are BFloat16
// chain tensors.
func (g convGeom) xBF16() bool { return g.ChainBF16 && g.BlockedIn }
func (g convGeom) yBF16() bool { return g.ChainBF16 && g.BlockedOut }

func (op convOp) Type() hm.Type {
	if op.geom.ChainBF16 {
		// Mixed element types: concrete float32 for the parameters.
		f := G.TensorType{Dims: 1, Of: tensor.Float32}
		ts := []hm.Type{chainType(op.geom.xBF16()), G.TensorType{Dims: 4, Of: tensor.Float32}}
		if op.scaled {
			ts = append(ts, f)
		}
		if op.bias {
			ts = append(ts, f)
		}
		if op.residual {
			ts = append(ts, chainType(op.geom.yBF16()))
		}
		return hm.NewFnType(append(ts, chainType(op.geom.yBF16()))...)
	}
	ts := []hm.Type{convTensorType(4), convTensorType(4)}
	if op.scaled {
		ts = append(ts, convTensorType(1))
	}
	if op.bias {
		ts = append(ts, convTensorType(1))
	}
	if op.residual {
		ts = append(ts, convTensorType(4))
	}
	return hm.NewFnType(append(ts, convTensorType(4))...)
}

func (op convOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.geom.Y[:]).Clone(), nil
}

func (op convOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op convOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("nn: %v: got %d inputs, want %d", op, len(in), op.Arity())
	}
	g := op.geom
	name := op.String()
	x, err := actData(name, "x", in[0], g.X[:], g.xBF16())
	if err != nil {
		return nil, err
	}
	w, err := convData(name, "w", in[1], g.W[:])
	if err != nil {
		return nil, err
	}
	bufs := [][]float32{x, w}
	si, bi, ri, _ := op.index()
	var scale, res []float32
	if si >= 0 {
		if scale, err = convData(name, "scale", in[si], g.W[:1]); err != nil {
			return nil, err
		}
	}
	if bi >= 0 {
		b, err := convData(name, "b", in[bi], g.W[:1])
		if err != nil {
			return nil, err
		}
		bufs = append(bufs, b)
	}
	if ri >= 0 {
		if res, err = actData(name, "residual", in[ri], g.Y[:], g.yBF16()); err != nil {
			return nil, err
		}
	}
	out, y := actOut(prealloc, g.Y[:], g.yBF16())
	bufs = append(bufs, y)
	d := dnnlConv{kind: dnnlFwd, geom: g, bias: op.bias, sum: op.residual, relu: op.relu}
	if err := d.run(bufs, convExtra{residual: res, scale: scale, constWeights: op.constWeights}); err != nil {
		return nil, fmt.Errorf("nn: %v: %w", op, err)
	}
	return out, nil
}

func (op convOp) WriteHash(h hash.Hash) {
	fmt.Fprint(h, op.String())
}
func (op convOp) Hashcode() uint32 { return convHash(op) }
func (op convOp) String() string {
	return fmt.Sprintf("Conv2d{%v scaled=%v bias=%v residual=%v relu=%v noInputGrad=%v constW=%v}",
		op.geom, op.scaled, op.bias, op.residual, op.relu, op.noInputGrad, op.constWeights)
}

// DiffWRT: x unless noInputGrad, w, b and residual; never scale.
func (op convOp) DiffWRT(n int) []bool {
	r := make([]bool, n)
	for i := range r {
		r[i] = true
	}
	si, _, _, _ := op.index()
	if si >= 0 && si < n {
		r[si] = false
	}
	if op.noInputGrad && n > 0 {
		r[0] = false
	}
	return r
}

// SymDiff returns the gradients of x, w, [b], [residual]. With ReLU the
// incoming gradient is first masked by output > 0.
func (op convOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("nn: %v: SymDiff got %d inputs, want %d", op, len(in), op.Arity())
	}
	g := op.geom
	dy := grad
	if dy.Graph() == nil { // a constant output gradient from G.Backpropagate
		dy = output.Graph().AddNode(dy)
	}
	var err error
	// With ReLU, the gradient is dy*(output > 0), one tensor that the
	// backward ops (and the residual) read. The Executor computes it in
	// the output's buffer when nothing else reads the output any more
	// (convReLUGradOp.UnsafeDo): no memory beyond the pool's. (Masking in
	// each backward op instead kept an arena copy of the largest masked
	// dy for good: 196 MiB on the R101-C4 training step.)
	// In a bf16 chain the output is bf16 and dy float32 nChw<Block>c: the
	// mask is written into dy's buffer instead (convReLUGradBF16Op).
	if op.relu && g.yBF16() {
		if dy, err = G.ApplyOp(convReLUGradBF16Op{shape: g.Y, block: g.Block}, dy, output); err != nil {
			return nil, err
		}
	} else if op.relu {
		if dy, err = G.ApplyOp(convReLUGradOp{shape: g.Y}, output, dy); err != nil {
			return nil, err
		}
	}
	si, _, _, _ := op.index()
	var dx *G.Node
	if !op.noInputGrad {
		din := G.Nodes{in[1], dy}
		if si >= 0 {
			din = append(din, in[si])
		}
		if dx, err = G.ApplyOp(convBwdDataOp{geom: g, scaled: si >= 0}, din...); err != nil {
			return nil, err
		}
	}
	win := G.Nodes{in[0], dy}
	if si >= 0 {
		win = append(win, in[si])
	}
	dw, err := G.ApplyOp(convBwdWeightsOp{geom: g, scaled: si >= 0}, win...)
	if err != nil {
		return nil, err
	}
	ret := G.Nodes{dx, dw}
	if si >= 0 {
		ret = append(ret, nil) // scale: constant
	}
	if op.bias {
		db, err := G.ApplyOp(convBiasGradOp{shape: g.Y, block: convOutBlock(g)}, dy)
		if err != nil {
			return nil, err
		}
		ret = append(ret, db)
	}
	if op.residual {
		ret = append(ret, dy)
	}
	return ret, nil
}

// convBwdDataOp computes dx [N, C, H, W] from w and dy [N, OutC, OH, OW]
// (and scale [OutC] if scaled: the forward weights were w*scale[o]).
type convBwdDataOp struct {
	HostOp
	geom   convGeom
	scaled bool
}

func (op convBwdDataOp) Arity() int { return 2 + convB2I(op.scaled) }
func (op convBwdDataOp) Type() hm.Type {
	ts := []hm.Type{convTensorType(4), convTensorType(4)}
	if op.scaled {
		ts = append(ts, convTensorType(1))
	}
	return hm.NewFnType(append(ts, convTensorType(4))...)
}
func (op convBwdDataOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.geom.X[:]).Clone(), nil
}
func (op convBwdDataOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op convBwdDataOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	return op.bwd(dnnlBwdData, op.String(), prealloc, in)
}
func (op convBwdDataOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op convBwdDataOp) Hashcode() uint32      { return convHash(op) }
func (op convBwdDataOp) String() string {
	return fmt.Sprintf("Conv2dBwdData{%v scaled=%v}", op.geom, op.scaled)
}

// convBwdWeightsOp computes dw [OutC, C/Groups, KH, KW] from x and dy (and
// scale [OutC] if scaled: the forward weights were w*scale[o], so the
// gradient w.r.t. w is multiplied by scale[o]). In a bf16 chain
// (geom.ChainBF16) x is a BFloat16 chain value if BlockedIn, and dy (like
// convBwdDataOp's dy and dx) is float32 nChw<Block>c: the gradient of a
// bf16 chain value is float32 in the f32 chain layout.
type convBwdWeightsOp struct {
	HostOp
	geom   convGeom
	scaled bool
}

func (op convBwdWeightsOp) Arity() int { return convBwdDataOp(op).Arity() }
func (op convBwdWeightsOp) Type() hm.Type {
	if !op.geom.xBF16() {
		return convBwdDataOp(op).Type()
	}
	// x is a bf16 chain value; dy, scale and dw are float32.
	ts := []hm.Type{chainType(true), chainType(false)}
	if op.scaled {
		ts = append(ts, G.TensorType{Dims: 1, Of: tensor.Float32})
	}
	return hm.NewFnType(append(ts, chainType(false))...)
}
func (op convBwdWeightsOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.geom.W[:]).Clone(), nil
}
func (op convBwdWeightsOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op convBwdWeightsOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	return convBwdDataOp(op).bwd(dnnlBwdWeights, op.String(), prealloc, in)
}
func (op convBwdWeightsOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op convBwdWeightsOp) Hashcode() uint32      { return convHash(op) }
func (op convBwdWeightsOp) String() string {
	return fmt.Sprintf("Conv2dBwdWeights{%v scaled=%v}", op.geom, op.scaled)
}

// bwd runs the oneDNN backward pass kind (dnnlBwdData or dnnlBwdWeights)
// on in = (a, dy [geom.Y], [scale]) and returns its result; name is
// the calling op's String, for errors. For dnnlBwdData a is w [geom.W] and
// the result dx [geom.X]; for dnnlBwdWeights a is x [geom.X] and the result
// dw [geom.W].
func (op convBwdDataOp) bwd(kind int, name string, prealloc G.Value, in []G.Value) (G.Value, error) {
	g := op.geom
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want %d", name, len(in), op.Arity())
	}
	aName, aShape, outShape, aBF16 := "w", g.W[:], g.X[:], false
	if kind == dnnlBwdWeights {
		aName, aShape, outShape, aBF16 = "x", g.X[:], g.W[:], g.xBF16()
	}
	a, err := actData(name, aName, in[0], aShape, aBF16)
	if err != nil {
		return nil, err
	}
	dy, err := convData(name, "dy", in[1], g.Y[:])
	if err != nil {
		return nil, err
	}
	ex, err := op.extra(name, in)
	if err != nil {
		return nil, err
	}
	out, res := convOut(prealloc, outShape)
	if err := (dnnlConv{kind: kind, geom: g}).run([][]float32{a, dy, res}, ex); err != nil {
		return nil, fmt.Errorf("nn: %s: %w", name, err)
	}
	return out, nil
}

// extra reads the optional scale input (after the first two).
func (op convBwdDataOp) extra(name string, in []G.Value) (convExtra, error) {
	var ex convExtra
	var err error
	if op.scaled {
		if ex.scale, err = convData(name, "scale", in[2], op.geom.W[:1]); err != nil {
			return ex, err
		}
	}
	return ex, nil
}

func convB2I(b bool) int {
	if b {
		return 1
	}
	return 0
}

// convBiasGradOp sums dy [N, C, H, W] over N, H and W: the bias gradient [C].
// If block is not 0, dy is stored in nChw<block>c (block 8 or 16).
type convBiasGradOp struct {
	HostOp
	shape [4]int
	block int
}

// convOutBlock is the channel block of g's output: 0 if it is NCHW.
func convOutBlock(g convGeom) int {
	if g.BlockedOut {
		return g.Block
	}
	return 0
}

func (op convBiasGradOp) Arity() int { return 1 }
func (op convBiasGradOp) Type() hm.Type {
	return hm.NewFnType(convTensorType(4), convTensorType(1))
}
func (op convBiasGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.shape[1]}, nil
}
func (op convBiasGradOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op convBiasGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	name := op.String()
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want %d", name, len(in), op.Arity())
	}
	dy, err := convData(name, "dy", in[0], op.shape[:])
	if err != nil {
		return nil, err
	}
	n, c, hw := op.shape[0], op.shape[1], op.shape[2]*op.shape[3]
	out, db := convOut(prealloc, []int{c})
	if bs := op.block; bs > 0 {
		if bs > convBlock || c%bs != 0 {
			return nil, fmt.Errorf("nn: %s: dy %v: channels not divisible by the block %d", name, op.shape, bs)
		}
		parallelFor(c/bs, func(lo, hi int) {
			var accBuf [convBlock]float64
			var partBuf [convBlock]float32
			acc, part := accBuf[:bs], partBuf[:bs]
			for cb := lo; cb < hi; cb++ {
				clear(acc)
				for i := 0; i < n; i++ {
					blk := dy[(i*c/bs+cb)*hw*bs : (i*c/bs+cb+1)*hw*bs]
					// float32 partial sums over 256 pixels, flushed to float64
					for lo := 0; lo < len(blk); lo += 256 * bs {
						clear(part)
						for j := lo; j < min(lo+256*bs, len(blk)); j += bs {
							for k := range part {
								part[k] += blk[j+k]
							}
						}
						for k := range part {
							acc[k] += float64(part[k])
						}
					}
				}
				for k := range acc {
					db[cb*bs+k] = float32(acc[k])
				}
			}
		})
		return out, nil
	}
	parallelFor(c, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			var s float64
			for i := 0; i < n; i++ {
				s += convSum(dy[(i*c+ch)*hw : (i*c+ch+1)*hw])
			}
			db[ch] = float32(s)
		}
	})
	return out, nil
}
func (op convBiasGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op convBiasGradOp) Hashcode() uint32      { return convHash(op) }
func (op convBiasGradOp) String() string {
	return fmt.Sprintf("Conv2dBiasGrad{%v block=%d}", op.shape, op.block)
}

// convSum adds v with four float32 accumulators (pairwise enough for the
// sizes of feature maps; the caller accumulates rows in float64).
func convSum(v []float32) float64 {
	var a, b, c, d float32
	i := 0
	for ; i+4 <= len(v); i += 4 {
		a += v[i]
		b += v[i+1]
		c += v[i+2]
		d += v[i+3]
	}
	for ; i < len(v); i++ {
		a += v[i]
	}
	return float64(a) + float64(b) + float64(c) + float64(d)
}

// convReLUGradOp computes dy * (y > 0) for y, dy of the same shape.
type convReLUGradOp struct {
	HostOp
	shape [4]int
}

func (op convReLUGradOp) Arity() int { return 2 }
func (op convReLUGradOp) Type() hm.Type {
	return hm.NewFnType(convTensorType(4), convTensorType(4), convTensorType(4))
}
func (op convReLUGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.shape[:]).Clone(), nil
}
func (op convReLUGradOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

// UnsafeDo writes the result into y's memory (in[0]): the Executor runs it
// so when this op is y's last reader, which saves a buffer of y's size.
func (op convReLUGradOp) UnsafeDo(in ...G.Value) (G.Value, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want 2", op, len(in))
	}
	return op.UsePreallocDo(in[0], in...)
}

func (op convReLUGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	name := op.String()
	if len(in) != 2 {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want 2", name, len(in))
	}
	y, err := convData(name, "y", in[0], op.shape[:])
	if err != nil {
		return nil, err
	}
	dy, err := convData(name, "dy", in[1], op.shape[:])
	if err != nil {
		return nil, err
	}
	// dx may be y itself (UnsafeDo): each element reads y[i] and dy[i]
	// before writing dx[i].
	out, dx := convOut(prealloc, op.shape[:])
	parallelFor(len(dx)/4096+1, func(lo, hi int) {
		lo, hi = lo*4096, min(hi*4096, len(dx))
		for i := lo; i < hi; i++ {
			dx[i] = math.Float32frombits(math.Float32bits(dy[i]) & positiveMask(y[i]))
		}
	})
	return out, nil
}
func (op convReLUGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op convReLUGradOp) Hashcode() uint32      { return convHash(op) }
func (op convReLUGradOp) String() string        { return fmt.Sprintf("Conv2dReLUGrad{%v}", op.shape) }

// positiveMask returns all ones if v > 0 and zero otherwise (zeros and NaNs
// included), without a branch: ReLU masks are random, and a branch on them
// mispredicts about half the time. v > 0 holds for the bit patterns 1 to
// 0x7f800000 (+Inf); below them lies +0, above them the NaNs and, as int32,
// every value with the sign set is negative (-0 wraps to the largest int32
// in the first term and is caught by the second).
func positiveMask(v float32) uint32 {
	b := int32(math.Float32bits(v))
	return ^uint32(((b - 1) | (0x7f800000 - b)) >> 31)
}

// positiveMaskBF16 is positiveMask of the bf16 value h (a float32's top
// half).
func positiveMaskBF16(h uint16) uint32 {
	return positiveMask(math.Float32frombits(uint32(h) << 16))
}

// convReLUGradBF16Op computes dy * (y > 0) for the output y of a
// convolution in a bf16 chain: inputs dy [N, C, H, W] (float32,
// nChw<block>c: a chain value's gradient) and y (BFloat16, the chain's
// channels-last layout); the result is laid out like dy. y > 0 is tested on
// its bf16 value, which has the float32's sign (0 and NaN are not > 0).
type convReLUGradBF16Op struct {
	HostOp
	shape [4]int
	block int
}

func (op convReLUGradBF16Op) Arity() int { return 2 }
func (op convReLUGradBF16Op) Type() hm.Type {
	return hm.NewFnType(chainType(false), chainType(true), chainType(false))
}
func (op convReLUGradBF16Op) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.shape[:]).Clone(), nil
}
func (op convReLUGradBF16Op) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

// UnsafeDo writes the result into dy's memory (in[0]): the Executor runs it
// so when this op is dy's last reader (y, in bf16, is too small to hold it).
func (op convReLUGradBF16Op) UnsafeDo(in ...G.Value) (G.Value, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want 2", op, len(in))
	}
	return op.UsePreallocDo(in[0], in...)
}

func (op convReLUGradBF16Op) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	name := op.String()
	if len(in) != 2 {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want 2", name, len(in))
	}
	dy, err := convData(name, "dy", in[0], op.shape[:])
	if err != nil {
		return nil, err
	}
	yw, err := actData(name, "y", in[1], op.shape[:], true)
	if err != nil {
		return nil, err
	}
	n, c, hw, b := op.shape[0], op.shape[1], op.shape[2]*op.shape[3], op.block
	if b <= 0 || c%b != 0 {
		return nil, fmt.Errorf("nn: %s: channel block %d does not divide %d channels", name, b, c)
	}
	y := bf16Of(yw, n*c*hw)
	// dx may be dy itself (UnsafeDo): each element reads dy[i] before
	// writing dx[i]. Run (n, cb) of dy is [hw, b]; its element (p, j) is
	// channel cb*b+j at position p, y[(n*hw + p)*c + cb*b + j]. The work
	// goes in tiles of positions whose y rows (about 64 KiB) stay in cache
	// while every channel block reads them.
	out, dx := convOut(prealloc, op.shape[:])
	cbs := c / b
	tile := max(1, (64<<10)/(2*c))
	tiles := (hw + tile - 1) / tile
	parallelFor(n*tiles, func(lo, hi int) {
		for q := lo; q < hi; q++ {
			i, p0 := q/tiles, q%tiles*tile
			p1 := min(p0+tile, hw)
			for cb := 0; cb < cbs; cb++ {
				base := (i*cbs + cb) * hw * b
				d, g := dx[base+p0*b:base+p1*b], dy[base+p0*b:base+p1*b]
				for p := p0; p < p1; p++ {
					ys := y[(i*hw+p)*c+cb*b : (i*hw+p)*c+cb*b+b]
					dp, gp := d[(p-p0)*b:(p-p0+1)*b], g[(p-p0)*b:(p-p0+1)*b]
					for j, h := range ys {
						dp[j] = math.Float32frombits(math.Float32bits(gp[j]) & positiveMaskBF16(h))
					}
				}
			}
		}
	})
	return out, nil
}
func (op convReLUGradBF16Op) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op convReLUGradBF16Op) Hashcode() uint32      { return convHash(op) }
func (op convReLUGradBF16Op) String() string {
	return fmt.Sprintf("Conv2dReLUGradBF16{%v %d}", op.shape, op.block)
}
