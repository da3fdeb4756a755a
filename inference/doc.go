// Package inference runs a trained detector on image files, the one code
// path `detect` and `detect batch` share: the model the detect flags name
// (ModelOptions, Load: a native checkpoint, a torchvision .pth, a
// Detectron2 .pkl or a model-zoo name), one image through it (DetectFile:
// size check, decoding and the model's own preprocessing, then
// detection.FasterRCNN.Predict) into the `detect --json` object (Result),
// and the COCO results file (COCOResults).
//
// Boxes in a Result are XYXY in continuous pixels of the original image
// (box/doc.go). Nothing here draws or prints; the CLIs do.
package inference
