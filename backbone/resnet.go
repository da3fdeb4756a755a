package backbone

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"

	G "gorgonia.org/gorgonia"

	"resdet/nn"
	"resdet/weights"
)

// ResNet is a ResNet's parameters on one graph. Build the forward graph with C4 and
// Res5 (detection), Features or Logits (classification); each call adds new ops that
// share the parameters.
type ResNet struct {
	Config Config
	Kind   BlockKind
	conv1  *convBN
	stemC  int
	// blk: frozen BN and every channel count a multiple of 16, so activations between
	// convolutions stay in oneDNN's blocked layout (nChw16c on AVX-512, nChw8c on AVX2: nn.CPU().Block).
	blk bool
	// Stages are layer1 .. layer4 (res2 .. res5); three for the CIFAR nets.
	Stages []*Stage
	fcW    *param // [NumClasses, features], nil without a classifier
	fcB    *param // [NumClasses]
	g      *G.ExprGraph
}

// New creates the parameters of cfg's network on g. With a non-nil rng they are
// initialised as torchvision does (conv: Kaiming normal, fan_out; BN: gamma 1, beta 0,
// mean 0, var 1; fc: uniform ±1/sqrt(features)); with a nil rng the convolutions and
// the classifier are zero, to be filled by Load.
func New(g *G.ExprGraph, cfg Config, rng *rand.Rand) (*ResNet, error) {
	a, err := cfg.layout()
	if err != nil {
		return nil, err
	}
	if cfg.bf16() {
		if err := nn.BF16Error(); err != nil {
			return nil, fmt.Errorf("backbone: Config.BF16: %w", err)
		}
	}
	r := &ResNet{Config: cfg, Kind: a.kind, stemC: a.stemC, blk: cfg.Norm == FrozenBN && a.blockable(), g: g}
	stem := convShape{in: 3, out: a.stemC, k: 7, stride: 2, pad: 3}
	if cfg.CIFAR {
		stem.k, stem.stride, stem.pad = 3, 1, 1
	}
	r.conv1 = newConvBN(g, "conv1", "bn1", stem, cfg, rng)
	inC, stride := a.stemC, r.StemOut().Stride
	for _, sp := range a.stages {
		stride *= sp.stride
		st := &Stage{Name: sp.name, Out: ShapeSpec{Channels: sp.out, Stride: stride}}
		for i := 0; i < sp.blocks; i++ {
			bs := blockSpec{inC: inC, width: sp.width, outC: sp.out, stride: 1, dilation: sp.dilation, groups: a.groups}
			if i == 0 {
				bs.stride, bs.dilation = sp.stride, sp.firstDilation
			}
			b := newBlock(g, fmt.Sprintf("%s.%d", sp.name, i), a.kind, bs, cfg, r.blk, rng)
			st.Blocks = append(st.Blocks, b)
			inC = b.OutC
		}
		r.Stages = append(r.Stages, st)
	}
	// No gradient w.r.t. the image, nor into the frozen part.
	r.conv1.conv.noInputGrad = true
	if k := cfg.FreezeAt; k >= 1 && k <= len(r.Stages) {
		b := r.Stages[k-1].Blocks[0]
		b.convs[0].conv.noInputGrad = true
		if b.proj != nil {
			b.proj.conv.noInputGrad = true
		}
	}
	if cfg.NumClasses > 0 {
		r.fcW = newParam(g, "fc.weight", cfg.NumClasses, inC)
		r.fcB = newParam(g, "fc.bias", cfg.NumClasses)
		if rng != nil {
			bound := 1 / math.Sqrt(float64(inC))
			for _, d := range [][]float32{r.fcW.data, r.fcB.data} {
				for i := range d {
					d[i] = float32((2*rng.Float64() - 1) * bound)
				}
			}
		}
	}
	return r, nil
}

// Graph returns the graph holding the parameters.
func (r *ResNet) Graph() *G.ExprGraph { return r.g }

// StemOut is the stem's output: 64 channels at stride 4 (CIFAR: 16 at stride 1).
func (r *ResNet) StemOut() ShapeSpec {
	if r.Config.CIFAR {
		return ShapeSpec{Channels: r.stemC, Stride: 1}
	}
	return ShapeSpec{Channels: r.stemC, Stride: 4}
}

// OutputNames lists the named outputs in network order: "stem", then "res2" ..
// "res5" (CIFAR: "res2" .. "res4") for the stages layer1 ...
func (r *ResNet) OutputNames() []string {
	names := []string{"stem"}
	for i := range r.Stages {
		names = append(names, fmt.Sprintf("res%d", i+2))
	}
	return names
}

// OutputShapes reports the channels and stride of every named output (see
// OutputNames): res2 .. res5 have strides 4, 8, 16, 32 (res5 16 with
// Config.Res5Dilation).
func (r *ResNet) OutputShapes() map[string]ShapeSpec {
	m := map[string]ShapeSpec{"stem": r.StemOut()}
	for i, st := range r.Stages {
		m[fmt.Sprintf("res%d", i+2)] = st.Out
	}
	return m
}

// Feature is one named output of Outputs.
type Feature struct {
	Name  string // "stem", "res2" .. "res5"
	Shape ShapeSpec
	// Node is the feature map, NCHW [N, Shape.Channels, H', W'] with H' = H/Shape.Stride
	// rounded as torch's convolutions round (H'-1 = (H-1)/Shape.Stride for the
	// stages, integer division), likewise W'.
	Node *G.Node
	// Chain is the same map in the layout the stages ran in, when they ran
	// in a blocked chain (frozen BN, channels multiples of 16; nil
	// otherwise): float32 nChw<B>c (nn.ToBlocked's layout), or with
	// Config.BF16 bfloat16 channels-last (nn.ToBlockedBF16's, a BFloat16
	// node). Convolutions that read that layout (nn.ConvOpts.BlockedIn, with
	// BlockedBF16 for a BFloat16 Chain) take it as it is, where Node costs a
	// conversion to NCHW and, inside the convolution, back. Node is
	// nn.FromBlocked(Chain): a graph may use either or both, and the
	// gradients of both reach the stage.
	Chain *G.Node
}

// Outputs runs the stem and the stages up to the deepest output asked for, in one
// pass, and returns the named outputs (see OutputNames) in the order of names: the
// bottom-up path of an FPN is Outputs(x, "res2", "res3", "res4", "res5"), maps at
// strides 4, 8, 16 and 32. x: [N, 3, H, W]. Unknown or repeated names are an error.
func (r *ResNet) Outputs(x *G.Node, names ...string) ([]Feature, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("backbone: Outputs: no output names (have %v)", r.OutputNames())
	}
	index := map[string]int{}
	for i, n := range r.OutputNames() {
		index[n] = i
	}
	want := map[int]int{} // network position -> position in names
	last := 0
	for i, n := range names {
		pos, ok := index[n]
		if !ok {
			return nil, fmt.Errorf("backbone: Outputs: unknown output %q (have %v)", n, r.OutputNames())
		}
		if _, dup := want[pos]; dup {
			return nil, fmt.Errorf("backbone: Outputs: output %q asked for twice", n)
		}
		want[pos] = i
		last = max(last, pos)
	}
	shapes := r.OutputShapes()
	out := make([]Feature, len(names))
	emit := func(pos int, y *G.Node) error {
		i, ok := want[pos]
		if !ok {
			return nil
		}
		f := Feature{Name: names[i], Shape: shapes[names[i]], Node: y}
		if r.blk {
			var err error
			if f.Node, err = nn.FromBlocked(y); err != nil {
				return err
			}
			f.Chain = y
		}
		out[i] = f
		return nil
	}
	y, err := r.stem(x)
	if err != nil {
		return nil, err
	}
	if err := emit(0, y); err != nil {
		return nil, err
	}
	for i, st := range r.Stages[:last] {
		if y, err = st.forward(y, r.blk, false); err != nil {
			return nil, err
		}
		if err := emit(i+1, y); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Stem applies conv1, bn1, ReLU and (not for CIFAR) 3x3/2 max pooling.
// x: [N, 3, H, W] -> [N, 64, H/4, W/4] (rounded as torch's convolution and pooling do).
func (r *ResNet) Stem(x *G.Node) (*G.Node, error) {
	y, err := r.stem(x)
	if err != nil || !r.blk {
		return y, err
	}
	return nn.FromBlocked(y)
}

// stem is Stem with the output in the blocked layout when r.blk.
func (r *ResNet) stem(x *G.Node) (*G.Node, error) {
	if s := x.Shape(); len(s) != 4 || s[1] != 3 {
		return nil, fmt.Errorf("backbone: input shape %v, want [N, 3, H, W]", s)
	}
	blk := r.blk
	// Inference pools in the blocked layout (no gradient); training pools in NCHW.
	blkConv := blk && (r.Config.CIFAR || r.Config.fused())
	y, err := r.conv1.forward(x, nil, true, false, blkConv)
	if err != nil {
		return nil, err
	}
	if !r.Config.CIFAR {
		if blkConv {
			y, err = nn.MaxPool2dBlocked(y, 3, 2, 1)
		} else {
			y, err = nn.MaxPool2d(y, 3, 2, 1)
		}
		if err != nil {
			return nil, fmt.Errorf("maxpool: %w", err)
		}
	}
	if blk && !blkConv {
		y, err = toBlocked(y, r.conv1.conv.bf16)
	}
	return y, err
}

// C4 runs conv1 .. conv4_x: x [N, 3, H, W] -> [N, C4Out().Channels, ~H/16, ~W/16].
// It is the detector's trunk. Not defined for the CIFAR nets (error).
func (r *ResNet) C4(x *G.Node) (*G.Node, error) {
	if r.Config.CIFAR {
		return nil, fmt.Errorf("backbone: C4 is not defined for the CIFAR networks")
	}
	return r.run(x, 3)
}

// C4Out is C4's output: 1024 channels (Bottleneck) or 256 (Basic) at stride 16.
func (r *ResNet) C4Out() ShapeSpec { return r.Stages[2].Out }

// Res5 is the conv5_x stage (layer4), for the detector to apply to pooled RoI features
// [K, C4Out().Channels, h, w] -> [K, Res5().Out.Channels, (h-1)/s+1, (w-1)/s+1] with
// s = Res5().Blocks[0].Stride (2; 1 with Config.Res5Dilation). Its Out.Stride (32;
// 16 with Res5Dilation) is relative to the image when applied to the C4 map.
// Nil for the CIFAR nets.
func (r *ResNet) Res5() *Stage {
	if r.Config.CIFAR {
		return nil
	}
	return r.Stages[3]
}

// Features runs the stem and every stage: x [N, 3, H, W] -> the last stage's map.
func (r *ResNet) Features(x *G.Node) (*G.Node, error) {
	return r.run(x, len(r.Stages))
}

func (r *ResNet) run(x *G.Node, stages int) (*G.Node, error) {
	y, err := r.stem(x)
	if err != nil {
		return nil, err
	}
	blk := r.blk
	for _, st := range r.Stages[:stages] {
		if y, err = st.forward(y, blk, false); err != nil {
			return nil, err
		}
	}
	if blk {
		return nn.FromBlocked(y)
	}
	return y, nil
}

// Logits runs the whole network: x [N, 3, H, W] -> logits [N, NumClasses] (global
// average pooling, then fc). Errors if the network has no classifier.
func (r *ResNet) Logits(x *G.Node) (*G.Node, error) {
	if r.fcW == nil {
		return nil, fmt.Errorf("backbone: Logits needs a classifier (Config.NumClasses > 0)")
	}
	y, err := r.Features(x)
	if err != nil {
		return nil, err
	}
	if y, err = nn.GlobalAvgPool(y); err != nil {
		return nil, fmt.Errorf("avgpool: %w", err)
	}
	if y, err = nn.Linear(y, r.fcW.node, r.fcB.node); err != nil {
		return nil, fmt.Errorf("fc: %w", err)
	}
	return y, nil
}

// Learnables returns the trainable parameters: every convolution and (TrainableBN)
// batch-norm gamma/beta outside the frozen part (Config.FreezeAt), and the classifier.
func (r *ResNet) Learnables() G.Nodes {
	var ns G.Nodes
	if r.Config.FreezeAt < 1 {
		ns = append(ns, r.conv1.learnables()...)
	}
	for i, st := range r.Stages {
		if r.Config.FreezeAt >= i+2 {
			continue
		}
		ns = append(ns, st.Learnables()...)
	}
	if r.fcW != nil {
		ns = append(ns, r.fcW.node, r.fcB.node)
	}
	return ns
}

// tensorRef is one named tensor of the state dict and where it lives (data is nil for
// a fused convolution's weight, which is folded on Load).
type tensorRef struct {
	name  string
	shape []int
	data  []float32
	cb    *convBN // set for convolution weights
}

func (r *ResNet) eachConvBN(f func(cb *convBN)) {
	f(r.conv1)
	for _, st := range r.Stages {
		for _, b := range st.Blocks {
			for _, cb := range b.convs {
				f(cb)
			}
			if b.proj != nil {
				f(b.proj)
			}
		}
	}
}

// refs lists the state-dict tensors of the network in a fixed order.
func (r *ResNet) refs() []tensorRef {
	var out []tensorRef
	r.eachConvBN(func(cb *convBN) {
		c, bn := cb.conv, cb.bn
		mean, vari := bn.stat()
		out = append(out,
			tensorRef{c.name, c.shape, c.raw, cb},
			tensorRef{bn.name + ".weight", []int{bn.c}, bn.gamma, nil},
			tensorRef{bn.name + ".bias", []int{bn.c}, bn.beta, nil},
			tensorRef{bn.name + ".running_mean", []int{bn.c}, mean, nil},
			tensorRef{bn.name + ".running_var", []int{bn.c}, vari, nil})
	})
	if r.fcW != nil {
		out = append(out, tensorRef{"fc.weight", r.fcW.shape, r.fcW.data, nil}, tensorRef{"fc.bias", r.fcB.shape, r.fcB.data, nil})
	}
	return out
}

// Load copies a state dict (torchvision names, see package weights) into the
// parameters. Every tensor of the network must be present with its shape; the error
// names the first missing or mismatched tensor with both shapes. Extra entries are an
// error too, except num_batches_tracked and, for a network without classifier, fc.*
// (so ImageNet checkpoints load into a detection backbone).
func (r *ResNet) Load(s weights.State) error {
	refs := r.refs()
	known := make(map[string]bool, len(refs))
	for _, ref := range refs {
		if _, err := s.Get(ref.name, ref.shape...); err != nil {
			return fmt.Errorf("backbone: load resnet%d: %w", r.Config.Depth, err)
		}
		known[ref.name] = true
	}
	var extra []string
	for name := range s {
		switch {
		case known[name], strings.HasSuffix(name, ".num_batches_tracked"):
		case r.fcW == nil && strings.HasPrefix(name, "fc."):
		default:
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		if len(extra) > 5 {
			extra = append(extra[:5], "...")
		}
		return fmt.Errorf("backbone: load resnet%d: unexpected tensors %v (wrong architecture?)", r.Config.Depth, extra)
	}
	// Everything is checked: copy (BN statistics before folding the weights).
	for _, ref := range refs {
		if ref.data != nil {
			copy(ref.data, s[ref.name].Data)
		}
	}
	for _, ref := range refs {
		if ref.cb != nil {
			ref.cb.refold(s[ref.name].Data)
		}
	}
	if r.Config.bf16() && r.Config.fused() {
		// The bf16 convolutions keep their weights converted after the first
		// run (nn.ConvOpts.ConstWeights): drop those copies of the old ones.
		nn.ReleaseConvBuffers()
	}
	return nil
}

// State returns a copy of the parameters as a state dict with torchvision's names
// (including the BN running statistics), e.g. for weights.WriteSafetensors. An
// Inference network keeps only the folded convolution weights: State recovers them by
// dividing by the BN scale (exact up to float32 rounding).
func (r *ResNet) State() weights.State {
	s := make(weights.State)
	for _, ref := range r.refs() {
		data := ref.data
		if ref.cb != nil {
			data = ref.cb.weight()
		}
		s[ref.name] = weights.Tensor{Shape: append([]int{}, ref.shape...), Data: append([]float32{}, data...)}
	}
	return s
}
