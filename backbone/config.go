package backbone

import "fmt"

// BlockKind is the residual block type.
type BlockKind int

const (
	// Basic is two 3x3 convolutions (ResNet-18/34 and the CIFAR nets); expansion 1.
	Basic BlockKind = iota
	// Bottleneck is 1x1 reduce, 3x3, 1x1 expand (ResNet-50/101/152); expansion 4.
	Bottleneck
)

// Expansion is the ratio of a block's output channels to its width.
func (k BlockKind) Expansion() int {
	if k == Bottleneck {
		return 4
	}
	return 1
}

// Shortcut selects the shortcut connections of section 3.3 of the paper.
type Shortcut int

const (
	// ShortcutB: identity shortcuts, projections (1x1 conv + BN, named
	// "downsample.0/1") only where the shape changes. The default and torchvision's.
	ShortcutB Shortcut = iota
	// ShortcutA: identity shortcuts everywhere; where the shape changes the input is
	// subsampled (x[:, :, ::s, ::s]) and the extra channels are zeros. No parameters.
	ShortcutA
	// ShortcutC: projection shortcuts in every block.
	ShortcutC
)

func (s Shortcut) String() string {
	switch s {
	case ShortcutA:
		return "A"
	case ShortcutB:
		return "B"
	case ShortcutC:
		return "C"
	}
	return fmt.Sprintf("Shortcut(%d)", int(s))
}

// Norm selects how batch normalisation is run.
type Norm int

const (
	// FrozenBN folds each batch norm into a constant per-channel affine
	// (scale = gamma/sqrt(var+eps), shift = beta - mean*scale), as the paper does for
	// detection. Its parameters are never learnable.
	FrozenBN Norm = iota
	// TrainableBN uses nn.BatchNorm: gamma and beta are learnable, and with
	// Config.Train the batch statistics normalise and update the running averages.
	TrainableBN
)

// Config describes a ResNet. Zero values give torchvision's architecture (shortcut B,
// stride on the 3x3) with frozen BN, nothing frozen and no classifier (NumClasses 0,
// the detection backbone); DefaultConfig and CIFARConfig fill in the classifiers.
type Config struct {
	// Depth: 18, 34, 50, 101 or 152; with CIFAR, 6n+2 for n >= 1 (20, 32, 44, 56, 110,
	// 1202 in the paper).
	Depth int
	// CIFAR builds the CIFAR-10 network of section 4.2: a 3x3 16-filter stem without max
	// pooling, three stages of n BasicBlocks with 16, 32 and 64 filters (strides 1, 2, 2).
	CIFAR bool
	// Shortcut: see the constants. The paper's CIFAR nets use ShortcutA.
	Shortcut Shortcut
	// Plain drops every shortcut (the paper's plain nets); Shortcut is then ignored.
	Plain bool
	// StrideIn1x1 puts a Bottleneck's stride on its first 1x1 convolution (conv1 of
	// the first block of res3, res4 and res5; the shortcut keeps the same stride) as
	// the original MSRA/Caffe models and Detectron2 (STRIDE_IN_1X1, true for its R50
	// and R101 models) do, instead of on the 3x3 (torchvision, "ResNet v1.5";
	// Detectron2's ResNeXt models).
	StrideIn1x1 bool
	// Groups is the number of groups of every Bottleneck's 3x3 convolution (ResNeXt's
	// cardinality: Detectron2's NUM_GROUPS, torchvision's groups); 0 means 1.
	// Bottleneck only.
	Groups int
	// WidthPerGroup is the channels per group of res2's 3x3 convolution (Detectron2's
	// WIDTH_PER_GROUP, torchvision's width_per_group); 0 means 64. A Bottleneck's
	// width (the channels of its 1x1 reduction and its 3x3) is Groups*WidthPerGroup
	// in res2 and doubles at each later stage: ResNeXt-101 32x8d (Groups 32,
	// WidthPerGroup 8) has 256 channels in 32 groups in res2's 3x3, 2048 in res5's.
	// Bottleneck only (0 or 64 otherwise).
	WidthPerGroup int
	// Res2OutChannels is res2's output channels (Detectron2's RES2_OUT_CHANNELS),
	// doubled at each later stage; 0 means 256 (Bottleneck) or 64 (Basic, which
	// accepts no other value). The stem always has 64 channels.
	Res2OutChannels int
	// Res5Dilation > 1 dilates res5 (layer4) instead of striding it, as Detectron2's
	// RES5_DILATION (the "DC5" models): res5's first block has stride 1 (its
	// shortcut too), its 3x3 convolutions have dilation and padding Res5Dilation, and
	// res5's output has stride 16 instead of 32. 0 or 1: the ordinary stage.
	// Bottleneck only.
	Res5Dilation int
	// Res5FirstUndilated keeps the 3x3 of res5's first block at dilation 1 (padding
	// 1, stride 1), as torchvision's replace_stride_with_dilation=[False, False, True]
	// builds it (its first block takes the previous stage's dilation). Detectron2
	// dilates every block of res5 (false). Needs Res5Dilation > 1.
	Res5FirstUndilated bool
	// Norm: FrozenBN (default) or TrainableBN.
	Norm Norm
	// Inference folds every frozen batch norm into its convolution (weight*scale, bias
	// = shift) and fuses the residual add and ReLU into the convolution op
	// (nn.Conv2dFused): the fastest forward pass, with no learnable convolutions
	// (the graph holds folded copies; Load and State still use the unfolded tensors).
	// Ignored with TrainableBN.
	Inference bool
	// BF16 runs every convolution in bfloat16 (nn.ConvOpts.BF16: inputs and
	// weights rounded to bf16, accumulation and bias in float32). With
	// FrozenBN the activations between the convolutions of a stage (in
	// inference also from the stem's convolution through its max pooling)
	// are bf16 in channels-last order (nn.ToBlockedBF16,
	// nn.ConvOpts.BlockedBF16): each convolution writes its output, the
	// residual add and ReLU included, in bf16 and the next reads it as it
	// is, as torch's autocast does with channels_last tensors; a stage's
	// output goes back to float32 NCHW (nn.FromBlocked) for what follows
	// (RoI pooling, the FPN neck), Outputs also hands out the bf16 value
	// itself (Feature.Chain, which the RPN head reads), and the C4 box head
	// averages res5's bf16 output directly. With Inference the folded weights are converted
	// once, on the first run (nn.ConvOpts.ConstWeights). In training the
	// float32 weights stay the master copy and are rounded to bf16 on every
	// run, the activations saved for the backward pass are those bf16
	// tensors (half the memory of float32), the gradients are float32
	// (computed by bf16 convolutions with float32 accumulation), and batch
	// norm (frozen: the float32 scale applied to the weights before
	// rounding; trainable: its own op, with float32 NCHW activations) stays
	// float32. New fails on a CPU without bf16 (nn.BF16Supported).
	BF16 bool
	// Train: with TrainableBN, normalise with batch statistics and update the running
	// averages (torch's train mode). Ignored with FrozenBN.
	Train bool
	// FreezeAt, as Detectron's FREEZE_AT: 0 freezes nothing, 1 the stem (conv1, bn1),
	// k >= 2 the stem and the first k-1 stages (2: stem and layer1/res2). Frozen
	// parameters are left out of Learnables.
	FreezeAt int
	// NumClasses is the size of the fc classifier; 0 builds no classifier.
	NumClasses int
	// BNEps is batch norm's epsilon; 0 means torch's 1e-5 (see BNEpsZero).
	BNEps float32
	// BNEpsZero makes batch norm's epsilon exactly 0: scale = gamma/sqrt(var), as in
	// torchvision's COCO_V1 fasterrcnn_resnet50_fpn, which overwrites the FrozenBN
	// epsilons with 0. BNEps must then be 0.
	BNEpsZero bool

	// blocks overrides the depth table's blocks per stage when non-zero (tests build
	// short networks with it; Depth still picks the block kind).
	blocks [4]int
}

// bnEps is the batch-norm epsilon of cfg.
func (cfg Config) bnEps() float32 {
	switch {
	case cfg.BNEpsZero:
		return 0
	case cfg.BNEps == 0:
		return 1e-5
	}
	return cfg.BNEps
}

// DefaultConfig is torchvision's resnet<depth> with 1000 classes and frozen BN.
func DefaultConfig(depth int) Config {
	return Config{Depth: depth, NumClasses: 1000}
}

// CIFARConfig is the paper's CIFAR-10 network with 6n+2 layers (option A shortcuts,
// 10 classes).
func CIFARConfig(n int) Config {
	return Config{Depth: 6*n + 2, CIFAR: true, Shortcut: ShortcutA, NumClasses: 10}
}

// fused reports whether batch norms are folded into the convolutions.
func (cfg Config) fused() bool { return cfg.Inference && cfg.Norm == FrozenBN }

// bf16 says whether the convolutions run in bf16 (BF16).
func (cfg Config) bf16() bool { return cfg.BF16 }

// stageSpec is one stage of blocks.
type stageSpec struct {
	name     string // torchvision module name: "layer1"
	blocks   int
	width    int // channels inside the block (of its 3x3 in a Bottleneck)
	out      int // output channels
	stride   int // stride of the stage's first block
	dilation int // dilation of the 3x3 convolutions (padding = dilation)
	// firstDilation is the dilation of the first block's 3x3.
	firstDilation int
}

// arch is the shape of a network: block kind, stem channels and stages.
type arch struct {
	kind   BlockKind
	stemC  int
	groups int // of the Bottleneck 3x3 convolutions
	stages []stageSpec
}

// blockable reports whether every activation between convolutions has a multiple of
// 16 channels, as oneDNN's nChw16c layout needs.
func (a arch) blockable() bool {
	ok := a.stemC%16 == 0
	for _, st := range a.stages {
		ok = ok && st.width%16 == 0 && st.out%16 == 0
	}
	return ok
}

// blocksPerStage is the depth table of the paper's Table 1.
func blocksPerStage(depth int) ([4]int, bool) {
	switch depth {
	case 18:
		return [4]int{2, 2, 2, 2}, true
	case 34, 50:
		return [4]int{3, 4, 6, 3}, true
	case 101:
		return [4]int{3, 4, 23, 3}, true
	case 152:
		return [4]int{3, 8, 36, 3}, true
	}
	return [4]int{}, false
}

// layout checks cfg and returns the shape of its network.
func (cfg Config) layout() (arch, error) {
	if cfg.Shortcut < ShortcutB || cfg.Shortcut > ShortcutC {
		return arch{}, fmt.Errorf("backbone: unknown shortcut option %d", cfg.Shortcut)
	}
	if cfg.NumClasses < 0 || cfg.FreezeAt < 0 {
		return arch{}, fmt.Errorf("backbone: negative NumClasses (%d) or FreezeAt (%d)", cfg.NumClasses, cfg.FreezeAt)
	}
	if cfg.Groups < 0 || cfg.WidthPerGroup < 0 || cfg.Res2OutChannels < 0 || cfg.Res5Dilation < 0 {
		return arch{}, fmt.Errorf("backbone: negative Groups (%d), WidthPerGroup (%d), Res2OutChannels (%d) or Res5Dilation (%d)",
			cfg.Groups, cfg.WidthPerGroup, cfg.Res2OutChannels, cfg.Res5Dilation)
	}
	if cfg.BNEps < 0 || (cfg.BNEpsZero && cfg.BNEps != 0) {
		return arch{}, fmt.Errorf("backbone: BNEps %g with BNEpsZero %v: want BNEps >= 0, and 0 with BNEpsZero", cfg.BNEps, cfg.BNEpsZero)
	}
	if cfg.Res5FirstUndilated && cfg.Res5Dilation <= 1 {
		return arch{}, fmt.Errorf("backbone: Res5FirstUndilated needs Res5Dilation > 1 (have %d)", cfg.Res5Dilation)
	}
	groups := max(cfg.Groups, 1)
	wpg := cfg.WidthPerGroup
	if wpg == 0 {
		wpg = 64
	}
	dil := max(cfg.Res5Dilation, 1)
	basicOnly := func(what string) error {
		if groups != 1 || wpg != 64 || dil != 1 || (cfg.Res2OutChannels != 0 && cfg.Res2OutChannels != 64) {
			return fmt.Errorf("backbone: %s: Groups %d, WidthPerGroup %d, Res2OutChannels %d and Res5Dilation %d need Bottleneck blocks (depth >= 50)",
				what, cfg.Groups, cfg.WidthPerGroup, cfg.Res2OutChannels, cfg.Res5Dilation)
		}
		return nil
	}
	if cfg.CIFAR {
		if cfg.Depth < 8 || (cfg.Depth-2)%6 != 0 {
			return arch{}, fmt.Errorf("backbone: CIFAR depth %d is not 6n+2 with n >= 1", cfg.Depth)
		}
		if err := basicOnly(fmt.Sprintf("CIFAR depth %d", cfg.Depth)); err != nil {
			return arch{}, err
		}
		n := (cfg.Depth - 2) / 6
		a := arch{kind: Basic, stemC: 16, groups: 1}
		for i, c := range []int{16, 32, 64} {
			a.stages = append(a.stages, stageSpec{name: fmt.Sprintf("layer%d", i+1), blocks: n, width: c, out: c,
				stride: 2, dilation: 1, firstDilation: 1})
		}
		a.stages[0].stride = 1
		return a, nil
	}
	counts, ok := blocksPerStage(cfg.Depth)
	if !ok {
		return arch{}, fmt.Errorf("backbone: unsupported depth %d (want 18, 34, 50, 101 or 152)", cfg.Depth)
	}
	if cfg.blocks != [4]int{} {
		counts = cfg.blocks
	}
	a := arch{kind: Basic, stemC: 64, groups: groups}
	width, out := 64, 64
	if cfg.Depth >= 50 {
		a.kind = Bottleneck
		width, out = groups*wpg, 256
		if cfg.Res2OutChannels != 0 {
			out = cfg.Res2OutChannels
		}
	} else if err := basicOnly(fmt.Sprintf("depth %d", cfg.Depth)); err != nil {
		return arch{}, err
	}
	for i := range 4 {
		a.stages = append(a.stages, stageSpec{name: fmt.Sprintf("layer%d", i+1), blocks: counts[i],
			width: width << i, out: out << i, stride: 2, dilation: 1, firstDilation: 1})
	}
	a.stages[0].stride = 1
	if dil > 1 {
		res5 := &a.stages[3]
		res5.stride, res5.dilation, res5.firstDilation = 1, dil, dil
		if cfg.Res5FirstUndilated {
			res5.firstDilation = 1
		}
	}
	return a, nil
}

// ShapeSpec describes a feature map produced by the backbone.
type ShapeSpec struct {
	Channels int
	Stride   int // input pixels per feature cell
}
