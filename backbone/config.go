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
	// StrideIn1x1 puts a Bottleneck's stride on its first 1x1 convolution (the original
	// MSRA/Caffe models, Detectron) instead of on the 3x3 (torchvision, "ResNet v1.5").
	StrideIn1x1 bool
	// Norm: FrozenBN (default) or TrainableBN.
	Norm Norm
	// Inference folds every frozen batch norm into its convolution (weight*scale, bias
	// = shift) and fuses the residual add and ReLU into the convolution op
	// (nn.Conv2dFused): the fastest forward pass, with no learnable convolutions
	// (the graph holds folded copies; Load and State still use the unfolded tensors).
	// Ignored with TrainableBN.
	Inference bool
	// Train: with TrainableBN, normalise with batch statistics and update the running
	// averages (torch's train mode). Ignored with FrozenBN.
	Train bool
	// FreezeAt, as Detectron's FREEZE_AT: 0 freezes nothing, 1 the stem (conv1, bn1),
	// k >= 2 the stem and the first k-1 stages (2: stem and layer1/res2). Frozen
	// parameters are left out of Learnables.
	FreezeAt int
	// NumClasses is the size of the fc classifier; 0 builds no classifier.
	NumClasses int
	// BNEps is batch norm's epsilon; 0 means torch's 1e-5.
	BNEps float32
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

// blocked reports whether activations between convolutions are kept in oneDNN's
// nChw16c layout (every op between them is a convolution: frozen BN).
func (cfg Config) blocked() bool { return cfg.Norm == FrozenBN }

// fused reports whether batch norms are folded into the convolutions.
func (cfg Config) fused() bool { return cfg.Inference && cfg.Norm == FrozenBN }

// stageSpec is one stage of blocks.
type stageSpec struct {
	name   string // torchvision module name: "layer1"
	blocks int
	width  int // channels inside the block; output is width*expansion
	stride int // stride of the stage's first block
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

// layout returns the block kind, stem width and stages of cfg.
func (cfg Config) layout() (BlockKind, int, []stageSpec, error) {
	if cfg.Shortcut < ShortcutB || cfg.Shortcut > ShortcutC {
		return 0, 0, nil, fmt.Errorf("backbone: unknown shortcut option %d", cfg.Shortcut)
	}
	if cfg.NumClasses < 0 || cfg.FreezeAt < 0 {
		return 0, 0, nil, fmt.Errorf("backbone: negative NumClasses (%d) or FreezeAt (%d)", cfg.NumClasses, cfg.FreezeAt)
	}
	if cfg.CIFAR {
		if cfg.Depth < 8 || (cfg.Depth-2)%6 != 0 {
			return 0, 0, nil, fmt.Errorf("backbone: CIFAR depth %d is not 6n+2 with n >= 1", cfg.Depth)
		}
		n := (cfg.Depth - 2) / 6
		return Basic, 16, []stageSpec{
			{name: "layer1", blocks: n, width: 16, stride: 1},
			{name: "layer2", blocks: n, width: 32, stride: 2},
			{name: "layer3", blocks: n, width: 64, stride: 2},
		}, nil
	}
	counts, ok := blocksPerStage(cfg.Depth)
	if !ok {
		return 0, 0, nil, fmt.Errorf("backbone: unsupported depth %d (want 18, 34, 50, 101 or 152)", cfg.Depth)
	}
	kind := Basic
	if cfg.Depth >= 50 {
		kind = Bottleneck
	}
	st := make([]stageSpec, 4)
	for i := range st {
		st[i] = stageSpec{name: fmt.Sprintf("layer%d", i+1), blocks: counts[i], width: 64 << i, stride: 2}
	}
	st[0].stride = 1
	return kind, 64, st, nil
}

// ShapeSpec describes a feature map produced by the backbone.
type ShapeSpec struct {
	Channels int
	Stride   int // input pixels per feature cell
}
