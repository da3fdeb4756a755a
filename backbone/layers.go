package backbone

import (
	"fmt"
	"math"
	"math/rand"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/nn"
)

// param is a parameter tensor: a graph node and its backing data (shared with the
// node's value, so loading weights writes through).
type param struct {
	name  string // torchvision state_dict name
	shape []int
	data  []float32
	node  *G.Node
}

func newParam(g *G.ExprGraph, name string, shape ...int) *param {
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]float32, n)
	t := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
	node := G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(t))
	return &param{name: name, shape: shape, data: data, node: node}
}

// convShape is the geometry of a square convolution: in and out channels, kernel
// size, stride, padding, dilation (0 means 1) and groups (0 means 1).
type convShape struct {
	in, out, k, stride, pad, dilation, groups int
}

// conv is a bias-free convolution with torch's layout [OutC, InC/Groups, K, K]. raw is
// the state-dict weight and w the graph's weight: the same slice, or (fused) w holds
// raw scaled by the folded batch norm and b the folded shift, and raw is nil (not
// kept, to save memory; see ResNet.State).
type conv struct {
	name        string // e.g. "layer1.0.conv1.weight"
	shape       []int
	raw         []float32
	w           *param
	b           *param // fused only: [OutC]
	cs          convShape
	noInputGrad bool // x needs no gradient (image, or output of a frozen part)
	bf16        bool // run in bf16 (Config.BF16)
	constW      bool // folded weights, constant while the graph runs (inference): nn.ConvOpts.ConstWeights
}

func newConv(g *G.ExprGraph, name string, cs convShape, fused bool, rng *rand.Rand) *conv {
	cs.dilation, cs.groups = max(cs.dilation, 1), max(cs.groups, 1)
	inC, outC, k := cs.in, cs.out, cs.k
	c := &conv{name: name + ".weight", shape: []int{outC, inC / cs.groups, k, k}, cs: cs}
	c.w = newParam(g, c.name, c.shape...)
	c.raw = c.w.data
	if fused {
		c.b = newParam(g, name+".folded_bias", outC)
	}
	if rng != nil {
		// torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"), fan_out =
		// OutC*K*K whatever the groups. Fused: folded in place by newConvBN (the BN
		// is the identity then).
		std := math.Sqrt(2 / float64(outC*k*k))
		for i := range c.raw {
			c.raw[i] = float32(rng.NormFloat64() * std)
		}
	}
	return c
}

// opts returns the convolution options; blockedIn/blockedOut say whether x and y
// are in the chain layout: oneDNN's blocked layout (nChw16c on AVX-512, nChw8c on
// AVX2: nn.CPU().Block; see nn.ToBlocked), or in bf16 the bf16 chain layout
// (nn.ToBlockedBF16).
func (c *conv) opts(blockedIn, blockedOut bool) nn.ConvOpts {
	cs := c.cs
	return nn.ConvOpts{Stride: [2]int{cs.stride, cs.stride}, Pad: [2]int{cs.pad, cs.pad},
		Dilation: [2]int{cs.dilation, cs.dilation}, Groups: cs.groups,
		NoInputGrad: c.noInputGrad, BlockedIn: blockedIn, BlockedOut: blockedOut,
		BF16: c.bf16, ConstWeights: c.bf16 && c.constW,
		BlockedBF16: c.bf16 && (blockedIn || blockedOut)}
}

// toBlocked converts x (NCHW float32) to the chain layout: bf16 when the convolutions
// run in bf16 (nn.ToBlockedBF16), else float32 blocked (nn.ToBlocked). nn.FromBlocked converts
// either back.
func toBlocked(x *G.Node, bf16 bool) (*G.Node, error) {
	if bf16 {
		return nn.ToBlockedBF16(x)
	}
	return nn.ToBlocked(x)
}

// batchNorm holds torch's four BN tensors. With FrozenBN the graph sees the folded
// scale and shift constants; with TrainableBN it sees gamma and beta and the running
// statistics live in stats.
type batchNorm struct {
	name         string
	c            int
	eps          float32
	norm         Norm
	train        bool
	gamma, beta  []float32
	mean, vari   []float32 // FrozenBN only; see stat
	scale, shift *param    // FrozenBN
	g, b         *param    // TrainableBN
	stats        *nn.BNStats
}

func newBatchNorm(gr *G.ExprGraph, name string, c int, cfg Config) *batchNorm {
	fused := cfg.fused()
	eps := cfg.bnEps()
	bn := &batchNorm{name: name, c: c, eps: eps, norm: cfg.Norm, train: cfg.Train}
	if cfg.Norm == FrozenBN {
		if !fused {
			bn.scale = newParam(gr, name+".scale", c)
			bn.shift = newParam(gr, name+".shift", c)
		}
		bn.gamma, bn.beta = make([]float32, c), make([]float32, c)
		bn.mean, bn.vari = make([]float32, c), make([]float32, c)
	} else {
		bn.g = newParam(gr, name+".weight", c)
		bn.b = newParam(gr, name+".bias", c)
		bn.gamma, bn.beta = bn.g.data, bn.b.data
		bn.stats = &nn.BNStats{Mean: make([]float32, c), Var: make([]float32, c), Momentum: 0.1, Eps: eps}
	}
	_, vari := bn.stat()
	for i := 0; i < c; i++ {
		bn.gamma[i], vari[i] = 1, 1
	}
	return bn
}

// stat returns the running mean and variance (for TrainableBN they live in stats,
// which nn.BatchNorm updates).
func (bn *batchNorm) stat() (mean, vari []float32) {
	if bn.stats != nil {
		return bn.stats.Mean, bn.stats.Var
	}
	return bn.mean, bn.vari
}

// fold returns the frozen per-channel scale and shift.
func (bn *batchNorm) fold() (scale, shift []float32) {
	return nn.FoldBN(bn.gamma, bn.beta, bn.mean, bn.vari, bn.eps)
}

// forward computes bn(x) (+ residual) (then ReLU if relu) for trainable BN (frozen BN
// is folded into the convolution, see convBN.forward). residual may be nil.
func (bn *batchNorm) forward(x, residual *G.Node, relu bool) (*G.Node, error) {
	wrap := func(err error) error { return fmt.Errorf("%s: %w", bn.name, err) }
	y, err := nn.BatchNorm(x, bn.g.node, bn.b.node, bn.stats, bn.train)
	if err != nil {
		return nil, wrap(err)
	}
	if residual != nil {
		if y, err = G.Add(y, residual); err != nil {
			return nil, wrap(err)
		}
	}
	if relu {
		if y, err = nn.ReLU(y); err != nil {
			return nil, wrap(err)
		}
	}
	return y, nil
}

// learnables returns the trainable BN parameters (none when frozen).
func (bn *batchNorm) learnables() G.Nodes {
	if bn.norm == FrozenBN {
		return nil
	}
	return G.Nodes{bn.g.node, bn.b.node}
}

// convBN is a convolution followed by batch norm (one fused op when the BN is folded
// into the convolution).
type convBN struct {
	conv *conv
	bn   *batchNorm
}

func newConvBN(g *G.ExprGraph, convName, bnName string, cs convShape, cfg Config, rng *rand.Rand) *convBN {
	cb := &convBN{
		conv: newConv(g, convName, cs, cfg.fused(), rng),
		bn:   newBatchNorm(g, bnName, cs.out, cfg),
	}
	cb.refold(cb.conv.raw)
	if cb.conv.b != nil {
		cb.conv.raw = nil
	}
	cb.conv.bf16 = cfg.bf16()
	cb.conv.constW = cfg.fused()
	return cb
}

// refold recomputes the graph's constants from the state-dict tensors: the frozen
// scale and shift, or (fused) the folded convolution weight and bias from raw, the
// unfolded weight (which may alias the graph's weight).
func (cb *convBN) refold(raw []float32) {
	if cb.bn.norm != FrozenBN {
		return
	}
	scale, shift := cb.bn.fold()
	if cb.conv.b == nil {
		copy(cb.bn.scale.data, scale)
		copy(cb.bn.shift.data, shift)
		return
	}
	nn.FoldConvBNInto(cb.conv.w.data, cb.conv.b.data, raw, nil, scale, shift)
}

// weight returns the state-dict weight: raw, or for a fused convolution the folded
// weight divided by the BN scale (exact up to float32 rounding; 0 where the scale
// is 0).
func (cb *convBN) weight() []float32 {
	if cb.conv.raw != nil {
		return cb.conv.raw
	}
	scale, _ := cb.bn.fold()
	w := make([]float32, len(cb.conv.w.data))
	per := len(w) / len(scale)
	for i, v := range cb.conv.w.data {
		if s := scale[i/per]; s != 0 {
			w[i] = v / s
		}
	}
	return w
}

// forward computes act(bn(conv(x)) + residual), act = ReLU if relu. With frozen BN it
// is one oneDNN convolution (BN folded, residual and ReLU as post-ops), x and y in
// nChw16c if blockedIn / blockedOut (residual in y's layout). Trainable BN needs NCHW.
func (cb *convBN) forward(x, residual *G.Node, relu, blockedIn, blockedOut bool) (*G.Node, error) {
	return cb.forwardStride(x, residual, relu, blockedIn, blockedOut, false)
}

// forwardStride is forward; with unit, the convolution runs with stride 1 on an
// input already subsampled at its stride (a 1x1 convolution without padding reads
// nothing else: see Stage.InputStride).
func (cb *convBN) forwardStride(x, residual *G.Node, relu, blockedIn, blockedOut, unit bool) (*G.Node, error) {
	c := cb.conv
	o := c.opts(blockedIn, blockedOut)
	if unit {
		o.Stride = [2]int{1, 1}
	}
	var y *G.Node
	var err error
	switch {
	case c.b != nil: // inference: folded weights and bias
		y, err = nn.Conv2dFused(x, c.w.node, c.b.node, residual, o, relu)
	case cb.bn.norm == FrozenBN: // training: weights learnable, scale/shift constant
		y, err = nn.Conv2dBN(x, c.w.node, cb.bn.scale.node, cb.bn.shift.node, residual, o, relu)
	default:
		if blockedIn || blockedOut {
			panic("backbone: trainable BN in blocked layout")
		}
		if y, err = nn.Conv2d(x, c.w.node, nil, o); err != nil {
			break
		}
		return cb.bn.forward(y, residual, relu)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	return y, nil
}

// learnables returns the convolution weight and trainable BN parameters; nothing
// when fused (the graph's weight is then a folded copy).
func (cb *convBN) learnables() G.Nodes {
	if cb.conv.b != nil {
		return nil
	}
	return append(G.Nodes{cb.conv.w.node}, cb.bn.learnables()...)
}

// Block is a residual block (or its plain counterpart).
type Block struct {
	Name              string // torchvision module name, e.g. "layer2.0"
	Kind              BlockKind
	InC, OutC, Stride int
	// Width is the channels inside the block (a Bottleneck's 1x1 reduction and 3x3);
	// Groups and Dilation are those of its 3x3 convolution (padding = Dilation).
	Width, Groups, Dilation int
	convs                   []*convBN // 2 (Basic) or 3 (Bottleneck)
	proj                    *convBN   // projection shortcut ("downsample"), or nil
	padW                    *param    // option A: fixed 0/1 [OutC, InC, 1, 1] selection, or nil
	plain                   bool
	blocked                 bool // frozen BN: activations between convolutions in the blocked layout
	bf16Chain               bool // bf16: the blocked layout is the bf16 chain layout (nn.ToBlockedBF16)
}

// blockSpec is the geometry of one block.
type blockSpec struct {
	inC, width, outC, stride, dilation, groups int
}

// newBlock creates a block's parameters; blocked says whether its activations are kept
// in the blocked layout (frozen BN with every channel count a multiple of 16).
func newBlock(g *G.ExprGraph, name string, kind BlockKind, bs blockSpec, cfg Config, blocked bool, rng *rand.Rand) *Block {
	inC, width, outC, stride := bs.inC, bs.width, bs.outC, bs.stride
	b := &Block{Name: name, Kind: kind, InC: inC, OutC: outC, Stride: stride, Width: width, Groups: bs.groups,
		Dilation: bs.dilation, plain: cfg.Plain, blocked: blocked, bf16Chain: blocked && cfg.bf16()}
	cb := func(i int, cs convShape) *convBN {
		return newConvBN(g, fmt.Sprintf("%s.conv%d", name, i), fmt.Sprintf("%s.bn%d", name, i), cs, cfg, rng)
	}
	if kind == Basic {
		b.convs = []*convBN{
			cb(1, convShape{in: inC, out: width, k: 3, stride: stride, pad: 1}),
			cb(2, convShape{in: width, out: width, k: 3, stride: 1, pad: 1}),
		}
	} else {
		s1, s3 := 1, stride
		if cfg.StrideIn1x1 {
			s1, s3 = stride, 1
		}
		b.convs = []*convBN{
			cb(1, convShape{in: inC, out: width, k: 1, stride: s1}),
			cb(2, convShape{in: width, out: width, k: 3, stride: s3, pad: bs.dilation, dilation: bs.dilation, groups: bs.groups}),
			cb(3, convShape{in: width, out: outC, k: 1, stride: 1}),
		}
	}
	// torchvision's zero_init_residual is off by default: the last BN keeps gamma = 1.
	if cfg.Plain {
		return b
	}
	changes := stride != 1 || inC != outC
	switch {
	case cfg.Shortcut == ShortcutC || (cfg.Shortcut == ShortcutB && changes):
		b.proj = newConvBN(g, name+".downsample.0", name+".downsample.1", convShape{in: inC, out: outC, k: 1, stride: stride}, cfg, rng)
	case cfg.Shortcut == ShortcutA && changes:
		// Subsampling plus zero channels is a strided 1x1 convolution with a fixed
		// selection matrix; it is a constant, never loaded or learned.
		b.padW = newParam(g, name+".shortcut_a", outC, inC, 1, 1)
		for i := 0; i < inC; i++ {
			b.padW.data[i*inC+i] = 1
		}
	}
	return b
}

// Forward applies the block. x: [N, InC, H, W] (NCHW). Returns [N, OutC, H', W'] with
// H' = (H-1)/Stride + 1 (integer division), likewise W'.
func (b *Block) Forward(x *G.Node) (*G.Node, error) {
	return inBlocked(x, b.blocked, b.bf16Chain, func(x *G.Node) (*G.Node, error) { return b.forward(x, b.blocked, false) })
}

// inBlocked runs f on x converted to the blocked layout (the bf16 chain layout if bf16)
// and converts the result back to NCHW (if blocked; otherwise it runs f on x).
func inBlocked(x *G.Node, blocked, bf16 bool, f func(*G.Node) (*G.Node, error)) (*G.Node, error) {
	if !blocked {
		return f(x)
	}
	xb, err := toBlocked(x, bf16)
	if err != nil {
		return nil, err
	}
	y, err := f(xb)
	if err != nil {
		return nil, err
	}
	return nn.FromBlocked(y)
}

// inputStride returns the block's stride if it reads only every Stride-th row and
// column of its input: its first convolution and its shortcut (if any) are 1x1
// without padding, of stride Stride (a Bottleneck with the stride in its 1x1). Else 1.
func (b *Block) inputStride() int {
	c1 := b.convs[0].conv.cs
	if b.Stride == 1 || c1.k != 1 || c1.stride != b.Stride || c1.pad != 0 {
		return 1
	}
	if !b.plain && b.proj == nil && b.padW == nil { // identity: reads every position
		return 1
	}
	return b.Stride
}

// forward applies the block to x in the blocked layout (blk) or NCHW. With strided, x
// holds only the rows and columns the block reads (inputStride > 1 required): its
// strided 1x1 convolutions run with stride 1, and the output has x's size.
func (b *Block) forward(x *G.Node, blk, strided bool) (*G.Node, error) {
	if s := x.Shape(); len(s) != 4 || s[1] != b.InC {
		return nil, fmt.Errorf("%s: input shape %v, want [N, %d, H, W]", b.Name, s, b.InC)
	}
	stride := b.Stride
	if strided {
		if b.inputStride() == 1 {
			return nil, fmt.Errorf("%s: input given at stride %d, but the block reads every position (stride on its 3x3, or an identity shortcut)", b.Name, b.Stride)
		}
		stride = 1
	}
	var short *G.Node
	var err error
	switch {
	case b.plain:
	case b.proj != nil:
		if short, err = b.proj.forwardStride(x, nil, false, blk, blk, strided); err != nil {
			return nil, err
		}
	case b.padW != nil:
		bf16 := blk && b.bf16Chain
		short, err = nn.Conv2d(x, b.padW.node, nil, nn.ConvOpts{Stride: [2]int{stride, stride}, BlockedIn: blk, BlockedOut: blk, BF16: bf16, BlockedBF16: bf16})
		if err != nil {
			return nil, fmt.Errorf("%s: option A shortcut: %w", b.Name, err)
		}
	default:
		short = x
	}
	y := x
	last := len(b.convs) - 1
	for i, cb := range b.convs {
		var res *G.Node
		if i == last {
			res = short
		}
		if y, err = cb.forwardStride(y, res, true, blk, blk, strided && i == 0); err != nil {
			return nil, err
		}
	}
	s := y.Shape()
	wantH, wantW := (x.Shape()[2]-1)/stride+1, (x.Shape()[3]-1)/stride+1
	if s[0] != x.Shape()[0] || s[1] != b.OutC || s[2] != wantH || s[3] != wantW {
		return nil, fmt.Errorf("%s: output shape %v, want [%d, %d, %d, %d]", b.Name, s, x.Shape()[0], b.OutC, wantH, wantW)
	}
	return y, nil
}

func (b *Block) learnables() G.Nodes {
	var ns G.Nodes
	for _, cb := range b.convs {
		ns = append(ns, cb.learnables()...)
	}
	if b.proj != nil {
		ns = append(ns, b.proj.learnables()...)
	}
	return ns
}

// Stage is a sequence of blocks (torchvision's layerN, the paper's convN+1_x).
type Stage struct {
	Name   string
	Blocks []*Block
	// Out is the stage's output channels and its stride relative to the network input.
	Out ShapeSpec
}

// Forward applies the blocks in order. x: [N, Blocks[0].InC, H, W] (NCHW), e.g.
// pooled RoI features for Res5. Returns NCHW.
func (s *Stage) Forward(x *G.Node) (*G.Node, error) {
	blk := len(s.Blocks) > 0 && s.Blocks[0].blocked
	return inBlocked(x, blk, blk && s.Blocks[0].bf16Chain, func(x *G.Node) (*G.Node, error) { return s.forward(x, blk, false) })
}

// InputStride returns s > 1 when the stage's first block reads only the rows and
// columns 0, s, 2s, ... of its input: a Bottleneck with its stride s on the 1x1
// conv1 (Config.StrideIn1x1, Detectron2's construction) and a projection (or
// option A) shortcut, both 1x1 without padding. Otherwise 1 (stride 1, the stride
// on the 3x3: torchvision's construction). A C4 box head then pools only those
// positions (ops.RoIAlignOpts.Step) and passes StageInput.Strided.
func (s *Stage) InputStride() int {
	if s == nil || len(s.Blocks) == 0 {
		return 1
	}
	return s.Blocks[0].inputStride()
}

// StageInput says how ForwardMeanFrom's input is given.
type StageInput struct {
	// Blocked: in the stage's blocked layout (see ForwardMeanBlocked), else float32
	// NCHW (see ForwardMean).
	Blocked bool
	// Strided: only the rows and columns the first block reads, every
	// InputStride()-th: [N, C, H', W'] for the full input's [N, C, H, W], H' =
	// (H-1)/InputStride()+1, likewise W'. The first block's 1x1 convolutions then
	// run with stride 1: the same outputs as on the full input, and the same
	// gradients for the parameters and for the positions given (the others get
	// none). An error if InputStride() is 1.
	Strided bool
}

// ForwardMean applies the blocks, then the mean over H and W (global average
// pooling). x: [N, Blocks[0].InC, H, W], NCHW float32. Returns
// [N, Out.Channels]. Same values as Forward then nn.GlobalAvgPool, but a
// blocked stage pools its blocked output directly
// (nn.GlobalAvgPoolBlocked): no NCHW copy of the stage's output, nor of its
// gradient.
func (s *Stage) ForwardMean(x *G.Node) (*G.Node, error) {
	return s.ForwardMeanFrom(x, StageInput{})
}

// ForwardMeanBlocked is ForwardMean on x already in the stage's blocked
// layout (a stage with Blocked): the bf16 chain value (nn.BFloat16,
// nn.ToBlockedBF16's layout) for a stage running as a bf16 chain
// (BF16Chain), else float32 nChw<B>c (nn.ToBlocked's layout), such as the
// outputs of ops.RoIAlignBF16 and ops.RoIAlignBlocked: no conversion in
// front of the first convolution, and x's gradient in the same blocked
// layout (float32 nChw<B>c either way).
func (s *Stage) ForwardMeanBlocked(x *G.Node) (*G.Node, error) {
	return s.ForwardMeanFrom(x, StageInput{Blocked: true})
}

// ForwardMeanFrom is ForwardMean (in.Blocked false) or ForwardMeanBlocked (true)
// on an input given as in says: with in.Strided, only the positions the first
// block reads.
func (s *Stage) ForwardMeanFrom(x *G.Node, in StageInput) (*G.Node, error) {
	if in.Strided && s.InputStride() == 1 {
		return nil, fmt.Errorf("backbone: %s: input %v given strided, but the first block reads every position (stride on its 3x3, or stride 1)", s.Name, x.Shape())
	}
	if !in.Blocked {
		if x.Dtype() != tensor.Float32 {
			return nil, fmt.Errorf("backbone: %s: input %v is %s, want float32 NCHW (ForwardMeanBlocked takes the blocked layout)", s.Name, x.Shape(), dtypeName(x.Dtype()))
		}
		if !s.Blocked() {
			y, err := s.forward(x, false, in.Strided)
			if err != nil {
				return nil, err
			}
			return nn.GlobalAvgPool(y)
		}
		var err error
		if x, err = toBlocked(x, s.BF16Chain()); err != nil {
			return nil, err
		}
	} else if !s.Blocked() {
		return nil, fmt.Errorf("backbone: %s: input %v in the blocked layout, but the stage runs on NCHW", s.Name, x.Shape())
	}
	want := tensor.Dtype(tensor.Float32)
	if s.BF16Chain() {
		want = nn.BFloat16
	}
	if x.Dtype() != want {
		return nil, fmt.Errorf("backbone: %s: blocked input %v is %s, want %s (the stage's blocked layout)", s.Name, x.Shape(), dtypeName(x.Dtype()), dtypeName(want))
	}
	y, err := s.forward(x, true, in.Strided)
	if err != nil {
		return nil, err
	}
	return nn.GlobalAvgPoolBlocked(y)
}

// dtypeName names a node's dtype in errors: nn.BFloat16 (stored as
// uint16) as bf16.
func dtypeName(d tensor.Dtype) string {
	if d == nn.BFloat16 {
		return "bf16 (nn.BFloat16)"
	}
	return d.String()
}

// Blocked reports whether the stage keeps its activations in oneDNN's
// blocked layout between convolutions (frozen BN with channel counts that
// are multiples of 16): float32 nChw<B>c, or the bf16 chain layout when
// BF16Chain. False for a nil stage.
func (s *Stage) Blocked() bool {
	return s != nil && len(s.Blocks) > 0 && s.Blocks[0].blocked
}

// BF16Chain reports whether the stage runs as a bf16 chain (bf16
// convolutions with frozen BN, Config.BF16): its activations are bf16
// channels-last between convolutions (nn.ToBlockedBF16), and
// ForwardMeanBlocked takes its input in that layout. False for a nil
// stage.
func (s *Stage) BF16Chain() bool {
	return s.Blocked() && s.Blocks[0].bf16Chain
}

// forward applies the blocks to x in the blocked layout (blk) or NCHW; strided:
// x holds only the positions the first block reads (StageInput.Strided).
func (s *Stage) forward(x *G.Node, blk, strided bool) (*G.Node, error) {
	var err error
	for i, b := range s.Blocks {
		if x, err = b.forward(x, blk, strided && i == 0); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// Learnables returns the stage's trainable parameters.
func (s *Stage) Learnables() G.Nodes {
	var ns G.Nodes
	for _, b := range s.Blocks {
		ns = append(ns, b.learnables()...)
	}
	return ns
}
