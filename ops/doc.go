// Package ops holds the gorgonia graph ops of the detector that package nn
// does not: the RoI feature extraction ops RoIAlign (also over a feature
// pyramid, each RoI on its own level: MultiLevelRoIAlign) and RoIPool (with
// their gradients), and the fused loss ops BCEWithLogitsLoss, SmoothL1Loss and
// CrossEntropyLoss over a selection of their input's elements, which
// Reselect changes between runs of one graph. It is to the detector what
// torchvision.ops is to torchvision's models; each op says which torch or
// torchvision function it reproduces and how closely.
//
// Ops run on the host (nn.HostOp) and are parallel over nn.Threads()
// goroutines where that pays. Inputs are float32, NCHW, dense, row-major.
// RoIAlign samples a channels-last copy of its map with the AVX2 kernels
// of internal/vec; RoIAlignBlocked and RoIAlignBF16 are the same op
// writing its output in the layout of a box head on oneDNN's blocked
// layout: float32 nChw<B>c (nn.ToBlocked's) and the bf16 chain's
// (nn.ToBlockedBF16's). RoIAlignOpts.Step computes every Step-th bin
// only, all that a strided 1x1 convolution reads of the output (Detectron2's
// C4 res5 head).
// A RoI tensor is [K, 5]: (batch index, x1, y1, x2, y2) in input-image
// pixels, which SpatialScale maps to feature cells.
//
// It imports nn (and gorgonia); the detection package imports it.
package ops
