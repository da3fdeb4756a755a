package detection

import (
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strconv"
	"strings"

	"resdet/backbone"
	"resdet/box"
	"resdet/nn"
)

// Size is the size of an image in pixels.
type Size struct{ W, H int }

// RPNConfig configures the region proposal network: its anchors, its
// proposal filtering and its training targets. DefaultRPNConfig gives
// torchvision's FasterRCNN defaults.
type RPNConfig struct {
	// Anchors places the anchors; the RPN head predicts
	// Anchors.NumAnchors() objectness logits and deltas per cell.
	Anchors AnchorGenerator
	// PreNMSTopNTrain and PreNMSTopNTest bound the proposals kept by
	// objectness before NMS, per image and feature level (2000, 1000).
	PreNMSTopNTrain, PreNMSTopNTest int
	// PostNMSTopNTrain and PostNMSTopNTest bound the proposals kept after
	// NMS, per image (2000, 1000; the paper tests with 300).
	PostNMSTopNTrain, PostNMSTopNTest int
	// NMSThresh is the IoU above which NMS suppresses a proposal (0.7).
	NMSThresh float32
	// ScoreThresh drops proposals whose objectness probability is below it
	// (0: keep all; torchvision compares with >=).
	ScoreThresh float32
	// MinSize drops proposals narrower or lower than it, in pixels, after
	// clipping (1e-3, fixed in torchvision).
	MinSize float32
	// FGIoUThresh and BGIoUThresh: anchors with IoU >= FG are positive,
	// < BG negative, in between ignored (0.7, 0.3). Each ground-truth
	// box's best anchors are positive too (low-quality matches).
	FGIoUThresh, BGIoUThresh float32
	// BatchSizePerImage anchors are sampled per image for the loss (256),
	// at most PositiveFraction of them positive (0.5).
	BatchSizePerImage int
	PositiveFraction  float32
	// BoxCoderWeights weight the RPN deltas: (1, 1, 1, 1).
	BoxCoderWeights [4]float32
	// LogitScores selects proposals as Detectron2's find_top_rpn_proposals:
	// the scores are the raw objectness logits (NMS orders by them and they
	// are returned), ScoreThresh is not applied, proposals with a
	// non-finite box or logit are dropped, and a proposal is kept only if
	// both sides are > 0 after clipping (MinSize is not applied).
	LogitScores bool `json:",omitempty"`
}

// DefaultRPNConfig returns torchvision's defaults
// (torchvision/models/detection/faster_rcnn.py) with the paper's anchors.
func DefaultRPNConfig() RPNConfig {
	return RPNConfig{
		Anchors:           DefaultAnchorGenerator(),
		PreNMSTopNTrain:   2000,
		PreNMSTopNTest:    1000,
		PostNMSTopNTrain:  2000,
		PostNMSTopNTest:   1000,
		NMSThresh:         0.7,
		ScoreThresh:       0,
		MinSize:           1e-3,
		FGIoUThresh:       0.7,
		BGIoUThresh:       0.3,
		BatchSizePerImage: 256,
		PositiveFraction:  0.5,
		BoxCoderWeights:   [4]float32{1, 1, 1, 1},
	}
}

// TopN returns the pre- and post-NMS proposal counts for training or
// inference.
func (c RPNConfig) TopN(training bool) (pre, post int) {
	if training {
		return c.PreNMSTopNTrain, c.PostNMSTopNTrain
	}
	return c.PreNMSTopNTest, c.PostNMSTopNTest
}

// BoxCoder returns the coder of the RPN deltas.
func (c RPNConfig) BoxCoder() box.BoxCoder {
	w := c.BoxCoderWeights
	return box.NewBoxCoder(w[0], w[1], w[2], w[3])
}

// Matcher returns the anchor matcher (with low-quality matches).
func (c RPNConfig) Matcher() box.Matcher {
	return box.Matcher{High: c.FGIoUThresh, Low: c.BGIoUThresh, AllowLowQualityMatches: true}
}

// Sampler returns the anchor sampler.
func (c RPNConfig) Sampler() box.Sampler {
	return box.Sampler{BatchSizePerImage: c.BatchSizePerImage, PositiveFraction: c.PositiveFraction}
}

// Validate returns an error naming the first field out of range.
func (c RPNConfig) Validate() error {
	if err := c.Anchors.Validate(); err != nil {
		return fmt.Errorf("detection: RPNConfig.Anchors: %w", err)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"PreNMSTopNTrain", c.PreNMSTopNTrain}, {"PreNMSTopNTest", c.PreNMSTopNTest},
		{"PostNMSTopNTrain", c.PostNMSTopNTrain}, {"PostNMSTopNTest", c.PostNMSTopNTest},
		{"BatchSizePerImage", c.BatchSizePerImage},
	} {
		if f.v < 1 {
			return fmt.Errorf("detection: RPNConfig.%s = %d, want >= 1", f.name, f.v)
		}
	}
	if err := checkFractions("RPNConfig", map[string]float32{
		"NMSThresh": c.NMSThresh, "ScoreThresh": c.ScoreThresh, "FGIoUThresh": c.FGIoUThresh,
		"BGIoUThresh": c.BGIoUThresh, "PositiveFraction": c.PositiveFraction,
	}); err != nil {
		return err
	}
	if c.BGIoUThresh > c.FGIoUThresh {
		return fmt.Errorf("detection: RPNConfig.BGIoUThresh = %v above FGIoUThresh = %v", c.BGIoUThresh, c.FGIoUThresh)
	}
	if !(c.MinSize >= 0) {
		return fmt.Errorf("detection: RPNConfig.MinSize = %v, want >= 0", c.MinSize)
	}
	return checkWeights("RPNConfig", c.BoxCoderWeights)
}

// RoIHeadsConfig configures the second stage: training targets of the box
// head and post-processing of its predictions. DefaultRoIHeadsConfig gives
// torchvision's FasterRCNN defaults.
type RoIHeadsConfig struct {
	// FGIoUThresh and BGIoUThresh: proposals with IoU >= FG are
	// foreground, below BG background (0.5, 0.5).
	FGIoUThresh, BGIoUThresh float32
	// BatchSizePerImage RoIs are sampled per image (512 in torchvision;
	// the paper uses 128), at most PositiveFraction foreground (0.25).
	BatchSizePerImage int
	PositiveFraction  float32
	// BoxCoderWeights weight the class-specific deltas: (10, 10, 5, 5).
	BoxCoderWeights [4]float32
	// ScoreThresh drops detections whose class probability is not above
	// it (0.05; torchvision compares with >).
	ScoreThresh float32
	// NMSThresh is the per-class NMS IoU threshold (0.5; the original code
	// used 0.3).
	NMSThresh float32
	// DetectionsPerImage bounds the detections per image (100).
	DetectionsPerImage int
	// MinSize drops detections narrower or lower than it after clipping
	// (1e-2, fixed in torchvision; 0 in Detectron2, which keeps them).
	MinSize float32
	// BackgroundLast is Detectron2's FastRCNNOutputLayers layout: the class
	// logits have the background in the LAST column (NC-1) and the deltas
	// are 4*(NC-1) columns, class j's (j = 0..NC-2) in 4j..4j+3, with no
	// background rows. Label j+1 is column j, so Detections count from 1
	// either way. Otherwise (torchvision) class 0 is the background and
	// the deltas have 4*NC columns.
	BackgroundLast bool `json:",omitempty"`
	// ClipToOriginal rescales as Detectron2's detector_postprocess: by
	// float32(origW/w) and float32(origH/h) computed in float64, then
	// clips the boxes to the original image and drops those with a side
	// <= 0. Otherwise (torchvision) the ratios are float32 divisions and
	// nothing is clipped or dropped.
	ClipToOriginal bool `json:",omitempty"`
}

// DefaultRoIHeadsConfig returns torchvision's defaults
// (torchvision/models/detection/faster_rcnn.py and roi_heads.py).
func DefaultRoIHeadsConfig() RoIHeadsConfig {
	return RoIHeadsConfig{
		FGIoUThresh:        0.5,
		BGIoUThresh:        0.5,
		BatchSizePerImage:  512,
		PositiveFraction:   0.25,
		BoxCoderWeights:    [4]float32{10, 10, 5, 5},
		ScoreThresh:        0.05,
		NMSThresh:          0.5,
		DetectionsPerImage: 100,
		MinSize:            1e-2,
	}
}

// BoxCoder returns the coder of the class-specific deltas.
func (c RoIHeadsConfig) BoxCoder() box.BoxCoder {
	w := c.BoxCoderWeights
	return box.NewBoxCoder(w[0], w[1], w[2], w[3])
}

// Matcher returns the proposal matcher (no low-quality matches).
func (c RoIHeadsConfig) Matcher() box.Matcher {
	return box.Matcher{High: c.FGIoUThresh, Low: c.BGIoUThresh}
}

// Sampler returns the RoI sampler.
func (c RoIHeadsConfig) Sampler() box.Sampler {
	return box.Sampler{BatchSizePerImage: c.BatchSizePerImage, PositiveFraction: c.PositiveFraction}
}

// Validate returns an error naming the first field out of range.
func (c RoIHeadsConfig) Validate() error {
	if c.BatchSizePerImage < 1 {
		return fmt.Errorf("detection: RoIHeadsConfig.BatchSizePerImage = %d, want >= 1", c.BatchSizePerImage)
	}
	if c.DetectionsPerImage < 1 {
		return fmt.Errorf("detection: RoIHeadsConfig.DetectionsPerImage = %d, want >= 1", c.DetectionsPerImage)
	}
	if err := checkFractions("RoIHeadsConfig", map[string]float32{
		"FGIoUThresh": c.FGIoUThresh, "BGIoUThresh": c.BGIoUThresh, "PositiveFraction": c.PositiveFraction,
		"ScoreThresh": c.ScoreThresh, "NMSThresh": c.NMSThresh,
	}); err != nil {
		return err
	}
	if c.BGIoUThresh > c.FGIoUThresh {
		return fmt.Errorf("detection: RoIHeadsConfig.BGIoUThresh = %v above FGIoUThresh = %v", c.BGIoUThresh, c.FGIoUThresh)
	}
	if !(c.MinSize >= 0) {
		return fmt.Errorf("detection: RoIHeadsConfig.MinSize = %v, want >= 0", c.MinSize)
	}
	return checkWeights("RoIHeadsConfig", c.BoxCoderWeights)
}

func checkFractions(cfg string, fields map[string]float32) error {
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if v := fields[name]; !(v >= 0 && v <= 1) {
			return fmt.Errorf("detection: %s.%s = %v, want in [0, 1]", cfg, name, v)
		}
	}
	return nil
}

func checkWeights(cfg string, w [4]float32) error {
	for i, v := range w {
		if !(v > 0) {
			return fmt.Errorf("detection: %s.BoxCoderWeights[%d] = %v, want > 0", cfg, i, v)
		}
	}
	return nil
}

// Normalization maps 8-bit pixels to network input: out[c] =
// (pixel[c]/Range - Mean[c]) / Std[c], channels in RGB order or BGR. It has
// the fields (and meaning) of imageio.Normalization, which converts to it.
type Normalization struct {
	BGR   bool
	Range float32
	Mean  [3]float32
	Std   [3]float32
}

// ImageNetNormalization is torchvision's: RGB on [0, 1], mean [0.485,
// 0.456, 0.406], std [0.229, 0.224, 0.225].
func ImageNetNormalization() Normalization {
	return Normalization{Range: 255, Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225}}
}

// CaffeNormalization is the original Faster R-CNN's: BGR, 0..255, mean
// [102.9801, 115.9465, 122.7717] subtracted.
func CaffeNormalization() Normalization {
	return Normalization{BGR: true, Range: 1, Mean: [3]float32{102.9801, 115.9465, 122.7717}, Std: [3]float32{1, 1, 1}}
}

// TransformConfig is the preprocessing the detector expects (torchvision's
// GeneralizedRCNNTransform): normalise, resize so that the shorter side is
// MinSize and the longer at most MaxSize (bilinear), pad with zeros to a
// multiple of SizeDivisible. Package imageio implements the first two
// steps; Predict pads.
type TransformConfig struct {
	MinSize, MaxSize int // 600, 1000 (the paper's)
	SizeDivisible    int // 32; 1 pads nothing (Detectron2's C4 models)
	Norm             Normalization
	// Preprocess names imageio's pipeline (imageio.Preprocess): "" or
	// "torchvision", or "detectron2" (EXIF orientation, Pillow's resize of
	// the 8-bit image to rounded sizes).
	Preprocess string `json:",omitempty"`
}

// DefaultTransformConfig returns 600/1000, padding to 32, ImageNet
// normalisation.
func DefaultTransformConfig() TransformConfig {
	return TransformConfig{MinSize: 600, MaxSize: 1000, SizeDivisible: 32, Norm: ImageNetNormalization()}
}

// Validate returns an error naming the field out of range.
func (c TransformConfig) Validate() error {
	if c.MinSize < 1 || c.MaxSize < 1 || c.SizeDivisible < 1 {
		return fmt.Errorf("detection: TransformConfig: MinSize %d, MaxSize %d, SizeDivisible %d: want all >= 1", c.MinSize, c.MaxSize, c.SizeDivisible)
	}
	if !(c.Norm.Range > 0) || !(c.Norm.Std[0] > 0 && c.Norm.Std[1] > 0 && c.Norm.Std[2] > 0) {
		return fmt.Errorf("detection: TransformConfig.Norm: Range %v, Std %v: want > 0", c.Norm.Range, c.Norm.Std)
	}
	return nil
}

// Config describes a Faster R-CNN detector completely; native checkpoints
// carry it (package checkpoint).
type Config struct {
	// Arch is the architecture: "r18-c4", "r34-c4", "r50-c4", "r101-c4"
	// (the paper's) or "r152-c4": ResNet-N, C4 trunk, res5 as the box head;
	// "tv-r50-fpn": torchvision's fasterrcnn_resnet50_fpn (ResNet-50 with
	// frozen BN of eps 0, FPN P2..P6, RPN head with one 3x3 convolution,
	// MultiScaleRoIAlign 7x7, TwoMLPHead 1024); "tv-r50-fpn-v2": its _v2
	// (BN eps 1e-5, FPN with batch norms, RPN head with two convolutions,
	// ConvFCHead); "r50-fpn", "r101-fpn", "x101-fpn" (ResNeXt-101 32x8d):
	// Detectron2's FPN detectors (Detectron2FPNConfig: FPN P2..P6 of
	// FPNChannels, FCHead of FCDim). x101-c4 and the DC5 archs are
	// Detectron2's too (Detectron2Config, Detectron2DC5Config). The FPN
	// archs need RPN.Anchors with PerLevel (5 levels) and RoIOp RoIAlign:
	// DefaultConfig gives the publisher's settings.
	Arch string
	// Classes are the names of classes 1..K (label j is Classes[j-1]); the
	// network has K+1 outputs, class 0 the background.
	Classes   []string
	Transform TransformConfig
	RPN       RPNConfig
	RoIHeads  RoIHeadsConfig
	RoIOp     RoIOpConfig
	// ResNet holds the backbone's settings beyond its depth (zero:
	// torchvision's ResNet).
	ResNet ResNetConfig `json:",omitempty"`
	// FCDim is the width of the FCHead box head's fc1 and fc2 of DC5 and
	// Detectron2's FPN detectors (1024; unused by C4 detectors and
	// torchvision's FPN detectors, whose heads are fixed at 1024).
	FCDim int `json:",omitempty"`
	// FPNChannels is the width of every FPN output P2..P6 (0: 256, the
	// model zoos' value; unused without an FPN).
	FPNChannels int `json:",omitempty"`
}

// ResNetConfig is the part of backbone.Config that a detector's weights
// fix besides the depth (see backbone.Config for each field; zero values
// are torchvision's ResNet). Detectron2's R50/R101 models set StrideIn1x1;
// X101-32x8d sets Groups 32 and WidthPerGroup 8.
type ResNetConfig struct {
	StrideIn1x1     bool `json:",omitempty"`
	Groups          int  `json:",omitempty"`
	WidthPerGroup   int  `json:",omitempty"`
	Res2OutChannels int  `json:",omitempty"`
	Res5Dilation    int  `json:",omitempty"`
}

// apply sets c's fields in b.
func (c ResNetConfig) apply(b *backbone.Config) {
	b.StrideIn1x1, b.Groups, b.WidthPerGroup, b.Res2OutChannels, b.Res5Dilation =
		c.StrideIn1x1, c.Groups, c.WidthPerGroup, c.Res2OutChannels, c.Res5Dilation
}

// DefaultConfig returns the paper's test-time detector for arch and classes:
// torchvision's defaults (DefaultRPNConfig, DefaultRoIHeadsConfig,
// DefaultTransformConfig, RoIAlign 14x14) with 300 proposals after NMS.
// For the FPN archs it returns torchvision's fasterrcnn_resnet50_fpn
// settings (FPNConfig).
//
// For Detectron2's FPN archs it returns Detectron2FPNConfig.
func DefaultConfig(arch string, classes []string) Config {
	if a, ok := archs[arch]; ok && a.fpn {
		if a.d2 {
			return Detectron2FPNConfig(arch, classes)
		}
		return FPNConfig(arch, classes)
	}
	rpn := DefaultRPNConfig()
	rpn.PostNMSTopNTest = 300
	return Config{
		Arch:      arch,
		Classes:   append([]string(nil), classes...),
		Transform: DefaultTransformConfig(),
		RPN:       rpn,
		RoIHeads:  DefaultRoIHeadsConfig(),
		RoIOp:     DefaultRoIOpConfig(),
	}
}

// FPN architecture names (Config.Arch).
const (
	ArchTVR50FPN   = "tv-r50-fpn"    // torchvision's fasterrcnn_resnet50_fpn
	ArchTVR50FPNV2 = "tv-r50-fpn-v2" // torchvision's fasterrcnn_resnet50_fpn_v2
	// Detectron2's faster_rcnn_{R_50,R_101,X_101_32x8d}_FPN (Detectron2FPNConfig).
	ArchD2R50FPN  = "r50-fpn"
	ArchD2R101FPN = "r101-fpn"
	ArchD2X101FPN = "x101-fpn"
)

// FPNConfig returns torchvision's fasterrcnn_resnet50_fpn (or _v2) test-time
// settings for arch (ArchTVR50FPN or ArchTVR50FPNV2) and classes: images
// resized to 800/1333, FPN anchors (FPNAnchorGenerator), 2000/1000
// proposals per level before NMS and 2000/1000 after it, RoIAlign 7x7 with
// sampling ratio 2, not aligned, on the level of torchvision's LevelMapper;
// DefaultRoIHeadsConfig.
func FPNConfig(arch string, classes []string) Config {
	rpn := DefaultRPNConfig()
	rpn.Anchors = FPNAnchorGenerator()
	tr := DefaultTransformConfig()
	tr.MinSize, tr.MaxSize = 800, 1333
	return Config{
		Arch:      arch,
		Classes:   append([]string(nil), classes...),
		Transform: tr,
		RPN:       rpn,
		RoIHeads:  DefaultRoIHeadsConfig(),
		RoIOp:     RoIOpConfig{Op: RoIOpAlign, Size: 7, SamplingRatio: 2, LevelEps: 1e-6},
	}
}

// archSpec is what an architecture name fixes.
type archSpec struct {
	depth int
	fpn   bool // FPN detector
	v2    bool // torchvision's _v2
	d2    bool // Detectron2's FPN (with fpn)
}

// archs maps the values of Config.Arch to their specs.
var archs = map[string]archSpec{
	"r18-c4": {depth: 18}, "r34-c4": {depth: 34}, "r50-c4": {depth: 50}, "r101-c4": {depth: 101}, "r152-c4": {depth: 152},
	ArchTVR50FPN: {depth: 50, fpn: true}, ArchTVR50FPNV2: {depth: 50, fpn: true, v2: true},
	"x101-c4": {depth: 101}, "r50-dc5": {depth: 50}, "r101-dc5": {depth: 101},
	ArchD2R50FPN: {depth: 50, fpn: true, d2: true}, ArchD2R101FPN: {depth: 101, fpn: true, d2: true},
	ArchD2X101FPN: {depth: 101, fpn: true, d2: true},
}

// ArchDC5 reports whether arch is a DC5 detector ("r50-dc5", "r101-dc5"):
// res5 dilated in the trunk (stride 16), the RPN on res5, a 7x7 RoI op and
// the two-layer FCHead as the box head. The others are C4 detectors.
func ArchDC5(arch string) bool { return strings.HasSuffix(arch, "-dc5") }

// ArchDepth returns the ResNet depth of an architecture name ("r101-c4" ->
// 101, "tv-r50-fpn" -> 50), or an error listing the valid names.
func ArchDepth(arch string) (int, error) {
	if a, ok := archs[arch]; ok {
		return a.depth, nil
	}
	return 0, fmt.Errorf("detection: unknown architecture %q (want r18-c4, r34-c4, r50-c4, r101-c4, r152-c4, x101-c4, r50-dc5, r101-dc5, %s, %s, %s, %s or %s)",
		arch, ArchD2R50FPN, ArchD2R101FPN, ArchD2X101FPN, ArchTVR50FPN, ArchTVR50FPNV2)
}

// IsFPN reports whether arch is an FPN detector: torchvision's
// (ArchTVR50FPN, ArchTVR50FPNV2) or Detectron2's (IsDetectron2FPN).
func IsFPN(arch string) bool { return archs[arch].fpn }

// IsDetectron2FPN reports whether arch is one of Detectron2's FPN detectors
// (ArchD2R50FPN, ArchD2R101FPN, ArchD2X101FPN).
func IsDetectron2FPN(arch string) bool { return archs[arch].d2 }

// DefaultClassNames returns "class1".."classK".
func DefaultClassNames(k int) []string {
	s := make([]string, k)
	for i := range s {
		s[i] = "class" + strconv.Itoa(i+1)
	}
	return s
}

// Validate returns an error naming the first invalid field.
func (c Config) Validate() error {
	if _, err := ArchDepth(c.Arch); err != nil {
		return err
	}
	if len(c.Classes) < 1 {
		return fmt.Errorf("detection: Config.Classes is empty, want at least one class")
	}
	for i, n := range c.Classes {
		if strings.TrimSpace(n) == "" {
			return fmt.Errorf("detection: Config.Classes[%d] is empty", i)
		}
	}
	if ArchDC5(c.Arch) && (c.FCDim < 1 || c.ResNet.Res5Dilation < 2) {
		return fmt.Errorf("detection: Config: %s needs FCDim >= 1 (have %d) and ResNet.Res5Dilation >= 2 (have %d)", c.Arch, c.FCDim, c.ResNet.Res5Dilation)
	}
	if IsDetectron2FPN(c.Arch) && c.FCDim < 1 {
		return fmt.Errorf("detection: Config: %s needs FCDim >= 1 (have %d)", c.Arch, c.FCDim)
	}
	if c.FPNChannels < 0 {
		return fmt.Errorf("detection: Config.FPNChannels = %d, want >= 0 (0: 256)", c.FPNChannels)
	}
	for _, v := range []interface{ Validate() error }{c.Transform, c.RPN, c.RoIHeads, c.RoIOp} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if IsFPN(c.Arch) {
		if !c.RPN.Anchors.PerLevel || len(c.RPN.Anchors.Sizes) != 5 {
			return fmt.Errorf("detection: Config.RPN.Anchors: %s needs one anchor size per level P2..P6 (PerLevel, 5 sizes), have %v (PerLevel %v)",
				c.Arch, c.RPN.Anchors.Sizes, c.RPN.Anchors.PerLevel)
		}
		if c.RoIOp.Op != RoIOpAlign {
			return fmt.Errorf("detection: Config.RoIOp.Op = %q: %s pools with %q", c.RoIOp.Op, c.Arch, RoIOpAlign)
		}
	} else if c.RPN.Anchors.PerLevel {
		return fmt.Errorf("detection: Config.RPN.Anchors.PerLevel: %s has one feature level", c.Arch)
	}
	return nil
}

// Options are the build options of New that a checkpoint does not carry.
type Options struct {
	// Rng initialises the weights (backbone as torchvision's ResNet, heads
	// as NewRPNHead and NewRoIHeads); nil leaves them zero for Load.
	Rng *rand.Rand
	// Train builds a backbone whose convolutions are learnable (frozen BN as
	// a separate scale and shift, backbone.Config.Inference off) with the
	// stem and res2 frozen (FreezeAt 2), for training with G.Grad.
	// Otherwise the batch norms are folded into the convolutions: the
	// fastest forward pass, with no backbone learnables.
	Train bool
	// Precision (nn.Precision; zero: fp32). With bf16 (asked
	// for, or auto on a CPU with AMX) the convolutions of the backbone, the
	// neck, the RPN head's 3x3 and the box head (the C4 res5 head, DC5's
	// fc1/fc2, FPN's TwoMLPHead or ConvFCHead) run in bfloat16 with their
	// weights converted once, on the first Predict after Load: RoI features
	// and activations enter them rounded to bf16, accumulation and
	// everything else (the RPN's 1x1 predictions, the box predictor,
	// softmax, box decoding, NMS, scores) is float32. bf16 asked for on a
	// CPU without it is an error. With Train it is decided by
	// nn.Precision.ResolveTraining (bf16 needs AVX512_BF16 or AMX) and the
	// same ops run in bf16 with their float32 weights rounded on every run
	// and their gradients in bf16 (see TrainBuild.Precision).
	Precision nn.Precision
}
