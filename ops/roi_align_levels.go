package ops

import (
	"fmt"
	"hash"
	"strings"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/nn"
)

// This file holds RoIAlign over a feature pyramid: each RoI pooled from the
// one map its level names (torchvision's MultiScaleRoIAlign once the levels
// are assigned).

// MultiLevelRoIAlign pools each RoI from one of several feature maps, as
// torchvision's MultiScaleRoIAlign does once its LevelMapper has assigned
// the levels: feats are L maps [N, C, Hl, Wl] (same N and C; sizes may
// differ), scales[l] the spatial scale of map l (1/stride), rois [K, 5]
// (batch index, x1, y1, x2, y2 in input-image pixels) and levels [K] the
// index in [0, L) of each RoI's map (float32 holding integers). Row k of the
// result [K, C, OH, OW] (o.OutSize) is RoIAlign(feats[levels[k]], rois[k]) with o
// at scale scales[levels[k]], bit for bit: each RoI is pooled once, on its
// own map. o.SpatialScale must be 0 (the scales are per level).
//
// The gradient flows to every map (zero where no RoI of its level samples);
// rois and levels are constants. Each map's gradient adds its RoIs'
// contributions in RoI order, as RoIAlign's does. The forward pass is
// parallel over RoIs, the backward pass over channels.
//
// It returns an error naming the shapes if a map is not 4-D or its N or C
// differ from the first's, rois are not [K, 5] with K >= 1, levels not [K],
// a scale not positive or the output size not positive. When run, the op
// returns an error for a level that is not an integer in [0, L), and those
// of RoIAlign for bad RoIs.
func MultiLevelRoIAlign(feats []*G.Node, scales []float32, rois, levels *G.Node, o RoIAlignOpts) (*G.Node, error) {
	const op = "MultiLevelRoIAlign"
	if len(feats) == 0 || len(scales) != len(feats) {
		return nil, fmt.Errorf("ops: %s: %d maps and %d scales, want as many, at least one", op, len(feats), len(scales))
	}
	if o.SpatialScale != 0 {
		return nil, fmt.Errorf("ops: %s: SpatialScale %v, want 0 (the scales are per level)", op, o.SpatialScale)
	}
	mg := multiAlignGeom{o: o}
	for l, f := range feats {
		g, err := o.shapes(fmt.Sprintf("%s map %d", op, l), f, rois, scales[l])
		if err != nil {
			return nil, err
		}
		if l == 0 {
			mg.N, mg.C, mg.K = g.N, g.C, g.K
		} else if g.N != mg.N || g.C != mg.C {
			return nil, fmt.Errorf("ops: %s: map %d has shape %v, map 0 [%d %d ...]", op, l, f.Shape(), mg.N, mg.C)
		}
		mg.levels = append(mg.levels, alignLevel{H: g.H, W: g.W, Scale: scales[l]})
	}
	if levels.Dtype() != tensor.Float32 || !levels.Shape().Eq(tensor.Shape{mg.K}) {
		return nil, fmt.Errorf("ops: %s: levels are %v %v, want float32 [%d]", op, levels.Dtype(), levels.Shape(), mg.K)
	}
	in := append(append(G.Nodes(nil), feats...), rois, levels)
	return G.ApplyOp(multiAlignOp{g: mg}, in...)
}

// alignLevel is one map of a multi-level RoIAlign: its size and scale.
type alignLevel struct {
	H, W  int
	Scale float32
}

// multiAlignGeom is the geometry of a multi-level RoIAlign: L maps [N, C,
// Hl, Wl], K RoIs, output [K, C, o.OutSize()]; o.SpatialScale is unused.
type multiAlignGeom struct {
	N, C, K int
	levels  []alignLevel
	o       RoIAlignOpts
}

// opts returns the RoIAlign options of level l.
func (g multiAlignGeom) opts(l int) RoIAlignOpts {
	o := g.o
	o.SpatialScale = g.levels[l].Scale
	return o
}

// geom returns the single-map geometry of level l.
func (g multiAlignGeom) geom(l int) roiGeom {
	oh, ow := g.o.OutSize()
	return roiGeom{N: g.N, C: g.C, H: g.levels[l].H, W: g.levels[l].W, K: g.K, OH: oh, OW: ow}
}

func (g multiAlignGeom) outShape() []int {
	oh, ow := g.o.OutSize()
	return []int{g.K, g.C, oh, ow}
}

func (g multiAlignGeom) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%dx%d sampling=%d aligned=%v step=%d N=%d C=%d K=%d levels=", g.o.OutH, g.o.OutW, g.o.SamplingRatio, g.o.Aligned, g.o.step(), g.N, g.C, g.K)
	for _, l := range g.levels {
		fmt.Fprintf(&b, "[%dx%d scale=%v]", l.H, l.W, l.Scale)
	}
	return b.String()
}

// roisAndLevels reads and checks the RoIs and their levels (as ints) for
// the op named name.
func (g multiAlignGeom) roisAndLevels(name string, rv, lv G.Value) ([]float32, []int, error) {
	rois, err := tensorData(name, "rois", rv, []int{g.K, 5})
	if err != nil {
		return nil, nil, err
	}
	lf, err := tensorData(name, "levels", lv, []int{g.K})
	if err != nil {
		return nil, nil, err
	}
	if err := g.geom(0).checkRoIs(name, rois); err != nil {
		return nil, nil, err
	}
	levels := make([]int, g.K)
	for k, f := range lf {
		l := int(f)
		if l < 0 || l >= len(g.levels) || float32(l) != f {
			return nil, nil, fmt.Errorf("ops: %s: roi %d: level %v, want an integer in [0, %d)", name, k, f, len(g.levels))
		}
		if err := g.opts(l).checkRoI(name, k, rois[5*k:5*k+5]); err != nil {
			return nil, nil, err
		}
		levels[k] = l
	}
	return rois, levels, nil
}

// multiAlignOp is the forward op. Inputs: L maps, rois [K, 5], levels [K];
// output [K, C, OutH, OutW].
type multiAlignOp struct {
	nn.HostOp
	g multiAlignGeom
}

func (op multiAlignOp) Arity() int { return len(op.g.levels) + 2 }
func (op multiAlignOp) Type() hm.Type {
	ts := make([]hm.Type, 0, op.Arity()+1)
	for range op.g.levels {
		ts = append(ts, tensorType(4))
	}
	return hm.NewFnType(append(ts, tensorType(2), tensorType(1), tensorType(4))...)
}
func (op multiAlignOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.g.outShape()), nil
}
func (op multiAlignOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

// UsePreallocDo writes the output into prealloc if it is a float32 tensor of
// the output's shape, else into a new tensor.
func (op multiAlignOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	name := op.String()
	L := len(op.g.levels)
	if len(in) != L+2 {
		return nil, fmt.Errorf("ops: %s: got %d inputs, want %d", name, len(in), L+2)
	}
	feats := make([][]float32, L)
	for l := range feats {
		var err error
		if feats[l], err = tensorData(name, fmt.Sprintf("feat %d", l), in[l], op.g.geom(l).featShape()); err != nil {
			return nil, err
		}
	}
	rois, levels, err := op.g.roisAndLevels(name, in[L], in[L+1])
	if err != nil {
		return nil, err
	}
	out, y := outTensor(prealloc, op.g.outShape())
	opts := make([]RoIAlignOpts, L)
	for l := range opts {
		opts[l] = op.g.opts(l)
	}
	oh, ow := op.g.o.OutSize()
	C, bins := op.g.C, oh*ow
	roiAlignItems(op.g.K, C,
		func(k int, buf []alignSample) alignPlan {
			lv := op.g.levels[levels[k]]
			return opts[levels[k]].plan(rois[5*k:5*k+5], lv.H, lv.W, buf)
		},
		func(_, k int, p *alignPlan, c0, c1 int) {
			lv := op.g.levels[levels[k]]
			hw := lv.H * lv.W
			alignChannels(p, feats[levels[k]][p.batch*C*hw:(p.batch+1)*C*hw], y[k*C*bins:(k+1)*C*bins], hw, bins, c0, c1)
		})
	return out, nil
}
func (op multiAlignOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op multiAlignOp) Hashcode() uint32      { return hashOf(op) }
func (op multiAlignOp) String() string        { return fmt.Sprintf("MultiLevelRoIAlign{%v}", op.g) }

// DiffWRT: differentiable with respect to the maps, not rois or levels.
func (op multiAlignOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for l := 0; l < len(op.g.levels) && l < n; l++ {
		d[l] = true
	}
	return d
}

// SymDiff returns the gradient of each map and nil for rois and levels.
func (op multiAlignOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	L := len(op.g.levels)
	if len(in) != L+2 {
		return nil, fmt.Errorf("ops: %v: SymDiff got %d inputs, want %d", op, len(in), L+2)
	}
	out := make(G.Nodes, L+2)
	for l := range L {
		var err error
		if out[l], err = G.ApplyOp(multiAlignGradOp{g: op.g, level: l}, in[L], in[L+1], grad); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// multiAlignGradOp computes the gradient of map level [N, C, Hl, Wl] from
// rois [K, 5], levels [K] and the output gradient [K, C, o.OutSize()].
type multiAlignGradOp struct {
	nn.HostOp
	g     multiAlignGeom
	level int
}

func (op multiAlignGradOp) Arity() int { return 3 }
func (op multiAlignGradOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(1), tensorType(4), tensorType(4))
}
func (op multiAlignGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.g.geom(op.level).featShape()), nil
}
func (op multiAlignGradOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op multiAlignGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	name := op.String()
	if len(in) != 3 {
		return nil, fmt.Errorf("ops: %s: got %d inputs, want 3", name, len(in))
	}
	rois, levels, err := op.g.roisAndLevels(name, in[0], in[1])
	if err != nil {
		return nil, err
	}
	gy, err := tensorData(name, "grad", in[2], op.g.outShape())
	if err != nil {
		return nil, err
	}
	g := op.g.geom(op.level)
	out, gx := outTensor(prealloc, g.featShape())
	clear(gx)
	o := op.g.opts(op.level)
	hw, bins := g.H*g.W, g.OH*g.OW
	// As roiAlignBackward, over this level's RoIs only.
	parallelRanges(g.C, func(c0, c1 int) {
		var buf []alignSample
		for k := 0; k < g.K; k++ {
			if levels[k] != op.level {
				continue
			}
			p := o.plan(rois[5*k:5*k+5], g.H, g.W, buf)
			buf = p.samples
			alignBackwardChannels(&p, gy[k*g.C*bins:(k+1)*g.C*bins], gx[p.batch*g.C*hw:(p.batch+1)*g.C*hw], hw, bins, c0, c1)
		}
	})
	return out, nil
}
func (op multiAlignGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op multiAlignGradOp) Hashcode() uint32      { return hashOf(op) }
func (op multiAlignGradOp) String() string {
	return fmt.Sprintf("MultiLevelRoIAlignGrad{level=%d %v}", op.level, op.g)
}

// alignChannels computes channels [c0, c1) of one RoI's output from its
// plan p: src is the RoI's image [C, H, W] (hw = H*W), dst its output
// [C, OH, OW] (bins = OH*OW). The same arithmetic as alignBins, on NCHW
// maps, four channels at a time: MultiLevelRoIAlign's kernel. The FPN's
// maps are large next to what its 7x7 output samples from them (P2..P5 of
// a 1333x800 image hold 23M values), so the channels-last copy alignBins
// needs would cost more than it saves.
func alignChannels(p *alignPlan, src, dst []float32, hw, bins, c0, c1 int) {
	ns := p.gh * p.gw
	count := float32(max(ns, 1))
	c := c0
	// Four channels at a time share each sample's weights and offsets.
	for ; c+4 <= c1; c += 4 {
		p0, p1, p2, p3 := planes4(src, c*hw, hw)
		d0, d1, d2, d3 := planes4(dst, c*bins, bins)
		for bin := range d0 {
			var v0, v1, v2, v3 float32
			for _, sp := range p.samples[bin*ns : (bin+1)*ns] {
				i0, i1, i2, i3 := sp.p[0], sp.p[1], sp.p[2], sp.p[3]
				w0, w1, w2, w3 := sp.w[0], sp.w[1], sp.w[2], sp.w[3]
				v0 += float32(float32(float32(w0*p0[i0])+float32(w1*p0[i1]))+float32(w2*p0[i2])) + float32(w3*p0[i3])
				v1 += float32(float32(float32(w0*p1[i0])+float32(w1*p1[i1]))+float32(w2*p1[i2])) + float32(w3*p1[i3])
				v2 += float32(float32(float32(w0*p2[i0])+float32(w1*p2[i1]))+float32(w2*p2[i2])) + float32(w3*p2[i3])
				v3 += float32(float32(float32(w0*p3[i0])+float32(w1*p3[i1]))+float32(w2*p3[i2])) + float32(w3*p3[i3])
			}
			d0[bin], d1[bin], d2[bin], d3[bin] = v0/count, v1/count, v2/count, v3/count
		}
	}
	for ; c < c1; c++ {
		plane := src[c*hw : (c+1)*hw]
		out := dst[c*bins : (c+1)*bins]
		for bin := range out {
			var v float32
			for _, sp := range p.samples[bin*ns : (bin+1)*ns] {
				v += float32(float32(float32(sp.w[0]*plane[sp.p[0]])+float32(sp.w[1]*plane[sp.p[1]]))+
					float32(sp.w[2]*plane[sp.p[2]])) + float32(sp.w[3]*plane[sp.p[3]])
			}
			out[bin] = v / count
		}
	}
}

// alignBackwardChannels adds channels [c0, c1) of one RoI's contribution to
// the feature gradient, from its plan p: src is the RoI's output gradient
// [C, OH, OW] (bins = OH*OW), dst the gradient of its image [C, H, W] (hw =
// H*W), both NCHW. Each contribution is float32(g*w) / count, as
// torchvision's. MultiLevelRoIAlign's backward pass uses it; RoIAlign's
// (roiAlignBackward) is its channels-last form, checked against it.
func alignBackwardChannels(p *alignPlan, src, dst []float32, hw, bins, c0, c1 int) {
	ns := p.gh * p.gw
	if ns == 0 {
		return
	}
	count := float32(ns)
	c := c0
	for ; c+4 <= c1; c += 4 {
		q0, q1, q2, q3 := planes4(dst, c*hw, hw)
		for bin := range bins {
			i := c*bins + bin
			g0, g1, g2, g3 := src[i], src[i+bins], src[i+2*bins], src[i+3*bins]
			for _, sp := range p.samples[bin*ns : (bin+1)*ns] {
				if !sp.ok {
					continue
				}
				for j := 0; j < 4; j++ {
					i, w := sp.p[j], sp.w[j]
					q0[i] += float32(g0*w) / count
					q1[i] += float32(g1*w) / count
					q2[i] += float32(g2*w) / count
					q3[i] += float32(g3*w) / count
				}
			}
		}
	}
	for ; c < c1; c++ {
		plane := dst[c*hw : (c+1)*hw]
		for bin := range bins {
			gv := src[c*bins+bin]
			for _, sp := range p.samples[bin*ns : (bin+1)*ns] {
				if !sp.ok {
					continue
				}
				plane[sp.p[0]] += float32(gv*sp.w[0]) / count
				plane[sp.p[1]] += float32(gv*sp.w[1]) / count
				plane[sp.p[2]] += float32(gv*sp.w[2]) / count
				plane[sp.p[3]] += float32(gv*sp.w[3]) / count
			}
		}
	}
}
