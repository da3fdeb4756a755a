package detection

import (
	"fmt"
	"math/rand"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/box"
	"resdet/nn"
)

// param is a parameter tensor of the detector heads: a graph input node and
// its backing data (shared with the node's value, so loading writes through).
type param struct {
	name  string // state-dict name, e.g. "rpn.head.conv.weight"
	shape []int
	data  []float32
	node  *G.Node
}

func newParam(g *G.ExprGraph, name string, shape ...int) *param {
	data := make([]float32, tensor.Shape(shape).TotalSize())
	t := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
	// Unique names: gorgonia merges input nodes of equal name and shape.
	n := G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(t))
	return &param{name: name, shape: shape, data: data, node: n}
}

func (p *param) normal(rng *rand.Rand, std float64) {
	for i := range p.data {
		p.data[i] = float32(rng.NormFloat64() * std)
	}
}

// RPNHead is the region proposal network's head (torchvision's RPNHead): a
// 3x3 convolution with C input and output channels and bias, ReLU, then two
// sibling 1x1 convolutions with bias: objectness logits (A channels) and box
// deltas (4A channels, anchor a in channels 4a..4a+3, order dx, dy, dw, dh).
//
// Parameters (state-dict names, torch layouts): rpn.head.conv.weight [C, C, 3, 3],
// rpn.head.conv.bias [C], rpn.head.cls_logits.weight [A, C, 1, 1],
// rpn.head.cls_logits.bias [A], rpn.head.bbox_pred.weight [4A, C, 1, 1],
// rpn.head.bbox_pred.bias [4A].
type RPNHead struct {
	InC, NumAnchors int
	conv, convB     *param
	cls, clsB       *param
	bbox, bboxB     *param
}

// NewRPNHead creates the head's parameters on g for a feature map of inC
// channels and numAnchors anchors per cell. With a non-nil rng the weights
// are drawn as torchvision does (normal, std 0.01; biases 0); with nil they
// are zero, to be filled by a checkpoint. It panics if inC or numAnchors is
// not positive.
func NewRPNHead(g *G.ExprGraph, inC, numAnchors int, rng *rand.Rand) *RPNHead {
	if inC < 1 || numAnchors < 1 {
		panic(fmt.Sprintf("detection.NewRPNHead: %d channels, %d anchors", inC, numAnchors))
	}
	a := numAnchors
	h := &RPNHead{
		InC: inC, NumAnchors: a,
		conv: newParam(g, "rpn.head.conv.weight", inC, inC, 3, 3), convB: newParam(g, "rpn.head.conv.bias", inC),
		cls: newParam(g, "rpn.head.cls_logits.weight", a, inC, 1, 1), clsB: newParam(g, "rpn.head.cls_logits.bias", a),
		bbox: newParam(g, "rpn.head.bbox_pred.weight", 4*a, inC, 1, 1), bboxB: newParam(g, "rpn.head.bbox_pred.bias", 4*a),
	}
	if rng != nil {
		for _, p := range []*param{h.conv, h.cls, h.bbox} {
			p.normal(rng, 0.01)
		}
	}
	return h
}

// Forward builds the head on feat [N, C, Hi, Wi] (NCHW). It returns the
// objectness logits [N, A, Hi, Wi] and the deltas [N, 4A, Hi, Wi].
func (h *RPNHead) Forward(feat *G.Node) (objectness, deltas *G.Node, err error) {
	if s := feat.Shape(); len(s) != 4 || s[1] != h.InC {
		return nil, nil, fmt.Errorf("detection: RPN head: feature shape %v, want [N, %d, Hi, Wi]", s, h.InC)
	}
	t, err := nn.Conv2dFused(feat, h.conv.node, h.convB.node, nil, nn.ConvOpts{Pad: [2]int{1, 1}}, true)
	if err != nil {
		return nil, nil, fmt.Errorf("detection: RPN head conv: %w", err)
	}
	if objectness, err = nn.Conv2d(t, h.cls.node, h.clsB.node, nn.ConvOpts{}); err != nil {
		return nil, nil, fmt.Errorf("detection: RPN head cls_logits: %w", err)
	}
	if deltas, err = nn.Conv2d(t, h.bbox.node, h.bboxB.node, nn.ConvOpts{}); err != nil {
		return nil, nil, fmt.Errorf("detection: RPN head bbox_pred: %w", err)
	}
	return objectness, deltas, nil
}

// Learnables returns the head's parameters.
func (h *RPNHead) Learnables() G.Nodes {
	return G.Nodes{h.conv.node, h.convB.node, h.cls.node, h.clsB.node, h.bbox.node, h.bboxB.node}
}

func (h *RPNHead) params() []*param { return []*param{h.conv, h.convB, h.cls, h.clsB, h.bbox, h.bboxB} }

// RegionProposalNetwork is the first stage: the head (graph) and, in plain
// Go, anchors and proposal filtering.
type RegionProposalNetwork struct {
	Config RPNConfig
	Head   *RPNHead
}

// Proposals turns one image's head outputs into proposals (inference):
// objectness [A, Hi, Wi] and deltas [4A, Hi, Wi] as the head computes them
// for that image, padded the size of the padded network input (the anchor
// strides are padded/Hi and padded/Wi, as torchvision's), img the size of the
// resized image before padding (proposals are clipped to it). It returns the
// proposals, in img's pixels, with their objectness probabilities, best
// first. It panics if the lengths do not match A, Hi, Wi.
func (r *RegionProposalNetwork) Proposals(objectness, deltas []float32, featH, featW int, padded, img Size, training bool) ([]box.Box, []float32) {
	anchors := r.Config.Anchors.Anchors(featH, featW, Stride(padded.H, featH), Stride(padded.W, featW))
	logits, ds := FlattenRPN(objectness, deltas, r.Config.Anchors.NumAnchors(), featH, featW)
	return r.Config.FilterProposals(anchors, logits, ds, img, training)
}
