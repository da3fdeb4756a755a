package detection

import (
	"fmt"
	"math"
	"math/rand"

	G "gorgonia.org/gorgonia"

	"resdet/nn"
)

// FCHead is Detectron2's FastRCNNConvFCHead with two fully connected layers
// and no convolutions (the DC5 and FPN box head): pooled RoI features
// [K, C, OH, OW] are flattened (C, OH, OW order) and go through fc1 and
// fc2, each followed by ReLU: [K, Dim].
//
// Parameters (Detectron2's names, torch layouts):
// roi_heads.box_head.fc1.weight [Dim, C*OH*OW], .bias [Dim],
// roi_heads.box_head.fc2.weight [Dim, Dim], .bias [Dim].
type FCHead struct {
	InC, Size, Dim int
	fc1, fc1B      *param
	fc2, fc2B      *param
	// BF16 runs fc1 and fc2 in bfloat16 (New and NewTrainable set it from
	// the precision): weights converted once for inference, rounded on
	// every run for training (gradients in bf16 too, see nn.LinearOpts).
	BF16 bool
	varW bool // the weights change between runs (training): see setPrecision
}

// NewFCHead creates the head's parameters on g for pooled maps of inC
// channels and size x size cells and dim outputs. With a non-nil rng the
// weights are drawn as Detectron2's c2_xavier_fill (uniform in
// ±sqrt(3/fan_in); biases 0); with nil they are zero. It panics if a size
// is not positive.
func NewFCHead(g *G.ExprGraph, inC, size, dim int, rng *rand.Rand) *FCHead {
	if inC < 1 || size < 1 || dim < 1 {
		panic(fmt.Sprintf("detection.NewFCHead: %d channels, size %d, dim %d", inC, size, dim))
	}
	in := inC * size * size
	h := &FCHead{InC: inC, Size: size, Dim: dim,
		fc1: newParam(g, "roi_heads.box_head.fc1.weight", dim, in), fc1B: newParam(g, "roi_heads.box_head.fc1.bias", dim),
		fc2: newParam(g, "roi_heads.box_head.fc2.weight", dim, dim), fc2B: newParam(g, "roi_heads.box_head.fc2.bias", dim),
	}
	if rng != nil {
		for _, p := range []*param{h.fc1, h.fc2} {
			fanIn := float64(p.shape[1])
			for i := range p.data {
				p.data[i] = float32((2*rng.Float64() - 1) * math.Sqrt(3/fanIn))
			}
		}
	}
	return h
}

// Forward implements BoxHead: [K, C, OH, OW] -> [K, Dim].
func (h *FCHead) Forward(pooled *G.Node) (*G.Node, error) {
	s := pooled.Shape()
	if len(s) != 4 || s[1] != h.InC || s[2] != h.Size || s[3] != h.Size {
		return nil, fmt.Errorf("detection: box head fc: pooled shape %v, want [K, %d, %d, %d]", s, h.InC, h.Size, h.Size)
	}
	x, err := nn.Reshape(pooled, s[0], h.InC*h.Size*h.Size)
	if err != nil {
		return nil, fmt.Errorf("detection: box head flatten: %w", err)
	}
	for i, l := range [][2]*param{{h.fc1, h.fc1B}, {h.fc2, h.fc2B}} {
		if x, err = nn.LinearWith(x, l[0].node, l[1].node, bf16Linear(h.BF16, h.varW)); err != nil {
			return nil, fmt.Errorf("detection: box head fc%d: %w", i+1, err)
		}
		if x, err = nn.ReLU(x); err != nil {
			return nil, fmt.Errorf("detection: box head fc%d relu: %w", i+1, err)
		}
	}
	return x, nil
}

// bf16Linear returns the options of a box head's linear layer in bf16 or
// float32; varW says the weights change between runs (training), so they
// are not kept converted.
func bf16Linear(bf16, varW bool) nn.LinearOpts {
	return nn.LinearOpts{BF16: bf16, ConstWeights: bf16 && !varW}
}

// OutChannels implements BoxHead: Dim.
func (h *FCHead) OutChannels() int { return h.Dim }

func (h *FCHead) params() []*param { return []*param{h.fc1, h.fc1B, h.fc2, h.fc2B} }
