package detection

import (
	"fmt"
	"math/rand"

	G "gorgonia.org/gorgonia"

	"resdet/backbone"
	"resdet/nn"
)

// RoI feature ops of the box head (RoIOpConfig.Op).
const (
	RoIOpAlign = "align" // RoIAlign (torchvision's MultiScaleRoIAlign, Detectron2)
	RoIOpPool  = "pool"  // RoIPool (the paper's, Fast R-CNN's)
)

// RoIOpConfig selects and configures the RoI feature extraction of the box
// head. DefaultRoIOpConfig gives torchvision's MultiScaleRoIAlign(["0"], 14,
// sampling_ratio=0) on a stride-16 map.
type RoIOpConfig struct {
	Op string // RoIOpAlign or RoIOpPool
	// Size is the output side OH = OW (14 for the C4 head, which res5
	// halves to 7).
	Size int
	// SamplingRatio (align only): sampling points per bin side; 0 means
	// adaptive, ceil(roi side / Size).
	SamplingRatio int
	// Aligned (align only): shift box corners by -0.5 pixel (Detectron2's
	// ROIAlignV2); false in torchvision's Faster R-CNN.
	Aligned bool
}

// DefaultRoIOpConfig returns RoIAlign, 14x14, adaptive sampling, not aligned.
func DefaultRoIOpConfig() RoIOpConfig { return RoIOpConfig{Op: RoIOpAlign, Size: 14} }

// Validate returns an error naming the field out of range.
func (c RoIOpConfig) Validate() error {
	if c.Op != RoIOpAlign && c.Op != RoIOpPool {
		return fmt.Errorf("detection: RoIOpConfig.Op = %q, want %q or %q", c.Op, RoIOpAlign, RoIOpPool)
	}
	if c.Size < 1 || c.SamplingRatio < 0 {
		return fmt.Errorf("detection: RoIOpConfig.Size = %d, SamplingRatio = %d: want Size >= 1, SamplingRatio >= 0", c.Size, c.SamplingRatio)
	}
	return nil
}

// RoIHeads is the second stage of the C4 detector (the paper's appendix
// A): RoI features from the C4 map, conv5_x (the backbone's res5 stage, stride
// 2 in its first block), the mean over H and W, and two sibling linear layers:
// class logits (NC = K+1, class 0 the background) and class-specific box
// deltas (4*NC; class j's in columns 4j..4j+3, order dx, dy, dw, dh, weighted
// by Config.BoxCoderWeights).
//
// Parameters besides res5 (state-dict names, torch layouts):
// roi_heads.box_predictor.cls_score.weight [NC, C5], .bias [NC],
// roi_heads.box_predictor.bbox_pred.weight [4*NC, C5], .bias [4*NC].
type RoIHeads struct {
	Config RoIHeadsConfig
	RoIOp  RoIOpConfig
	// SpatialScale maps input pixels to C4 cells (1/16).
	SpatialScale float32
	// Res5 is the backbone's conv5_x stage (shared parameters).
	Res5 *backbone.Stage
	// NumClasses is NC, counting the background.
	NumClasses int
	cls, clsB  *param
	bbox, bbxB *param
}

// NewRoIHeads creates the predictor's parameters on g (the graph of res5)
// for numClasses = K+1 classes. With a non-nil rng the weights are drawn as
// Detectron's (normal, std 0.01 for the classifier, 0.001 for the deltas;
// biases 0); with nil they are zero. It panics if numClasses < 2 or res5 is
// nil.
func NewRoIHeads(g *G.ExprGraph, cfg RoIHeadsConfig, op RoIOpConfig, res5 *backbone.Stage, c4Stride, numClasses int, rng *rand.Rand) *RoIHeads {
	if numClasses < 2 || res5 == nil || c4Stride < 1 {
		panic(fmt.Sprintf("detection.NewRoIHeads: %d classes, res5 %v, stride %d", numClasses, res5 != nil, c4Stride))
	}
	c5 := res5.Out.Channels
	h := &RoIHeads{
		Config: cfg, RoIOp: op, SpatialScale: 1 / float32(c4Stride), Res5: res5, NumClasses: numClasses,
		cls:  newParam(g, "roi_heads.box_predictor.cls_score.weight", numClasses, c5),
		clsB: newParam(g, "roi_heads.box_predictor.cls_score.bias", numClasses),
		bbox: newParam(g, "roi_heads.box_predictor.bbox_pred.weight", 4*numClasses, c5),
		bbxB: newParam(g, "roi_heads.box_predictor.bbox_pred.bias", 4*numClasses),
	}
	if rng != nil {
		h.cls.normal(rng, 0.01)
		h.bbox.normal(rng, 0.001)
	}
	return h
}

// Pool builds the RoI feature op: feat [N, C, Hi, Wi] and rois [R, 5] (batch
// index, x1, y1, x2, y2 in input pixels, a constant) -> [R, C, Size, Size].
func (h *RoIHeads) Pool(feat, rois *G.Node) (*G.Node, error) {
	if h.RoIOp.Op == RoIOpPool {
		return RoIPool(feat, rois, RoIPoolOpts{OutH: h.RoIOp.Size, OutW: h.RoIOp.Size, SpatialScale: h.SpatialScale})
	}
	return RoIAlign(feat, rois, RoIAlignOpts{OutH: h.RoIOp.Size, OutW: h.RoIOp.Size, SpatialScale: h.SpatialScale,
		SamplingRatio: h.RoIOp.SamplingRatio, Aligned: h.RoIOp.Aligned})
}

// BoxHead applies res5 and the mean over H and W to pooled features:
// [R, C4, Size, Size] -> [R, C5].
func (h *RoIHeads) BoxHead(pooled *G.Node) (*G.Node, error) {
	y, err := h.Res5.Forward(pooled)
	if err != nil {
		return nil, fmt.Errorf("detection: box head res5: %w", err)
	}
	if y, err = nn.GlobalAvgPool(y); err != nil {
		return nil, fmt.Errorf("detection: box head mean: %w", err)
	}
	return y, nil
}

// Predictor applies the two sibling layers to x [R, C5]: class logits
// [R, NC] and box deltas [R, 4*NC].
func (h *RoIHeads) Predictor(x *G.Node) (classLogits, boxRegression *G.Node, err error) {
	if classLogits, err = nn.Linear(x, h.cls.node, h.clsB.node); err != nil {
		return nil, nil, fmt.Errorf("detection: box predictor cls_score: %w", err)
	}
	if boxRegression, err = nn.Linear(x, h.bbox.node, h.bbxB.node); err != nil {
		return nil, nil, fmt.Errorf("detection: box predictor bbox_pred: %w", err)
	}
	return classLogits, boxRegression, nil
}

// Forward builds the whole second stage: feat [N, C4, Hi, Wi], rois [R, 5]
// -> class logits [R, NC] and box deltas [R, 4*NC] (Pool, BoxHead,
// Predictor).
func (h *RoIHeads) Forward(feat, rois *G.Node) (classLogits, boxRegression *G.Node, err error) {
	pooled, err := h.Pool(feat, rois)
	if err != nil {
		return nil, nil, fmt.Errorf("detection: RoI %s: %w", h.RoIOp.Op, err)
	}
	x, err := h.BoxHead(pooled)
	if err != nil {
		return nil, nil, err
	}
	return h.Predictor(x)
}

// Learnables returns the predictor's parameters (res5's are the backbone's:
// see backbone.Stage.Learnables).
func (h *RoIHeads) Learnables() G.Nodes {
	return G.Nodes{h.cls.node, h.clsB.node, h.bbox.node, h.bbxB.node}
}

func (h *RoIHeads) params() []*param { return []*param{h.cls, h.clsB, h.bbox, h.bbxB} }
