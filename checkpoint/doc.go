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
//     LoadTorchvision with an FPN arch).
//
// Importers of other formats (Detectron2 .pkl) belong here. It imports detection and weights; nothing in
// detection imports it.
package checkpoint
