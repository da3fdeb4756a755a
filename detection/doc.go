// Package detection holds the Faster R-CNN machinery around the backbone:
// anchors, proposal filtering, box-head post-processing (plain Go over
// []box.Box), the training-time configuration (RPNConfig, RoIHeadsConfig),
// and the RoI feature extraction ops RoIAlign and RoIPool (gorgonia ops with
// gradients).
//
// It follows torchvision's Faster R-CNN (torchvision/models/detection:
// anchor_utils.py, rpn.py, roi_heads.py) and its CPU kernels
// (torchvision/ops roi_align, roi_pool) to the last float32 rounding where
// that is practical; each function says where it may differ.
//
// Boxes follow the convention of package box: absolute pixel XYXY of the
// (resized) input image, continuous, width = X2-X1 with no +1.
//
// # Shape shorthand in this package
//
//	N:      number of images in the batch
//	C:      channels of the feature map (1024 for a ResNet C4 trunk)
//	Hi, Wi: height and width of the feature map
//	A:      anchors per feature-map cell (len(Sizes) * len(AspectRatios))
//	L:      anchors of an image, Hi*Wi*A, ordered cell-major (row-major
//	        over y then x), anchor-minor
//	K:      RoIs (proposals) of a batch
//	NC:     classes including the background, class 0
//	OH, OW: RoI output size (14x14 for the C4 head)
//
// Tensors are float32, NCHW, dense, row-major. A RoI tensor is [K, 5]:
// (batch index, x1, y1, x2, y2) in input-image pixels.
package detection
