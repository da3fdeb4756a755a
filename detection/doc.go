// Package detection is the Faster R-CNN detector (FasterRCNN) around a
// ResNet backbone: its parts, their assembly, its losses and its training
// step.
//
// The parts, each computing its outputs and, in a training graph, its
// losses (torchvision's rpn.py and roi_heads.py; Detectron2's
// proposal_generator and roi_heads returning results and losses):
//
//   - the backbone (package backbone) hands the parts named feature maps
//     ([]Feature, each with its stride and channels, backbone.ShapeSpec);
//     an optional Neck (nil for C4; FPNNeck over package fpn for the
//     FPN detectors, P2..P6 named "0" .. "3", "pool")
//     transforms them;
//   - RegionProposalNetwork: RPNHead (graph; one or, for v2, two 3x3
//     convolutions), anchors (AnchorGenerator; PerLevel for FPN, one size
//     per level), proposal filtering (RPNConfig.FilterProposals on one
//     level, FilterProposalsLevels per level on several) and anchor targets
//     (RPNConfig.SampleRPNBatch) in plain Go, and RPNLoss (over the levels'
//     concatenated anchors);
//   - RoIHeads: a RoIPooler (SingleLevelPooler: RoIAlign or RoIPool on one
//     map; MultiScaleRoIAlign with a LevelMapper on P2..P5), a BoxHead
//     (Res5Head for C4, TwoMLPHead for FPN v1, ConvFCHead for v2, FCHead
//     for Detectron2's DC5 and FPN),
//     FastRCNNPredictor, proposal sampling
//     (RoIHeadsConfig.SelectTrainingSamples) and post-processing
//     (RoIHeadsConfig.PostprocessDetections) in plain Go, and FastRCNNLoss.
//
// FasterRCNN wires them once (its forward method) for both Predict and the
// Trainer's step: training adds the targets and the loss nodes, not a
// second assembly. The proposals and the sampled RoIs cross from the graph
// to plain Go and back inside host ops; no gradient flows through them
// (approximate joint training). Predict runs the RoI heads in a second
// graph sized to the image's proposals, so that the box head runs on one
// row per proposal. Trainer runs steps and exposes the gradients to an
// optimiser; Losses are a step's four loss values.
//
// Geometry (anchors, matching, sampling, targets, decode/clip/NMS,
// post-processing) is plain Go over []box.Box in anchors.go, proposals.go,
// targets.go and postprocess.go; convert.go holds the copies between
// tensors and boxes. Graph code builds nodes only: the parts, the losses
// (loss.go) and the assembly. The RoI feature ops and the fused loss ops are
// package ops; weight files and their names (native checkpoints,
// torchvision's state_dict) are package checkpoint, above this one: the
// detector only exposes State and Load under its own parameter names.
//
// It follows torchvision's Faster R-CNN (torchvision/models/detection:
// anchor_utils.py, rpn.py, roi_heads.py) to the last float32 rounding where
// that is practical; each function says where it may differ.
//
// Detectron2's C4, DC5 and FPN detectors are the same parts with other
// settings (Detectron2Config, Detectron2DC5Config, Detectron2FPNConfig;
// detectron2.go lists them): AnchorGenerator.Detectron2 (unrounded,
// size-major, fixed strides), RPNConfig.LogitScores, RoIHeadsConfig.
// BackgroundLast and ClipToOriginal, RoIOpConfig.Aligned (and the level
// rule LevelEpsInLog), Config.ResNet (stride in the 1x1, widths, groups,
// res5 dilation), TransformConfig.Preprocess and SizeDivisible (1: no
// padding for C4 and DC5; 32 for FPN); DC5 adds the FCHead box head on the
// dilated res5 (ArchDC5), FPN the FPN neck of Config.FPNChannels and FCHead
// on MultiScaleRoIAlign (IsDetectron2FPN).
//
// Boxes follow the convention of package box: absolute pixel XYXY of the
// (resized) input image, continuous, width = X2-X1 with no +1.
//
// It imports box, backbone, nn, ops and weights (and gorgonia); never
// checkpoint, datasets, train or the commands.
//
// # Shape shorthand in this package
//
//	N:      number of images in the batch
//	C:      channels of a feature map (1024 for a ResNet C4 trunk)
//	Hi, Wi: height and width of the feature map
//	A:      anchors per feature-map cell (len(Sizes) * len(AspectRatios);
//	        len(AspectRatios) per level with PerLevel)
//	L:      anchors of an image, Hi*Wi*A, ordered cell-major (row-major
//	        over y then x), anchor-minor; on several levels, the levels'
//	        anchors concatenated, finest first
//	P:      proposals per image in a graph (RPNConfig.TopN's post-NMS count)
//	K:      RoIs (proposals or sampled RoIs) of a batch
//	NC:     classes including the background, class 0
//	OH, OW: RoI output size (14x14 for the C4 head)
//
// Tensors are float32, NCHW, dense, row-major. A RoI tensor is [K, 5]:
// (batch index, x1, y1, x2, y2) in input-image pixels.
package detection
