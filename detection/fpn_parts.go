package detection

import (
	"fmt"
	"hash"
	"math"
	"math/rand"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/backbone"
	"resdet/box"
	"resdet/fpn"
	"resdet/nn"
	"resdet/ops"
	"resdet/weights"
)

// This file holds the parts of torchvision's FPN Faster R-CNNs
// (fasterrcnn_resnet50_fpn and _v2) besides the RPN: the FPN neck adapter,
// the multi-level RoI pooler and the two box heads; and the assembly of
// those and of Detectron2's FPN detectors (whose box head is FCHead).

// FPNNeck is the Neck over package fpn: it hands the backbone maps named In
// (finest first, "res2" .. "res5") to the pyramid and names its outputs as
// torchvision does ("0", "1", "2", "3", "pool"; fpn.OutputNames), at the
// strides fpn.OutputShapes reports (4 .. 64).
type FPNNeck struct {
	FPN *fpn.FPN
	In  []string
}

// Forward implements Neck: P2..P6, [N, 256, Hi, Wi] each.
func (n *FPNNeck) Forward(in []Feature) ([]Feature, error) {
	c := make([]*G.Node, len(n.In))
	for i, name := range n.In {
		f, err := featureNamed(in, name)
		if err != nil {
			return nil, fmt.Errorf("detection: FPN neck: %w", err)
		}
		c[i] = f.Map
	}
	p, err := n.FPN.Forward(c)
	if err != nil {
		return nil, fmt.Errorf("detection: FPN neck: %w", err)
	}
	names, specs := n.FPN.OutputNames(), n.FPN.OutputShapes()
	out := make([]Feature, len(p))
	for i := range p {
		out[i] = Feature{Name: names[i], Map: p[i], Spec: specs[i]}
	}
	return out, nil
}

// Learnables implements Neck.
func (n *FPNNeck) Learnables() G.Nodes { return n.FPN.Learnables() }

// State returns the pyramid's tensors (names under fpn.Prefix).
func (n *FPNNeck) State() weights.State { return n.FPN.State() }

// Load loads the pyramid's tensors from s (names under fpn.Prefix; others
// are ignored).
func (n *FPNNeck) Load(s weights.State) error { return n.FPN.Load(s) }

// MultiScaleRoIAlign is torchvision's MultiScaleRoIAlign (and Detectron2's
// ROIPooler with ROIAlign): each RoI is pooled by RoIAlign (Op: Size,
// SamplingRatio, Aligned) from one of the maps named Levels (finest first,
// the first at level Mapper.Min), the one Mapper assigns to its size, at
// that map's scale (1/stride, which is torchvision's inferred
// 2^round(log2(feature size / image size)) for any image larger than a few
// dozen pixels: InferScale). Output rows follow the RoI order.
//
// In the graph a host op assigns the levels and ops.MultiLevelRoIAlign
// pools each RoI once, on its own level's map (differentiable as RoIAlign).
type MultiScaleRoIAlign struct {
	Levels []string
	Mapper LevelMapper
	Op     RoIOpConfig
}

// TorchvisionLevelMapper is torchvision's LevelMapper for P2..P5:
// levels 2..5, canonical level 4 for 224-pixel boxes, eps 1e-6 outside the
// logarithm. Detectron2's differs only in Eps 1e-8 with EpsInLog.
func TorchvisionLevelMapper() LevelMapper {
	return LevelMapper{Min: 2, Max: 5, Canonical: 4, CanonicalSize: 224, Eps: 1e-6}
}

// Pool implements RoIPooler: [K, C, Op.Size, Op.Size].
func (p *MultiScaleRoIAlign) Pool(feats []Feature, rois *G.Node) (*G.Node, error) {
	if n := p.Mapper.Max - p.Mapper.Min + 1; n != len(p.Levels) {
		return nil, fmt.Errorf("detection: multi-scale RoIAlign: %d maps %v for levels %d..%d", len(p.Levels), p.Levels, p.Mapper.Min, p.Mapper.Max)
	}
	maps := make([]*G.Node, len(p.Levels))
	scales := make([]float32, len(p.Levels))
	for i, name := range p.Levels {
		f, err := featureNamed(feats, name)
		if err != nil {
			return nil, fmt.Errorf("detection: multi-scale RoIAlign: %w", err)
		}
		maps[i], scales[i] = f.Map, 1/float32(f.Spec.Stride)
	}
	levels, err := G.ApplyOp(&roiLevelsOp{mapper: p.Mapper, k: rois.Shape()[0]}, rois)
	if err != nil {
		return nil, fmt.Errorf("detection: multi-scale RoIAlign: %w", err)
	}
	y, err := ops.MultiLevelRoIAlign(maps, scales, rois, levels,
		ops.RoIAlignOpts{OutH: p.Op.Size, OutW: p.Op.Size, SamplingRatio: p.Op.SamplingRatio, Aligned: p.Op.Aligned})
	if err != nil {
		return nil, fmt.Errorf("detection: multi-scale RoIAlign %v: %w", p.Levels, err)
	}
	return y, nil
}

// roiLevelsOp assigns RoIs [K, 5] to pyramid levels: output [K], the index
// mapper.Level - mapper.Min of each RoI's level (ops.MultiLevelRoIAlign's
// levels). Not differentiable.
type roiLevelsOp struct {
	nn.HostOp
	mapper LevelMapper
	k      int
}

func (op *roiLevelsOp) Arity() int    { return 1 }
func (op *roiLevelsOp) Type() hm.Type { return hm.NewFnType(tensorType(2), tensorType(1)) }
func (op *roiLevelsOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.k}, nil
}
func (op *roiLevelsOp) Do(in ...G.Value) (G.Value, error) {
	rois, err := nodeData("RoILevels", "rois", in[0], []int{op.k, 5})
	if err != nil {
		return nil, err
	}
	out := make([]float32, op.k)
	for k := range out {
		r := rois[5*k : 5*k+5]
		out[k] = float32(op.mapper.Level(box.Box{X1: r[1], Y1: r[2], X2: r[3], Y2: r[4]}) - op.mapper.Min)
	}
	return tensor.New(tensor.WithShape(op.k), tensor.WithBacking(out)), nil
}
func (op *roiLevelsOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *roiLevelsOp) Hashcode() uint32      { return hashOf(op) }
func (op *roiLevelsOp) String() string {
	return fmt.Sprintf("RoILevels{k=%d %+v}", op.k, op.mapper)
}
func (op *roiLevelsOp) DiffWRT(n int) []bool { return make([]bool, n) }
func (op *roiLevelsOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("detection: RoILevels is not differentiable")
}

// linearParams creates a torch nn.Linear's weight [out, in] and bias [out]
// named name+".weight" and ".bias", initialised as torch does (uniform
// ±1/sqrt(in)) with a non-nil rng.
func linearParams(g *G.ExprGraph, name string, in, out int, rng *rand.Rand) (w, b *param) {
	w, b = newParam(g, name+".weight", out, in), newParam(g, name+".bias", out)
	if rng != nil {
		bound := 1 / math.Sqrt(float64(in))
		for _, p := range []*param{w, b} {
			for i := range p.data {
				p.data[i] = float32((2*rng.Float64() - 1) * bound)
			}
		}
	}
	return w, b
}

// flattenLinearReLU flattens x [K, ...] to [K, D] and applies relu(x W^T + b),
// in bf16 if bf16 (see bf16Linear).
func flattenLinearReLU(x *G.Node, w, b *param, bf16, varW bool) (*G.Node, error) {
	s := x.Shape()
	var err error
	if len(s) != 2 {
		if x, err = nn.Reshape(x, s[0], s.TotalSize()/s[0]); err != nil {
			return nil, err
		}
	}
	if x, err = nn.LinearWith(x, w.node, b.node, bf16Linear(bf16, varW)); err != nil {
		return nil, fmt.Errorf("%s: %w", w.name, err)
	}
	return nn.ReLU(x)
}

// TwoMLPHead is torchvision's TwoMLPHead, the box head of
// fasterrcnn_resnet50_fpn: flatten (C, H, W order), fc6 + ReLU, fc7 + ReLU.
// [K, C, OH, OW] -> [K, Rep].
//
// Parameters: roi_heads.box_head.fc6.weight [Rep, C*OH*OW], .bias [Rep],
// roi_heads.box_head.fc7.weight [Rep, Rep], .bias [Rep].
type TwoMLPHead struct {
	In, Rep   int
	fc6, fc6B *param
	fc7, fc7B *param
	// BF16 runs fc6 and fc7 in bfloat16 (New and NewTrainable set it from
	// the precision): weights converted once for inference, rounded on
	// every run for training (gradients in bf16 too, see nn.LinearOpts).
	BF16 bool
	varW bool // the weights change between runs (training): see setPrecision
}

// NewTwoMLPHead creates the head's parameters on g for inputs of in = C*OH*OW
// features (12544 for 256x7x7) and rep outputs (1024), initialised as torch's
// nn.Linear with a non-nil rng, zero otherwise. It panics if in or rep < 1.
func NewTwoMLPHead(g *G.ExprGraph, in, rep int, rng *rand.Rand) *TwoMLPHead {
	if in < 1 || rep < 1 {
		panic(fmt.Sprintf("detection.NewTwoMLPHead: %d inputs, %d outputs", in, rep))
	}
	h := &TwoMLPHead{In: in, Rep: rep}
	h.fc6, h.fc6B = linearParams(g, "roi_heads.box_head.fc6", in, rep, rng)
	h.fc7, h.fc7B = linearParams(g, "roi_heads.box_head.fc7", rep, rep, rng)
	return h
}

// Forward implements BoxHead.
func (h *TwoMLPHead) Forward(pooled *G.Node) (*G.Node, error) {
	if s := pooled.Shape(); len(s) < 2 || s.TotalSize() != s[0]*h.In {
		return nil, fmt.Errorf("detection: TwoMLPHead: input %v, want [K, ...] with %d features", s, h.In)
	}
	y, err := flattenLinearReLU(pooled, h.fc6, h.fc6B, h.BF16, h.varW)
	if err != nil {
		return nil, fmt.Errorf("detection: box head: %w", err)
	}
	if y, err = flattenLinearReLU(y, h.fc7, h.fc7B, h.BF16, h.varW); err != nil {
		return nil, fmt.Errorf("detection: box head: %w", err)
	}
	return y, nil
}

// OutChannels implements BoxHead.
func (h *TwoMLPHead) OutChannels() int { return h.Rep }

func (h *TwoMLPHead) params() []*param { return []*param{h.fc6, h.fc6B, h.fc7, h.fc7B} }

// ConvFCHead is torchvision's FastRCNNConvFCHead with BatchNorm2d, the box
// head of fasterrcnn_resnet50_fpn_v2: len(Convs) x (3x3 convolution, padding
// 1, no bias; batch norm in eval mode, eps 1e-5, a frozen per-channel
// affine; ReLU), flatten, one Linear + ReLU. [K, C, OH, OW] -> [K, Rep].
//
// Parameters (i = 0..3 for four convolutions; the Linear is module 5, after
// the Flatten at 4): roi_heads.box_head.{i}.0.weight [C, C, 3, 3],
// roi_heads.box_head.{i}.1.{weight,bias,running_mean,running_var} [C],
// roi_heads.box_head.5.weight [Rep, C*OH*OW], .5.bias [Rep]. The batch norms
// are never learnt.
type ConvFCHead struct {
	C, OH, OW, Rep int
	convs          []*convBNParams
	fc, fcB        *param
	// BF16 runs the convolutions and the Linear in bfloat16 (New and
	// NewTrainable set it from the precision): weights converted once for
	// inference, rounded on every run for training.
	BF16 bool
	varW bool // the weights change between runs (training): see setPrecision
}

// convBNParams is a convolution without bias followed by a frozen batch
// norm, folded into a scale and shift for the graph.
type convBNParams struct {
	w                       *param
	gamma, beta, mean, vari *param // state only, not learnable
	scale, shift            *param // folded, graph only
	eps                     float32
}

func (c *convBNParams) refold() {
	sc, sh := nn.FoldBN(c.gamma.data, c.beta.data, c.mean.data, c.vari.data, c.eps)
	copy(c.scale.data, sc)
	copy(c.shift.data, sh)
}

// NewConvFCHead creates the head's parameters on g for pooled inputs
// [K, c, oh, ow], convs convolutions and rep outputs (v2: 256, 7, 7, 4,
// 1024). With a non-nil rng the convolutions are drawn as torchvision's
// (Kaiming normal, fan_out, ReLU), the Linear as torch's, batch norms the
// identity; with nil everything is zero but the batch norms. It panics if a
// size is < 1.
func NewConvFCHead(g *G.ExprGraph, c, oh, ow, convs, rep int, rng *rand.Rand) *ConvFCHead {
	if c < 1 || oh < 1 || ow < 1 || convs < 1 || rep < 1 {
		panic(fmt.Sprintf("detection.NewConvFCHead: %dx%dx%d, %d convolutions, %d outputs", c, oh, ow, convs, rep))
	}
	h := &ConvFCHead{C: c, OH: oh, OW: ow, Rep: rep}
	for i := range convs {
		name := fmt.Sprintf("roi_heads.box_head.%d.", i)
		cb := &convBNParams{w: newParam(g, name+"0.weight", c, c, 3, 3), eps: 1e-5,
			gamma: newParam(g, name+"1.weight", c), beta: newParam(g, name+"1.bias", c),
			mean: newParam(g, name+"1.running_mean", c), vari: newParam(g, name+"1.running_var", c),
			scale: newParam(g, name+"1.folded_scale", c), shift: newParam(g, name+"1.folded_shift", c)}
		for _, p := range []*param{cb.gamma, cb.beta, cb.mean, cb.vari} {
			p.frozen = true
		}
		for j := range c {
			cb.gamma.data[j], cb.vari.data[j] = 1, 1
		}
		if rng != nil {
			cb.w.normal(rng, math.Sqrt(2/float64(c*9)))
		}
		cb.refold()
		h.convs = append(h.convs, cb)
	}
	h.fc, h.fcB = linearParams(g, fmt.Sprintf("roi_heads.box_head.%d", convs+1), c*oh*ow, rep, rng)
	return h
}

// Forward implements BoxHead.
func (h *ConvFCHead) Forward(pooled *G.Node) (*G.Node, error) {
	if s := pooled.Shape(); len(s) != 4 || s[1] != h.C || s[2] != h.OH || s[3] != h.OW {
		return nil, fmt.Errorf("detection: ConvFCHead: input %v, want [K, %d, %d, %d]", s, h.C, h.OH, h.OW)
	}
	y := pooled
	for i, c := range h.convs {
		var err error
		if y, err = nn.Conv2dBN(y, c.w.node, c.scale.node, c.shift.node, nil, nn.ConvOpts{Pad: [2]int{1, 1}, BF16: h.BF16, ConstWeights: h.BF16 && !h.varW}, true); err != nil {
			return nil, fmt.Errorf("detection: box head conv %d: %w", i, err)
		}
	}
	y, err := flattenLinearReLU(y, h.fc, h.fcB, h.BF16, h.varW)
	if err != nil {
		return nil, fmt.Errorf("detection: box head: %w", err)
	}
	return y, nil
}

// OutChannels implements BoxHead.
func (h *ConvFCHead) OutChannels() int { return h.Rep }

func (h *ConvFCHead) params() []*param {
	var ps []*param
	for _, c := range h.convs {
		ps = append(ps, c.w, c.gamma, c.beta, c.mean, c.vari)
	}
	return append(ps, h.fc, h.fcB)
}

func (h *ConvFCHead) refold() {
	for _, c := range h.convs {
		c.refold()
	}
}

// backboneFeatures converts the backbone's named outputs to Features.
func backboneFeatures(fs []backbone.Feature) []Feature {
	out := make([]Feature, len(fs))
	for i, f := range fs {
		out[i] = Feature{Name: f.Name, Map: f.Node, Spec: f.Shape, Chain: f.Chain}
	}
	return out
}

// buildFPN assembles the FPN detector cfg.Arch names on a new graph: the
// ResNet bcfg describes (torchvision v1: BN eps 0) handing res2..res5 to
// the FPN (cfg.FPNChannels wide), the shared RPN head on P2..P6,
// MultiScaleRoIAlign on P2..P5, the box head (torchvision v1: TwoMLPHead;
// v2: ConvFCHead; Detectron2: FCHead of cfg.FCDim) and the predictor,
// initialised from rng (nil: zero weights).
func buildFPN(cfg Config, bcfg backbone.Config, rng *rand.Rand) (*FasterRCNN, error) {
	spec := archs[cfg.Arch]
	if !spec.v2 && !spec.d2 {
		bcfg.BNEpsZero, bcfg.BNEps = true, 0
	}
	g := G.NewGraph()
	bb, err := backbone.New(g, bcfg, rng)
	if err != nil {
		return nil, fmt.Errorf("detection: %s backbone: %w", cfg.Arch, err)
	}
	in := []string{"res2", "res3", "res4", "res5"}
	shapes := bb.OutputShapes()
	fcfg := fpn.Config{ConstWeights: bcfg.Inference, OutChannels: cfg.FPNChannels, BF16: bcfg.BF16 && bcfg.Inference}
	for _, n := range in {
		fcfg.In = append(fcfg.In, shapes[n])
	}
	if spec.v2 {
		fcfg.Norm = fpn.FrozenBN
	}
	f, err := fpn.New(g, fcfg, rng)
	if err != nil {
		return nil, fmt.Errorf("detection: %s FPN: %w", cfg.Arch, err)
	}
	outC := f.OutputShapes()[0].Channels
	names := f.OutputNames()
	depth := 1
	if spec.v2 {
		depth = 2
	}
	m := &FasterRCNN{Config: cfg, Backbone: bb, Neck: &FPNNeck{FPN: f, In: in}, BackboneOut: in, g: g}
	m.RPN = &RegionProposalNetwork{Config: cfg.RPN, Levels: names,
		Head: NewRPNHeadDepth(g, outC, cfg.RPN.Anchors.NumAnchors(), depth, rng)}
	op := cfg.RoIOp
	var box BoxHead
	switch {
	case spec.d2:
		box = NewFCHead(g, outC, op.Size, cfg.FCDim, rng)
	case spec.v2:
		box = NewConvFCHead(g, outC, op.Size, op.Size, 4, 1024, rng)
	default:
		box = NewTwoMLPHead(g, outC*op.Size*op.Size, 1024, rng)
	}
	mapper := TorchvisionLevelMapper()
	mapper.Eps, mapper.EpsInLog = op.LevelEps, op.LevelEpsInLog
	m.RoIHeads = &RoIHeads{
		Config:    cfg.RoIHeads,
		Pooler:    &MultiScaleRoIAlign{Levels: names[:len(in)], Mapper: mapper, Op: op},
		BoxHead:   box,
		Predictor: NewFastRCNNPredictorBoxes(g, box.OutChannels(), len(cfg.Classes)+1, cfg.RoIHeads.boxClasses(len(cfg.Classes)+1), rng),
	}
	return m, nil
}
