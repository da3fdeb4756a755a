package fpn

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strconv"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/backbone"
	"resdet/nn"
	"resdet/weights"
)

// Prefix is the state-dict prefix of the FPN's tensors in a torchvision
// FasterRCNN.
const Prefix = "backbone.fpn."

// DefaultOutChannels is the pyramid width of every torchvision and
// Detectron2 model zoo FPN.
const DefaultOutChannels = 256

// Norm selects what follows each FPN convolution.
type Norm int

const (
	// NoNorm: convolutions with bias and nothing after them (torchvision v1,
	// Detectron2; torchvision's norm_layer=None).
	NoNorm Norm = iota
	// FrozenBN: convolutions without bias, each followed by a batch norm in
	// eval mode, applied as a constant per-channel affine (torchvision v2's
	// norm_layer=BatchNorm2d). Its parameters are not learnable.
	FrozenBN
)

func (n Norm) String() string {
	switch n {
	case NoNorm:
		return "none"
	case FrozenBN:
		return "frozen-bn"
	}
	return fmt.Sprintf("Norm(%d)", int(n))
}

// Config describes an FPN.
type Config struct {
	// In are the input maps, finest first: C2..C5 of a ResNet (channels
	// 256, 512, 1024, 2048 for ResNet-50; strides 4, 8, 16, 32), as the trunk
	// reports them. Strides must increase. One level or more.
	In []backbone.ShapeSpec
	// OutChannels is the width of every output; 0 means DefaultOutChannels.
	OutChannels int
	// Norm: NoNorm (torchvision v1, Detectron2) or FrozenBN (torchvision v2).
	Norm Norm
	// BNEps is the batch norm's epsilon with FrozenBN; 0 means torch's 1e-5.
	BNEps float32
	// ConstWeights passes nn.ConvOpts.ConstWeights to every convolution: for
	// inference with loaded weights (they are converted to oneDNN's layout on
	// the first run and kept). Load the weights before the first run; changes
	// afterwards are not seen. Leave it false for training.
	ConstWeights bool
	// BF16 (inference, with ConstWeights) runs every convolution in
	// bfloat16 (nn.ConvOpts.BF16; accumulation, bias and the lateral add in
	// float32). New fails on a CPU without bf16 (nn.BF16Supported).
	BF16 bool
}

func (cfg Config) outChannels() int {
	if cfg.OutChannels == 0 {
		return DefaultOutChannels
	}
	return cfg.OutChannels
}

func (cfg Config) eps() float32 {
	if cfg.BNEps == 0 {
		return 1e-5
	}
	return cfg.BNEps
}

func (cfg Config) validate() error {
	if len(cfg.In) == 0 {
		return fmt.Errorf("fpn: no input levels")
	}
	if cfg.OutChannels < 0 {
		return fmt.Errorf("fpn: OutChannels %d: want > 0 (or 0 for %d)", cfg.OutChannels, DefaultOutChannels)
	}
	if cfg.Norm != NoNorm && cfg.Norm != FrozenBN {
		return fmt.Errorf("fpn: unknown norm %v", cfg.Norm)
	}
	if cfg.BNEps < 0 {
		return fmt.Errorf("fpn: BNEps %g: want >= 0", cfg.BNEps)
	}
	if cfg.BF16 {
		if !cfg.ConstWeights {
			return fmt.Errorf("fpn: BF16 is for inference: set ConstWeights too")
		}
		if err := nn.BF16Error(); err != nil {
			return fmt.Errorf("fpn: BF16: %w", err)
		}
	}
	for i, s := range cfg.In {
		if s.Channels < 1 || s.Stride < 1 {
			return fmt.Errorf("fpn: input level %d: channels %d, stride %d: want both positive", i, s.Channels, s.Stride)
		}
		if i > 0 && s.Stride <= cfg.In[i-1].Stride {
			return fmt.Errorf("fpn: input level %d: stride %d after %d: want increasing strides (finest first)",
				i, s.Stride, cfg.In[i-1].Stride)
		}
	}
	return nil
}

// param is a tensor on the graph whose data is shared with the node's value,
// so loading writes through.
type param struct {
	name  string
	shape []int
	data  []float32
	node  *G.Node
}

func newParam(g *G.ExprGraph, name string, shape ...int) *param {
	data := make([]float32, weights.NumElements(shape))
	t := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
	node := G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(t))
	return &param{name: name, shape: shape, data: data, node: node}
}

// convBlock is torchvision's Conv2dNormActivation without activation: a
// k×k convolution (stride 1, padding k/2), with bias (NoNorm) or followed by a
// frozen batch norm (FrozenBN).
type convBlock struct {
	name   string // module name, e.g. "backbone.fpn.inner_blocks.0"
	k      int
	w      *param // "<name>.0.weight" [OutC, InC, k, k]
	b      *param // NoNorm: "<name>.0.bias" [OutC]
	eps    float32
	gamma  []float32 // FrozenBN: "<name>.1.weight", ".bias", ".running_mean", ".running_var"
	beta   []float32
	mean   []float32
	vari   []float32
	scale  *param // FrozenBN: the folded scale and shift the graph sees
	shift  *param
	constW bool
	bf16   bool // Config.BF16
}

func newConvBlock(g *G.ExprGraph, name string, inC, outC, k int, cfg Config, rng *rand.Rand) *convBlock {
	c := &convBlock{name: name, k: k, eps: cfg.eps(), constW: cfg.ConstWeights, bf16: cfg.BF16}
	c.w = newParam(g, name+".0.weight", outC, inC, k, k)
	if rng != nil {
		// torchvision: kaiming_uniform_(a=1), bound sqrt(3/fan_in); bias 0.
		bound := math.Sqrt(3 / float64(inC*k*k))
		for i := range c.w.data {
			c.w.data[i] = float32((2*rng.Float64() - 1) * bound)
		}
	}
	if cfg.Norm == NoNorm {
		c.b = newParam(g, name+".0.bias", outC)
		return c
	}
	c.gamma, c.beta = make([]float32, outC), make([]float32, outC)
	c.mean, c.vari = make([]float32, outC), make([]float32, outC)
	for i := range c.gamma {
		c.gamma[i], c.vari[i] = 1, 1
	}
	c.scale = newParam(g, name+".1.folded_scale", outC)
	c.shift = newParam(g, name+".1.folded_shift", outC)
	c.refold()
	return c
}

// refold recomputes the graph's scale and shift from the BN tensors.
func (c *convBlock) refold() {
	if c.scale == nil {
		return
	}
	scale, shift := nn.FoldBN(c.gamma, c.beta, c.mean, c.vari, c.eps)
	copy(c.scale.data, scale)
	copy(c.shift.data, shift)
}

// forward returns conv(x) (+ bias or frozen BN) + residual. x: [N, InC, H, W];
// residual nil or [N, OutC, H, W]; returns [N, OutC, H, W].
func (c *convBlock) forward(x, residual *G.Node) (*G.Node, error) {
	p := c.k / 2
	o := nn.ConvOpts{Pad: [2]int{p, p}, ConstWeights: c.constW, BF16: c.bf16}
	var y *G.Node
	var err error
	if c.b != nil {
		y, err = nn.Conv2dFused(x, c.w.node, c.b.node, residual, o, false)
	} else {
		y, err = nn.Conv2dBN(x, c.w.node, c.scale.node, c.shift.node, residual, o, false)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	return y, nil
}

// learnables returns the convolution weight and bias (FrozenBN: the weight).
func (c *convBlock) learnables() G.Nodes {
	if c.b != nil {
		return G.Nodes{c.w.node, c.b.node}
	}
	return G.Nodes{c.w.node}
}

// tensorRef is one state-dict tensor and where it lives.
type tensorRef struct {
	name  string
	shape []int
	data  []float32
}

func (c *convBlock) refs() []tensorRef {
	out := []tensorRef{{c.w.name, c.w.shape, c.w.data}}
	if c.b != nil {
		return append(out, tensorRef{c.b.name, c.b.shape, c.b.data})
	}
	sh := []int{len(c.gamma)}
	return append(out,
		tensorRef{c.name + ".1.weight", sh, c.gamma},
		tensorRef{c.name + ".1.bias", sh, c.beta},
		tensorRef{c.name + ".1.running_mean", sh, c.mean},
		tensorRef{c.name + ".1.running_var", sh, c.vari})
}

// FPN is a feature pyramid's parameters on one graph. Forward builds its ops;
// each call adds new ops sharing the parameters.
type FPN struct {
	Config Config
	inner  []*convBlock // lateral 1x1 convolutions, finest first
	layer  []*convBlock // output 3x3 convolutions, finest first
	g      *G.ExprGraph
}

// New creates the parameters of cfg's FPN on g. With a non-nil rng they are
// initialised as torchvision does (convolutions: Kaiming uniform with a=1,
// biases 0; batch norms: weight 1, bias 0, mean 0, var 1); with a nil rng
// the convolutions are zero, to be filled by Load.
func New(g *G.ExprGraph, cfg Config, rng *rand.Rand) (*FPN, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.In = append([]backbone.ShapeSpec(nil), cfg.In...)
	f := &FPN{Config: cfg, g: g}
	out := cfg.outChannels()
	for i, s := range cfg.In {
		f.inner = append(f.inner, newConvBlock(g, fmt.Sprintf("%sinner_blocks.%d", Prefix, i), s.Channels, out, 1, cfg, rng))
	}
	for i := range cfg.In {
		f.layer = append(f.layer, newConvBlock(g, fmt.Sprintf("%slayer_blocks.%d", Prefix, i), out, out, 3, cfg, rng))
	}
	return f, nil
}

// Graph returns the graph holding the parameters.
func (f *FPN) Graph() *G.ExprGraph { return f.g }

// OutputShapes returns the channels and strides of Forward's outputs: one per
// input level with the input's stride, then the max-pooled level at twice the
// coarsest stride (P2..P6 at 4, 8, 16, 32, 64 for a ResNet), all with
// OutChannels channels.
func (f *FPN) OutputShapes() []backbone.ShapeSpec {
	c := f.Config.outChannels()
	out := make([]backbone.ShapeSpec, 0, len(f.Config.In)+1)
	for _, s := range f.Config.In {
		out = append(out, backbone.ShapeSpec{Channels: c, Stride: s.Stride})
	}
	return append(out, backbone.ShapeSpec{Channels: c, Stride: 2 * f.Config.In[len(f.Config.In)-1].Stride})
}

// OutputNames returns torchvision's names of Forward's outputs: "0", "1", ...
// for the input levels, then "pool" (Detectron2's p2..p6).
func (f *FPN) OutputNames() []string {
	out := make([]string, 0, len(f.Config.In)+1)
	for i := range f.Config.In {
		out = append(out, strconv.Itoa(i))
	}
	return append(out, "pool")
}

// Forward builds the pyramid on the trunk's maps c (finest first, C2..C5),
// c[i]: [N, In[i].Channels, Hi, Wi] NCHW on the FPN's graph. It returns
// len(c)+1 maps, finest first (P2..P6): p[i] is [N, OutChannels, Hi, Wi] for
// i < len(c), and the last is the previous one's [:, :, ::2, ::2]
// (max_pool2d with kernel 1, stride 2). The coarser map is resized to each
// finer one by nn.UpsampleNearest, so any sizes work; a ResNet's maps at
// strides 4..32 make every step an exact 2x when H and W are multiples of 32.
func (f *FPN) Forward(c []*G.Node) ([]*G.Node, error) {
	n := len(f.Config.In)
	if len(c) != n {
		return nil, fmt.Errorf("fpn: Forward: %d input maps, want %d", len(c), n)
	}
	for i, x := range c {
		if x == nil {
			return nil, fmt.Errorf("fpn: Forward: input %d is nil", i)
		}
		s := x.Shape()
		if x.Dtype() != tensor.Float32 || len(s) != 4 || s[1] != f.Config.In[i].Channels || s[0] != c[0].Shape()[0] {
			return nil, fmt.Errorf("fpn: Forward: input %d is %v %v, want float32 [%d, %d, H, W]",
				i, x.Dtype(), s, c[0].Shape()[0], f.Config.In[i].Channels)
		}
		if x.Graph() != f.g {
			return nil, fmt.Errorf("fpn: Forward: input %d is on another graph", i)
		}
	}
	out := make([]*G.Node, n+1)
	last, err := f.inner[n-1].forward(c[n-1], nil)
	if err != nil {
		return nil, fmt.Errorf("fpn: %w", err)
	}
	if out[n-1], err = f.layer[n-1].forward(last, nil); err != nil {
		return nil, fmt.Errorf("fpn: %w", err)
	}
	for i := n - 2; i >= 0; i-- {
		s := c[i].Shape()
		up, err := nn.UpsampleNearest(last, s[2], s[3])
		if err != nil {
			return nil, fmt.Errorf("fpn: top-down to level %d: %w", i, err)
		}
		if last, err = f.inner[i].forward(c[i], up); err != nil {
			return nil, fmt.Errorf("fpn: %w", err)
		}
		if out[i], err = f.layer[i].forward(last, nil); err != nil {
			return nil, fmt.Errorf("fpn: %w", err)
		}
	}
	if out[n], err = nn.MaxPool2d(out[n-1], 1, 2, 0); err != nil {
		return nil, fmt.Errorf("fpn: pool: %w", err)
	}
	return out, nil
}

// Learnables returns the trainable parameters: every convolution weight and
// (NoNorm) bias; frozen batch norms have none.
func (f *FPN) Learnables() G.Nodes {
	var ns G.Nodes
	for _, b := range f.blocks() {
		ns = append(ns, b.learnables()...)
	}
	return ns
}

func (f *FPN) blocks() []*convBlock {
	return append(append([]*convBlock(nil), f.inner...), f.layer...)
}

func (f *FPN) refs() []tensorRef {
	var out []tensorRef
	for _, b := range f.blocks() {
		out = append(out, b.refs()...)
	}
	return out
}

// Load copies the FPN's tensors (names under Prefix, see the package doc)
// from s. Tensors outside Prefix belong to other parts and are ignored. Under
// Prefix every tensor of the FPN must be present with its shape and nothing
// else may be (num_batches_tracked aside); the error names the first missing
// or mismatched tensor, or the unexpected ones. Legacy names must have gone
// through UpgradeLegacyNames first.
func (f *FPN) Load(s weights.State) error {
	refs := f.refs()
	known := make(map[string]bool, len(refs))
	for _, r := range refs {
		if _, err := s.Get(r.name, r.shape...); err != nil {
			return fmt.Errorf("fpn: load (%s, %d levels, %d channels): %w", f.Config.Norm, len(f.Config.In), f.Config.outChannels(), err)
		}
		known[r.name] = true
	}
	var extra []string
	for name := range s {
		if strings.HasPrefix(name, Prefix) && !known[name] && !strings.HasSuffix(name, ".num_batches_tracked") {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		if len(extra) > 5 {
			extra = append(extra[:5], "...")
		}
		return fmt.Errorf("fpn: load (%s, %d levels): unexpected tensors %v (other norm or level count? legacy names need UpgradeLegacyNames)",
			f.Config.Norm, len(f.Config.In), extra)
	}
	for _, r := range refs {
		copy(r.data, s[r.name].Data)
	}
	for _, b := range f.blocks() {
		b.refold()
	}
	return nil
}

// State returns a copy of the FPN's tensors under their torchvision names
// (Prefix + ..., see the package doc), batch-norm statistics included.
func (f *FPN) State() weights.State {
	s := make(weights.State)
	for _, r := range f.refs() {
		s[r.name] = weights.Tensor{Shape: append([]int(nil), r.shape...), Data: append([]float32(nil), r.data...)}
	}
	return s
}
