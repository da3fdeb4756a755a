package detection

import (
	"fmt"
	"math/rand"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"

	"resdet/box"
	"resdet/nn"
)

// RPNHead is the region proposal network's head (torchvision's RPNHead): a
// 3x3 convolution with C input and output channels and bias, ReLU, then two
// sibling 1x1 convolutions with bias: objectness logits (A channels) and box
// deltas (4A channels, anchor a in channels 4a..4a+3, order dx, dy, dw, dh).
//
// Parameters (state-dict names, torch layouts): rpn.head.conv.weight [C, C, 3, 3],
// rpn.head.conv.bias [C], rpn.head.cls_logits.weight [A, C, 1, 1],
// rpn.head.cls_logits.bias [A], rpn.head.bbox_pred.weight [4A, C, 1, 1],
// rpn.head.bbox_pred.bias [4A].
//
// With ConvDepth > 1 (torchvision v2's RPNHead(..., conv_depth=2)) there are
// ConvDepth such 3x3 convolutions with bias and ReLU, no norm, named
// rpn.head.conv.{i}.weight and .bias.
type RPNHead struct {
	InC, NumAnchors int
	ConvDepth       int
	convs, convBs   []*param
	cls, clsB       *param
	bbox, bboxB     *param
	// BF16 runs the 3x3 convolutions in bfloat16 (New and NewTrainable set
	// it from the precision): weights converted once for inference, rounded
	// on every run and gradients in bf16 for training. The two 1x1
	// predictions (objectness, deltas) stay float32 (see Forward).
	BF16 bool
	varW bool // the weights change between runs (training): see setPrecision
}

// NewRPNHead creates the head's parameters on g for a feature map of inC
// channels and numAnchors anchors per cell. With a non-nil rng the weights
// are drawn as torchvision does (normal, std 0.01; biases 0); with nil they
// are zero, to be filled by Load. It panics if inC or numAnchors is not
// positive.
func NewRPNHead(g *G.ExprGraph, inC, numAnchors int, rng *rand.Rand) *RPNHead {
	return NewRPNHeadDepth(g, inC, numAnchors, 1, rng)
}

// NewRPNHeadDepth is NewRPNHead with convDepth 3x3 convolutions (see
// RPNHead). It panics if inC, numAnchors or convDepth is not positive.
func NewRPNHeadDepth(g *G.ExprGraph, inC, numAnchors, convDepth int, rng *rand.Rand) *RPNHead {
	if inC < 1 || numAnchors < 1 || convDepth < 1 {
		panic(fmt.Sprintf("detection.NewRPNHead: %d channels, %d anchors, %d convolutions", inC, numAnchors, convDepth))
	}
	a := numAnchors
	h := &RPNHead{
		InC: inC, NumAnchors: a, ConvDepth: convDepth,
		cls: newParam(g, "rpn.head.cls_logits.weight", a, inC, 1, 1), clsB: newParam(g, "rpn.head.cls_logits.bias", a),
		bbox: newParam(g, "rpn.head.bbox_pred.weight", 4*a, inC, 1, 1), bboxB: newParam(g, "rpn.head.bbox_pred.bias", 4*a),
	}
	for i := range convDepth {
		name := "rpn.head.conv."
		if convDepth > 1 {
			name += fmt.Sprintf("%d.", i)
		}
		h.convs = append(h.convs, newParam(g, name+"weight", inC, inC, 3, 3))
		h.convBs = append(h.convBs, newParam(g, name+"bias", inC))
	}
	// Draw order: the 3x3 convolutions, then cls_logits, then bbox_pred
	// (a seed's from-scratch runs depend on it: the demo's figures).
	if rng != nil {
		for _, p := range append(append([]*param{}, h.convs...), h.cls, h.bbox) {
			p.normal(rng, 0.01)
		}
	}
	return h
}

// Forward builds the head on f's map [N, C, Hi, Wi] (NCHW, or f.Chain's
// layout when the head can read it: see below). It returns the objectness
// logits [N, A, Hi, Wi] and the deltas [N, 4A, Hi, Wi], float32 NCHW.
//
// Layouts: when C is a multiple of 16, the 3x3 convolutions write the
// blocked layout of their precision (float32 nChw<B>c, or with BF16 the
// bf16 chain's channels-last), and the first one reads f.Chain instead of
// f.Map if its dtype matches the head's precision (a bf16 chain with BF16,
// a float32 one without): no conversion to NCHW and back on the way. The
// 1x1 predictions are float32 convolutions on the float32 blocked layout:
// with BF16 the activation is converted to it (nn.BlockedFloat32), so that
// their weights stay float32 (running them in bf16 lowered the AP of
// checkpoint's TestBF16AccuracyD2C4 from 0.900 to 0.886). With C not a
// multiple of 16 everything is NCHW.
func (h *RPNHead) Forward(f Feature) (objectness, deltas *G.Node, err error) {
	if s := f.Map.Shape(); len(s) != 4 || s[1] != h.InC {
		return nil, nil, fmt.Errorf("detection: RPN head: feature %q shape %v, want [N, %d, Hi, Wi]", f.Name, s, h.InC)
	}
	blocked := h.InC%16 == 0
	t, tBlocked := f.Map, false
	if c := f.Chain; blocked && c != nil && (c.Dtype() == nn.BFloat16) == h.BF16 {
		t, tBlocked = c, true
	}
	for i, w := range h.convs {
		o := nn.ConvOpts{Pad: [2]int{1, 1}, BF16: h.BF16, ConstWeights: h.BF16 && !h.varW,
			BlockedIn: tBlocked, BlockedOut: blocked, BlockedBF16: h.BF16 && (tBlocked || blocked)}
		if t, err = nn.Conv2dFused(t, w.node, h.convBs[i].node, nil, o, true); err != nil {
			return nil, nil, fmt.Errorf("detection: RPN head conv %d: %w", i, err)
		}
		tBlocked = blocked
	}
	if h.BF16 && tBlocked {
		if t, err = nn.BlockedFloat32(t); err != nil {
			return nil, nil, fmt.Errorf("detection: RPN head: %w", err)
		}
	}
	pred := nn.ConvOpts{BlockedIn: tBlocked}
	if objectness, err = nn.Conv2d(t, h.cls.node, h.clsB.node, pred); err != nil {
		return nil, nil, fmt.Errorf("detection: RPN head cls_logits: %w", err)
	}
	if deltas, err = nn.Conv2d(t, h.bbox.node, h.bboxB.node, pred); err != nil {
		return nil, nil, fmt.Errorf("detection: RPN head bbox_pred: %w", err)
	}
	return objectness, deltas, nil
}

func (h *RPNHead) params() []*param {
	var ps []*param
	for i, w := range h.convs {
		ps = append(ps, w, h.convBs[i])
	}
	return append(ps, h.cls, h.clsB, h.bbox, h.bboxB)
}

// RegionProposalNetwork is the first stage (torchvision's
// RegionProposalNetwork): the head on one feature map (graph); anchors,
// proposal filtering and anchor targets (plain Go: anchors.go,
// proposals.go, targets.go); and, when training, its losses (RPNLoss).
type RegionProposalNetwork struct {
	Config RPNConfig
	Head   *RPNHead
	// In names the feature map the RPN runs on ("res4" for C4).
	In string
	// Levels, when set, name the feature maps of a multi-level RPN, finest
	// first (torchvision's FPN: "0", "1", "2", "3", "pool"), and In is not
	// used: the head is shared over them, Config.Anchors has one level per
	// map (PerLevel), and proposals are selected per level
	// (FilterProposalsLevels).
	Levels []string
}

// rpnOutputs are the RPN's nodes in one forward graph.
type rpnOutputs struct {
	// proposals holds P RoI rows per image, [N*P, 5] (batch index, x1, y1,
	// x2, y2); the batch's proposals say how many of them are real.
	proposals *G.Node
	loss      *RPNLoss // training graphs only
	anchors   []box.Box
}

// forward builds the RPN on the feature map named In: the head, the
// proposal op (filtered proposals of each image, as Proposals, written to
// b), and, for a training batch, the loss nodes (pointed at each step's
// anchors by setTargets).
func (r *RegionProposalNetwork) forward(feats []Feature, b *batch) (*rpnOutputs, error) {
	if len(r.Levels) > 0 {
		return r.forwardLevels(feats, b)
	}
	f, err := featureNamed(feats, r.In)
	if err != nil {
		return nil, fmt.Errorf("detection: RPN: %w", err)
	}
	obj, dlt, err := r.Head.Forward(f)
	if err != nil {
		return nil, err
	}
	fh, fw := obj.Shape()[2], obj.Shape()[3]
	sh, sw := r.Config.Anchors.Strides(b.padded.H, b.padded.W, fh, fw, f.Spec.Stride)
	o := &rpnOutputs{anchors: r.Config.Anchors.Anchors(fh, fw, sh, sw)}
	_, post := r.Config.TopN(b.training)
	op := &proposalOp{batchOp: batchOp{name: "Proposals", b: b, rows: post}, r: r, anchors: o.anchors, a: r.Config.Anchors.NumAnchors(), fh: fh, fw: fw}
	if o.proposals, err = G.ApplyOp(op, obj, dlt); err != nil {
		return nil, fmt.Errorf("detection: RPN proposals: %w", err)
	}
	if b.training {
		if o.loss, err = NewRPNLoss(obj, dlt, nil); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// setTargets assigns the anchor targets of b's ground truth, samples the
// anchors of the loss with rng, and points o's loss at them (before a
// training run).
func (r *RegionProposalNetwork) setTargets(o *rpnOutputs, b *batch, rng *rand.Rand) error {
	samples, err := r.Config.SampleRPNBatch(o.anchors, b.gts, b.imgs, b.opts, rng)
	if err != nil {
		return err
	}
	return o.loss.Set(samples)
}

// Proposals turns one image's head outputs into proposals: objectness
// [A, Hi, Wi] and deltas [4A, Hi, Wi] as the head computes them for that
// image, anchors those of the Hi x Wi map (AnchorGenerator.Anchors), img
// the size of the resized image before padding (proposals are clipped to
// it). It returns the proposals, in img's pixels, with their objectness
// probabilities, best first. It panics if the lengths do not match A, Hi,
// Wi.
func (r *RegionProposalNetwork) Proposals(objectness, deltas []float32, anchors []box.Box, featH, featW int, img Size, training bool) ([]box.Box, []float32) {
	logits, ds := FlattenRPN(objectness, deltas, r.Config.Anchors.NumAnchors(), featH, featW)
	return r.Config.FilterProposals(anchors, logits, ds, img, training)
}

// proposalOp runs Proposals on each image of a batch during a run: inputs
// objectness [N, A, Hi, Wi] and deltas [N, 4A, Hi, Wi]; output [N*P, 5]
// RoI rows (RoIRows, P = rows); the proposals and scores go to the batch.
// See batchOp.
type proposalOp struct {
	batchOp
	r         *RegionProposalNetwork
	anchors   []box.Box
	a, fh, fw int
}

func (op *proposalOp) Arity() int { return 2 }
func (op *proposalOp) Type() hm.Type {
	return hm.NewFnType(tensorType(4), tensorType(4), tensorType(2))
}

func (op *proposalOp) Do(in ...G.Value) (G.Value, error) {
	b := op.b
	hw := op.fh * op.fw
	obj, err := nodeData("Proposals", "objectness", in[0], []int{b.n, op.a, op.fh, op.fw})
	if err != nil {
		return nil, err
	}
	dlt, err := nodeData("Proposals", "deltas", in[1], []int{b.n, 4 * op.a, op.fh, op.fw})
	if err != nil {
		return nil, err
	}
	rows := make([]float32, 0, 5*b.n*op.rows)
	for i := range b.n {
		n := op.a * hw
		b.proposals[i], b.scores[i] = op.r.Proposals(obj[i*n:(i+1)*n], dlt[4*i*n:4*(i+1)*n], op.anchors, op.fh, op.fw, b.imgs[i], b.training)
		rows = RoIRows(rows, b.proposals[i], i, op.rows)
	}
	return RoITensor(rows), nil
}
