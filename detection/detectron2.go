package detection

import (
	"strings"

	"resdet/fpn"
)

// Detectron2's Faster R-CNN (detectron2/config/defaults.py and the model
// zoo's Base-RCNN-C4.yaml, inference) as settings of this package's parts.

// Detectron2Mean is Detectron2's PIXEL_MEAN, BGR on 0..255 (PIXEL_STD 1).
var Detectron2Mean = [3]float32{103.530, 116.280, 123.675}

// Detectron2ResNeXtStd is the PIXEL_STD of Detectron2's ResNeXt configs
// (faster_rcnn_X_101_32x8d_FPN_3x.yaml: BGR, the ImageNet std times 255),
// whose FAIR backbones were trained on standardised input; the MSRA ResNets
// take PIXEL_STD 1.
var Detectron2ResNeXtStd = [3]float32{57.375, 57.120, 58.395}

// detectron2Norm is the input normalisation of a Detectron2 arch: BGR
// 0..255 minus Detectron2Mean, divided by Detectron2ResNeXtStd for the
// ResNeXt archs ("x101-..."), by 1 otherwise.
func detectron2Norm(arch string) Normalization {
	std := [3]float32{1, 1, 1}
	if strings.HasPrefix(arch, "x") {
		std = Detectron2ResNeXtStd
	}
	return Normalization{BGR: true, Range: 1, Mean: Detectron2Mean, Std: std}
}

// Detectron2Config returns the test-time configuration of Detectron2's C4
// Faster R-CNN (faster_rcnn_R_{50,101}_C4_*) for arch ("r50-c4",
// "r101-c4", ...) and the K class names:
//
//   - input: imageio's "detectron2" preprocessing (EXIF orientation,
//     shorter side 800 and longer at most 1333 with int(x+0.5) sizes,
//     Pillow's bilinear resize of the 8-bit image), BGR 0..255 minus
//     Detectron2Mean (and divided by Detectron2ResNeXtStd for "x101-c4"),
//     no padding (SizeDivisible 1);
//   - backbone: MSRA ResNet, stride in the 1x1 (ResNet.StrideIn1x1),
//     FrozenBN eps 1e-5;
//   - anchors: sizes 32, 64, 128, 256, 512 x ratios 0.5, 1, 2 (A = 15),
//     unrounded, size-major, offset 0, stride 16 (AnchorGenerator.Detectron2);
//   - RPN: top 6000 by logit, NMS 0.7 on logits, 1000 kept, no score
//     threshold, sides > 0 after clipping (RPNConfig.LogitScores);
//   - RoI heads: ROIAlignV2 14x14 (aligned, adaptive sampling), res5 and
//     the mean, predictor with the background last and 4*K class-specific
//     deltas (RoIHeadsConfig.BackgroundLast); softmax, score > 0.05, no
//     small-box removal, per-class NMS 0.5, 100 kept; rescaled to the
//     original size with float64 ratios, clipped to it, empty boxes
//     dropped (RoIHeadsConfig.ClipToOriginal).
func Detectron2Config(arch string, classes []string) Config {
	rpn := DefaultRPNConfig()
	rpn.Anchors = AnchorGenerator{Sizes: []float32{32, 64, 128, 256, 512}, AspectRatios: []float32{0.5, 1, 2}, Detectron2: true}
	rpn.PreNMSTopNTest, rpn.PostNMSTopNTest = 6000, 1000
	rpn.PreNMSTopNTrain, rpn.PostNMSTopNTrain = 12000, 2000
	rpn.LogitScores = true
	rpn.MinSize = 0
	heads := DefaultRoIHeadsConfig()
	heads.MinSize = 0
	heads.BackgroundLast = true
	heads.ClipToOriginal = true
	return Config{
		Arch:    arch,
		Classes: append([]string(nil), classes...),
		Transform: TransformConfig{MinSize: 800, MaxSize: 1333, SizeDivisible: 1, Preprocess: "detectron2",
			Norm: detectron2Norm(arch)},
		RPN:      rpn,
		RoIHeads: heads,
		RoIOp:    RoIOpConfig{Op: RoIOpAlign, Size: 14, SamplingRatio: 0, Aligned: true},
		ResNet:   ResNetConfig{StrideIn1x1: true},
	}
}

// Detectron2DC5Config returns the test-time configuration of Detectron2's
// DC5 Faster R-CNN (faster_rcnn_R_{50,101}_DC5_*, Base-RCNN-DilatedC5.yaml)
// for arch ("r50-dc5", "r101-dc5") and the K class names: as
// Detectron2Config, but res5 is in the trunk with dilation 2 (stride 16;
// ResNet.Res5Dilation), the RPN runs on res5 (2048 channels, the same 15
// anchors at stride 16), and the box head is ROIAlignV2 7x7 (aligned,
// adaptive sampling) on res5, then FCHead fc1/fc2 of 1024 and the
// predictor (81 logits, 320 deltas for COCO).
func Detectron2DC5Config(arch string, classes []string) Config {
	c := Detectron2Config(arch, classes)
	c.ResNet.Res5Dilation = 2
	c.RoIOp.Size = 7
	c.FCDim = 1024
	return c
}

// Detectron2FPNConfig returns the test-time configuration of Detectron2's
// FPN Faster R-CNN (faster_rcnn_{R_50,R_101,X_101_32x8d}_FPN_*,
// Base-RCNN-FPN.yaml over detectron2/config/defaults.py) for arch
// (ArchD2R50FPN, ArchD2R101FPN, ArchD2X101FPN) and the K class names:
//
//   - input: as Detectron2Config (EXIF orientation, 800/1333 with
//     int(x+0.5) sizes, Pillow's resize, BGR 0..255 minus Detectron2Mean;
//     X101-32x8d also divides by Detectron2ResNeXtStd, its PIXEL_STD), then
//     zeros at the bottom and right up to multiples of 32 (SizeDivisible:
//     the FPN backbone's size_divisibility, ImageList.from_tensors pads
//     after normalisation);
//   - backbone: ResNet res2..res5 (MSRA R50/R101 with the stride in the
//     1x1, FAIR X101-32x8d with it in the 3x3: ResNet, set from the
//     weights), FrozenBN eps 1e-5;
//   - FPN (build_resnet_fpn_backbone): lateral 1x1 and output 3x3
//     convolutions with bias, no norm, FPNChannels (256) wide, nearest 2x
//     top-down sums, P6 = max_pool(P5, kernel 1, stride 2)
//     (LastLevelMaxPool): P2..P6 at strides 4, 8, 16, 32, 64;
//   - anchors: one size per level, 32, 64, 128, 256, 512 on P2..P6, x
//     ratios 0.5, 1, 2 (A = 3), unrounded, offset 0, at the levels' fixed
//     strides (AnchorGenerator PerLevel and Detectron2);
//   - RPN (StandardRPNHead, find_top_rpn_proposals): one shared 3x3
//     convolution + ReLU, then the 1x1 logits (3) and deltas (12) on every
//     level; per level the top 1000 anchors by logit (2000 in training),
//     decoded, non-finite ones dropped, clipped, kept if both sides > 0
//     (MIN_SIZE 0), NMS 0.7 on logits within each level, then the first
//     1000 of all levels together by logit (1000 in training too)
//     (RPNConfig.LogitScores);
//   - RoI heads (StandardROIHeads): ROIAlignV2 7x7 (aligned, sampling ratio
//     0: adaptive) on P2..P5, the level floor(4 + log2(sqrt(area)/224 +
//     1e-8)) clamped to 2..5 (LevelEps inside the logarithm);
//     FastRCNNConvFCHead with fc1 and fc2 of FCDim (1024) and ReLU; the
//     predictor with the background last and 4*K class-specific deltas;
//     post-processing as Detectron2Config (score > 0.05, no small-box
//     removal, per-class NMS 0.5, 100 kept, float64 rescale, clipped to the
//     original image, empty boxes dropped).
func Detectron2FPNConfig(arch string, classes []string) Config {
	c := Detectron2Config(arch, classes)
	c.Transform.SizeDivisible = 32
	c.RPN.Anchors = AnchorGenerator{Sizes: []float32{32, 64, 128, 256, 512}, AspectRatios: []float32{0.5, 1, 2},
		PerLevel: true, Detectron2: true}
	c.RPN.PreNMSTopNTest, c.RPN.PostNMSTopNTest = 1000, 1000
	c.RPN.PreNMSTopNTrain, c.RPN.PostNMSTopNTrain = 2000, 1000
	c.RoIOp = RoIOpConfig{Op: RoIOpAlign, Size: 7, SamplingRatio: 0, Aligned: true, LevelEps: 1e-8, LevelEpsInLog: true}
	c.FCDim = 1024
	c.FPNChannels = fpn.DefaultOutChannels
	return c
}
