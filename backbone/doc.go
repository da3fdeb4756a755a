// Package backbone builds the ResNets of He et al. 2015 ("Deep Residual Learning for
// Image Recognition") and the trunks of the published detectors as gorgonia graphs
// from the ops of package nn.
//
// Networks: ResNet-18/34 (BasicBlock) and ResNet-50/101/152 (Bottleneck) from one depth
// table, their plain counterparts (no shortcuts), and the CIFAR-10 networks of section
// 4.2 (6n+2 layers, 16/32/64 filters, option A shortcuts). Options are fields of Config:
//
//   - StrideIn1x1: the stride of res3..res5's first block on its 1x1 conv1 (Detectron2's
//     MSRA models) instead of the 3x3 (torchvision). Such a stage reads every other row
//     and column of its input (Stage.InputStride), and ForwardMeanFrom takes just those
//     (StageInput.Strided): the C4 box head pools only them.
//   - Groups, WidthPerGroup: ResNeXt (ResNeXt-101 32x8d: 32 groups of 8 channels in
//     res2's 3x3, 256 channels), and wide or narrow bottlenecks; Res2OutChannels narrows
//     the stage outputs (Detectron2's WIDTH_PER_GROUP and RES2_OUT_CHANNELS).
//   - Res5Dilation 2 (DC5): res5 dilated instead of strided, output stride 16, in
//     Detectron2's convention (every res5 3x3 dilated) or, with Res5FirstUndilated,
//     torchvision's replace_stride_with_dilation (the first block's 3x3 undilated).
//   - BNEps, BNEpsZero: the batch-norm epsilon (1e-5; exactly 0 for torchvision's COCO_V1
//     FPN detector).
//
// Tensors are float32 NCHW: x [N, C, H, W]. Convolution weights are [OutC, InC/Groups,
// KH, KW] (torch layout). Parameter names are torchvision's state_dict names (see
// package resdet/weights), so torchvision checkpoints load directly with (*ResNet).Load.
//
// Stages are named as torchvision does (layer1 .. layer4) and correspond to the paper's
// conv2_x .. conv5_x (Detectron's res2 .. res5). For detection the network splits in two
// (the paper's appendix): C4 runs conv1 .. conv4_x and returns the stride-16 feature map;
// Res5 is the conv5_x stage, applied to pooled RoI features. An FPN takes several maps
// from one pass instead: Outputs returns the named outputs ("stem", "res2" .. "res5", at
// strides 4, 4, 8, 16, 32). Each output reports its channels and stride as a ShapeSpec.
//
// With frozen BN, activations between convolutions stay in oneDNN's blocked layout (nChw16c on AVX-512, nChw8c on AVX2: nn.CPU().Block) when
// every channel count is a multiple of 16 (NCHW otherwise); inputs and outputs of the
// exported methods are always NCHW.
package backbone
