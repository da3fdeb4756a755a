// Package checkpoint reads and writes detector weights in the formats they
// come in and converts them, at this edge, to the parameter names of
// package detection (FasterRCNN.State and Load), so that the model never
// learns where its weights came from:
//
//   - native checkpoints (Save, Read, Load): safetensors with the
//     detection.Config as metadata, written by train-det;
//   - torchvision's FasterRCNN state_dict (.pth) of the C4 construction
//     (FromTorchvision, LoadTorchvision);
//   - torchvision's fasterrcnn_resnet50_fpn and _v2 state_dicts, with the
//     key names of torchvision before and after 0.13 (FromTorchvisionFPN,
//     LoadTorchvision with an FPN arch);
//   - Detectron2 model-zoo files (.pkl, read by weights.ReadDetectron2
//     without executing anything): InferDetectron2 reads the architecture
//     from the tensor names and shapes (C4 / DC5 / FPN, depth from the res4
//     block count, widths and groups from res2.0's convolutions, classes
//     from cls_score, FC dim from fc1, FPN width from fpn_lateral2),
//     FromDetectron2 renames the tensors (stem.conv1 -> conv1 / bn1,
//     resS.B -> layer(S-1).B, convN.norm -> bnN, shortcut -> downsample.0
//     / .1, roi_heads.res5 -> layer4, backbone.bottom_up -> backbone,
//     fpn_lateral{L} / fpn_output{L} -> fpn.inner_blocks / layer_blocks
//     .{L-2}.0, rpn_head.{conv, objectness_logits, anchor_deltas} ->
//     rpn.head.{conv, cls_logits, bbox_pred}), and Detectron2Model /
//     LoadDetectron2 build the detector with detection.Detectron2Config,
//     Detectron2DC5Config or Detectron2FPNConfig;
//   - MSRA ImageNet backbones in the Caffe2 layout (R-50.pkl, R-101.pkl):
//     FromCaffe2Backbone maps them onto a Detectron2 C4 detector's ResNet
//     as Detectron2's loader does;
//   - training starting points (ReadInit): any of the above, or a
//     torchvision ImageNet ResNet classifier, classified by publisher and
//     kind (backbone or detector) with the depth and widths its tensors
//     fix; detectors' predictors are read background first, and
//     FitPredictor carries one over to another class list (kept, rows taken
//     by class name with datasets.SameClass's VOC/COCO spellings, or
//     re-initialised).
//
// It imports datasets (class names), detection and weights; nothing in
// detection imports it.
package checkpoint
