package detection

import (
	"fmt"
	"math/rand"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"

	"resdet/backbone"
	"resdet/nn"
	"resdet/ops"
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
	// LevelEps and LevelEpsInLog set the level rule of a multi-level (FPN)
	// pooler, see LevelMapper: torchvision's 1e-6 outside the logarithm;
	// Detectron2's 1e-8 inside it. Unused on one level.
	LevelEps      float32 `json:",omitempty"`
	LevelEpsInLog bool    `json:",omitempty"`
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

// RoIPooler extracts a fixed-size feature for each RoI from the feature
// maps (torchvision's box_roi_pool): rois [K, 5] (batch index, x1, y1, x2,
// y2 in input pixels, a constant) -> [K, C, OH, OW]. SingleLevelPooler is
// the C4 one; a multi-level (FPN) pooler picks the map per RoI.
type RoIPooler interface {
	Pool(feats []Feature, rois *G.Node) (*G.Node, error)
}

// SingleLevelPooler applies RoIAlign or RoIPool (Op) to the feature map
// named In, at its stride's scale.
type SingleLevelPooler struct {
	In string
	Op RoIOpConfig
	// Blocked writes the pooled features in the layout of a box head that
	// runs on oneDNN's blocked layout (Res5Head with Blocked: a res5 stage
	// with frozen BN): float32 nChw<B>c, or with BF16 the bf16 chain layout
	// (a res5 stage running as a bf16 chain). RoIAlign writes it directly
	// (ops.RoIAlignBlocked, ops.RoIAlignBF16: no NCHW copy and no
	// conversion); RoIPool's NCHW output is converted (nn.ToBlocked,
	// nn.ToBlockedBF16).
	Blocked, BF16 bool
	// Step > 1 (align only) pools only the bins (Step*i, Step*j) of the
	// Op.Size grid, all that a box head whose first convolutions are 1x1 of
	// stride Step reads (Res5Head with Input.Strided; ops.RoIAlignOpts.Step):
	// [K, C, (Size-1)/Step+1, same]. 0 or 1: every bin.
	Step int
}

// Pool implements RoIPooler: [K, C, Op.Size, Op.Size] (float32 NCHW; with
// Blocked float32 nChw<B>c, or with BF16 too an nn.BFloat16 chain value;
// with Step every Step-th bin).
func (p *SingleLevelPooler) Pool(feats []Feature, rois *G.Node) (*G.Node, error) {
	f, err := featureNamed(feats, p.In)
	if err != nil {
		return nil, fmt.Errorf("detection: RoI pooler: %w", err)
	}
	scale := 1 / float32(f.Spec.Stride)
	var y *G.Node
	if p.Step > 1 && p.Op.Op != RoIOpAlign {
		return nil, fmt.Errorf("detection: RoI pooler: Step %d with %s: only %s computes a subset of its bins", p.Step, p.Op.Op, RoIOpAlign)
	}
	if p.Op.Op == RoIOpPool {
		y, err = ops.RoIPool(f.Map, rois, ops.RoIPoolOpts{OutH: p.Op.Size, OutW: p.Op.Size, SpatialScale: scale})
		switch {
		case err == nil && p.Blocked && p.BF16:
			y, err = nn.ToBlockedBF16(y)
		case err == nil && p.Blocked:
			y, err = nn.ToBlocked(y)
		}
	} else {
		o := ops.RoIAlignOpts{OutH: p.Op.Size, OutW: p.Op.Size, SpatialScale: scale,
			SamplingRatio: p.Op.SamplingRatio, Aligned: p.Op.Aligned, Step: p.Step}
		switch {
		case p.Blocked && p.BF16:
			y, err = ops.RoIAlignBF16(f.Map, rois, o)
		case p.Blocked:
			y, err = ops.RoIAlignBlocked(f.Map, rois, o)
		default:
			y, err = ops.RoIAlign(f.Map, rois, o)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("detection: RoI %s: %w", p.Op.Op, err)
	}
	return y, nil
}

// BoxHead maps pooled RoI features [K, C, OH, OW] to one feature vector per
// RoI, [K, OutChannels()] (torchvision's box_head). Res5Head is the C4 one;
// FPN's two fully connected layers are another.
type BoxHead interface {
	Forward(pooled *G.Node) (*G.Node, error)
	OutChannels() int
}

// Res5Head is the C4 box head (the paper's appendix A): the backbone's
// conv5_x stage (stride 2 in its first block; its parameters are the
// backbone's) and the mean over H and W.
type Res5Head struct {
	Res5 *backbone.Stage
	// Input says how the pooled features come: in Res5's blocked layout
	// (SingleLevelPooler.Blocked), else NCHW; only the positions res5's
	// first block reads (Strided: SingleLevelPooler.Step =
	// Res5.InputStride()), else all.
	Input backbone.StageInput
}

// Forward implements BoxHead: [K, C4, OH, OW] -> [K, C5].
func (h *Res5Head) Forward(pooled *G.Node) (*G.Node, error) {
	y, err := h.Res5.ForwardMeanFrom(pooled, h.Input)
	if err != nil {
		return nil, fmt.Errorf("detection: box head res5 and mean: %w", err)
	}
	return y, nil
}

// OutChannels implements BoxHead: res5's output channels.
func (h *Res5Head) OutChannels() int { return h.Res5.Out.Channels }

// FastRCNNPredictor is torchvision's FastRCNNPredictor: two sibling linear
// layers on the box head's features [K, D]: class logits (NC = K+1, class 0
// the background) and class-specific box deltas (4*NC; class j's in
// columns 4j..4j+3, order dx, dy, dw, dh, weighted by
// RoIHeadsConfig.BoxCoderWeights).
//
// Parameters (state-dict names, torch layouts):
// roi_heads.box_predictor.cls_score.weight [NC, D], .bias [NC],
// roi_heads.box_predictor.bbox_pred.weight [4*NC, D], .bias [4*NC].
type FastRCNNPredictor struct {
	NumClasses int
	cls, clsB  *param
	bbox, bbxB *param
}

// NewFastRCNNPredictor creates the predictor's parameters on g for inC
// input features and numClasses = K+1 classes. With a non-nil rng the
// weights are drawn as Detectron's (normal, std 0.01 for the classifier,
// 0.001 for the deltas; biases 0); with nil they are zero. It panics if
// numClasses < 2 or inC < 1.
func NewFastRCNNPredictor(g *G.ExprGraph, inC, numClasses int, rng *rand.Rand) *FastRCNNPredictor {
	return NewFastRCNNPredictorBoxes(g, inC, numClasses, numClasses, rng)
}

// NewFastRCNNPredictorBoxes is NewFastRCNNPredictor with deltas for
// boxClasses classes (bbox_pred [4*boxClasses, D]): numClasses for
// torchvision's layout, numClasses-1 for Detectron2's (background last, no
// background deltas; RoIHeadsConfig.BackgroundLast). It panics if
// numClasses < 2, inC < 1 or boxClasses < 1.
func NewFastRCNNPredictorBoxes(g *G.ExprGraph, inC, numClasses, boxClasses int, rng *rand.Rand) *FastRCNNPredictor {
	if numClasses < 2 || inC < 1 || boxClasses < 1 {
		panic(fmt.Sprintf("detection.NewFastRCNNPredictor: %d classes, %d box classes, %d inputs", numClasses, boxClasses, inC))
	}
	p := &FastRCNNPredictor{
		NumClasses: numClasses,
		cls:        newParam(g, "roi_heads.box_predictor.cls_score.weight", numClasses, inC),
		clsB:       newParam(g, "roi_heads.box_predictor.cls_score.bias", numClasses),
		bbox:       newParam(g, "roi_heads.box_predictor.bbox_pred.weight", 4*boxClasses, inC),
		bbxB:       newParam(g, "roi_heads.box_predictor.bbox_pred.bias", 4*boxClasses),
	}
	if rng != nil {
		p.cls.normal(rng, 0.01)
		p.bbox.normal(rng, 0.001)
	}
	return p
}

// Forward applies the two layers to x [K, D]: class logits [K, NC] and box
// deltas [K, 4*NC].
func (p *FastRCNNPredictor) Forward(x *G.Node) (classLogits, boxRegression *G.Node, err error) {
	if classLogits, err = nn.Linear(x, p.cls.node, p.clsB.node); err != nil {
		return nil, nil, fmt.Errorf("detection: box predictor cls_score: %w", err)
	}
	if boxRegression, err = nn.Linear(x, p.bbox.node, p.bbxB.node); err != nil {
		return nil, nil, fmt.Errorf("detection: box predictor bbox_pred: %w", err)
	}
	return classLogits, boxRegression, nil
}

func (p *FastRCNNPredictor) params() []*param { return []*param{p.cls, p.clsB, p.bbox, p.bbxB} }

// RoIHeads is the second stage (torchvision's RoIHeads): the pooler, the
// box head and the predictor (graph) on the proposals; proposal sampling and
// targets for training and post-processing (plain Go: targets.go,
// postprocess.go); and, when training, its losses (FastRCNNLoss).
type RoIHeads struct {
	Config    RoIHeadsConfig
	Pooler    RoIPooler
	BoxHead   BoxHead
	Predictor *FastRCNNPredictor
}

// NumClasses returns NC, counting the background.
func (h *RoIHeads) NumClasses() int { return h.Predictor.NumClasses }

// roiOutputs are the RoI heads' nodes in one forward graph. Their rows are
// those the box head runs on: the proposals (inference) or the sampled RoIs
// (training), R per image, the real ones first (the batch says how many).
type roiOutputs struct {
	classLogits   *G.Node       // [N*R, NC]
	boxRegression *G.Node       // [N*R, 4*NC]
	loss          *FastRCNNLoss // training graphs only
}

// forward builds the second stage on the proposals of the RPN ([N*P, 5],
// P per image). A training graph first samples BatchSizePerImage RoIs per
// image with their targets (sampleOp, which also points the loss at them);
// inference runs on the proposals.
func (h *RoIHeads) forward(feats []Feature, proposals *G.Node, b *batch) (*roiOutputs, error) {
	o := &roiOutputs{}
	rois := proposals
	var sample *sampleOp
	if b.training {
		sample = &sampleOp{batchOp: batchOp{name: "SampleRoIs", b: b, rows: h.Config.BatchSizePerImage}, h: h}
		var err error
		if rois, err = G.ApplyOp(sample, proposals); err != nil {
			return nil, fmt.Errorf("detection: RoI sampling: %w", err)
		}
	}
	pooled, err := h.Pooler.Pool(feats, rois)
	if err != nil {
		return nil, err
	}
	x, err := h.BoxHead.Forward(pooled)
	if err != nil {
		return nil, err
	}
	if o.classLogits, o.boxRegression, err = h.Predictor.Forward(x); err != nil {
		return nil, err
	}
	if b.training {
		if o.loss, err = NewFastRCNNLoss(o.classLogits, o.boxRegression, nil); err != nil {
			return nil, err
		}
		sample.loss = o.loss
	}
	return o, nil
}

// sampleOp draws the RoIs of a training step during the run: the batch's
// proposals with the ground truth added, targets assigned and sampled
// (SelectTrainingSamples), each image's rows padded up to rows
// (BatchSizePerImage) by PadSamples, whose padding the loss, which it
// points at them, leaves out. Input: the proposals [N*P, 5] (read from the
// batch); output the RoIs [N*rows, 5]. See batchOp.
type sampleOp struct {
	batchOp
	h    *RoIHeads
	loss *FastRCNNLoss
}

func (op *sampleOp) Arity() int { return 1 }
func (op *sampleOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2))
}

func (op *sampleOp) Do(...G.Value) (G.Value, error) {
	b := op.b
	samples, err := op.h.Config.SelectTrainingSamples(b.proposals, b.gts, b.labels, b.opts, b.rng)
	if err != nil {
		return nil, fmt.Errorf("detection: training RoIs: %w", err)
	}
	padded, err := PadSamples(samples, op.rows)
	if err != nil {
		return nil, fmt.Errorf("detection: training RoIs: %w", err)
	}
	b.fg, b.rois = 0, 0
	rows := make([]float32, 0, 5*b.n*op.rows)
	for img, s := range padded {
		for _, l := range s.Labels {
			if l != LabelIgnore {
				b.rois++
			}
			if l > 0 {
				b.fg++
			}
		}
		rows = RoIRows(rows, s.RoIs, img, op.rows)
	}
	if err := op.loss.Set(padded); err != nil {
		return nil, err
	}
	return RoITensor(rows), nil
}
