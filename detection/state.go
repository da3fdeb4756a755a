package detection

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/fpn"
	"resdet/nn"
	"resdet/weights"
)

// param is a parameter tensor of the detector's own parts: a graph input
// node and its backing data (shared with the node's value, so loading
// writes through).
type param struct {
	name  string // our parameter name, e.g. "rpn.head.conv.weight"
	shape []int
	data  []float32
	node  *G.Node
	// frozen: a state tensor that is never learnt (batch-norm statistics
	// and affine of a frozen norm); Learnables leaves it out.
	frozen bool
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

// The detector's parameters have these names (torchvision's, as
// FasterRCNN.state_dict() of the C4 construction names them after
// package checkpoint's renaming):
//
//	backbone.<ResNet name>    the whole ResNet, torchvision's names (conv1,
//	                          bn1, layer1 .. layer4; layer4 is the box head's res5)
//	rpn.head.*                see RPNHead
//	roi_heads.box_head.*      see FCHead (DC5)
//	roi_heads.box_predictor.* see FastRCNNPredictor
//	backbone.fpn.*            the FPN neck's (package fpn), if any
//	roi_heads.box_head.*      see TwoMLPHead and ConvFCHead (none for C4)

// paramHolder is a part with parameters of its own (box heads besides
// Res5Head).
type paramHolder interface{ params() []*param }

// refolder is a part whose graph holds values folded from its state
// (frozen batch norms), recomputed after Load.
type refolder interface{ refold() }

// stateNeck is a Neck whose tensors are part of the detector's state
// (FPNNeck), under names of their own prefix.
type stateNeck interface {
	State() weights.State
	Load(weights.State) error
}

// headParams returns the parameters of the parts besides the backbone and
// the neck.
func (m *FasterRCNN) headParams() []*param {
	ps := m.RPN.Head.params()
	if h, ok := m.RoIHeads.BoxHead.(paramHolder); ok {
		ps = append(ps, h.params()...)
	}
	return append(ps, m.RoIHeads.Predictor.params()...)
}

// State returns a copy of the parameters under our names (above).
func (m *FasterRCNN) State() weights.State {
	s := make(weights.State)
	for name, t := range m.Backbone.State() {
		s["backbone."+name] = t
	}
	if n, ok := m.Neck.(stateNeck); ok {
		for name, t := range n.State() {
			s[name] = t
		}
	}
	for _, p := range m.headParams() {
		s[p.name] = weights.Tensor{Shape: append([]int(nil), p.shape...), Data: append([]float32(nil), p.data...)}
	}
	return s
}

// Load copies a state under our names into the parameters. Every tensor
// must be present with its shape and none may be left over; errors name the
// tensor (and say when the class count or the architecture differs).
func (m *FasterRCNN) Load(s weights.State) error {
	bb := make(weights.State)
	neck, _ := m.Neck.(stateNeck)
	for name, t := range s {
		if neck != nil && strings.HasPrefix(name, fpn.Prefix) {
			continue
		}
		if rest, ok := strings.CutPrefix(name, "backbone."); ok {
			bb[rest] = t
		}
	}
	if t, ok := s["roi_heads.box_predictor.cls_score.weight"]; ok && len(t.Shape) == 2 && t.Shape[0] != m.NumClasses() {
		return fmt.Errorf("detection: load: the weights have %d classes, the detector %d (%d names given)",
			t.Shape[0]-1, m.NumClasses()-1, len(m.Config.Classes))
	}
	if err := m.Backbone.Load(bb); err != nil {
		return fmt.Errorf("detection: load: weights do not fit a %s detector: %w", m.Config.Arch, err)
	}
	if neck != nil {
		if err := neck.Load(s); err != nil {
			return fmt.Errorf("detection: load %s neck: %w", m.Config.Arch, err)
		}
	}
	known := make(map[string]bool)
	for _, p := range m.headParams() {
		t, err := s.Get(p.name, p.shape...)
		if err != nil {
			return fmt.Errorf("detection: load %s heads: %w", m.Config.Arch, err)
		}
		copy(p.data, t.Data)
		known[p.name] = true
	}
	if r, ok := m.RoIHeads.BoxHead.(refolder); ok {
		r.refold()
	}
	// Constant-weight ops (bf16, the FPN neck) keep their weights converted
	// after the first run, keyed by address: drop those copies of the old
	// values.
	nn.ReleaseConvBuffers()
	var extra []string
	for name := range s {
		if !known[name] && !strings.HasPrefix(name, "backbone.") {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("detection: load: unexpected tensors %v", extra[:min(len(extra), 5)])
	}
	return nil
}
