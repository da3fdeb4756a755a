package detection

// Detectron2's Faster R-CNN (detectron2/config/defaults.py and the model
// zoo's Base-RCNN-C4.yaml, inference) as settings of this package's parts.

// Detectron2Mean is Detectron2's PIXEL_MEAN, BGR on 0..255 (PIXEL_STD 1).
var Detectron2Mean = [3]float32{103.530, 116.280, 123.675}

// Detectron2Config returns the test-time configuration of Detectron2's C4
// Faster R-CNN (faster_rcnn_R_{50,101}_C4_*) for arch ("r50-c4",
// "r101-c4", ...) and the K class names:
//
//   - input: imageio's "detectron2" preprocessing (EXIF orientation,
//     shorter side 800 and longer at most 1333 with int(x+0.5) sizes,
//     Pillow's bilinear resize of the 8-bit image), BGR 0..255 minus
//     Detectron2Mean, no padding (SizeDivisible 1);
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
			Norm: Normalization{BGR: true, Range: 1, Mean: Detectron2Mean, Std: [3]float32{1, 1, 1}}},
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
