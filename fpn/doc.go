// Package fpn builds the feature pyramid network of Lin et al. 2017 ("Feature
// Pyramid Networks for Object Detection") as a gorgonia graph from the ops of
// package nn: the neck between a ResNet trunk (package backbone) and the
// detection heads, as torchvision's FeaturePyramidNetwork with
// LastLevelMaxPool and Detectron2's FPN compute it.
//
// # Graph
//
// Inputs are the trunk's maps C2..C5 (res2..res5, strides 4, 8, 16, 32),
// NCHW [N, Ci, Hi, Wi]. Each level i has an inner (lateral) 1x1 convolution
// Ci -> OutChannels and a layer (output) 3x3 convolution with padding 1,
// neither followed by an activation. The top-down pathway, coarsest first:
//
//	last = inner[3](C5);                          P5 = layer[3](last)
//	for i = 2, 1, 0:
//	    last = inner[i](C_{i+2}) + up(last, Hi, Wi); P_{i+2} = layer[i](last)
//	P6 = max_pool2d(P5, 1, 2, 0)                  (P5[:, :, ::2, ::2])
//
// up is torch's nearest resize to the lateral map's size (nn.UpsampleNearest;
// an exact 2x when the image is padded to a multiple of 32, where it equals
// Detectron2's scale_factor=2.0). Outputs P2..P6 are [N, OutChannels, Hi, Wi]
// at strides 4, 8, 16, 32, 64; P6 is ((H5-1)/2+1) x ((W5-1)/2+1). The
// lateral add is fused into the inner convolution (nn.Conv2dFused's residual).
//
// # Variants
//
//   - torchvision v1 (fasterrcnn_resnet50_fpn) and Detectron2: Norm NoNorm,
//     convolutions with bias.
//   - torchvision v2 (fasterrcnn_resnet50_fpn_v2): Norm FrozenBN, convolutions
//     without bias, each followed by a BatchNorm2d in eval mode (eps 1e-5)
//     applied as a frozen per-channel affine folded into the convolution
//     (nn.Conv2dBN); its four tensors are loaded and saved but never learnt.
//
// # Parameter names
//
// Parameters carry torchvision's state_dict names inside a FasterRCNN (level
// i = 0..3 for C2..C5):
//
//	backbone.fpn.inner_blocks.{i}.0.weight   [OutC, Ci, 1, 1]
//	backbone.fpn.inner_blocks.{i}.0.bias     [OutC]              (NoNorm)
//	backbone.fpn.layer_blocks.{i}.0.weight   [OutC, OutC, 3, 3]
//	backbone.fpn.layer_blocks.{i}.0.bias     [OutC]              (NoNorm)
//	backbone.fpn.{inner,layer}_blocks.{i}.1.{weight,bias,running_mean,running_var}
//	                                          [OutC]              (FrozenBN)
//
// Files written by torchvision before 0.13 (the published v1 COCO weights)
// name the NoNorm variant's tensors backbone.fpn.inner_blocks.{i}.weight,
// without ".0": UpgradeLegacyNames renames them, for the checkpoint layer to
// call before Load. Detectron2's names (fpn_lateral{2..5}, fpn_output{2..5})
// are the importer's to map; this package knows only its own.
//
// Output names: torchvision calls P2..P6 "0", "1", "2", "3", "pool"
// (OutputNames); Detectron2 calls them p2..p6.
package fpn
