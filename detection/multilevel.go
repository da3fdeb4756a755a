package detection

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"

	"resdet/box"
)

// This file holds the multi-level (FPN) parts of the first stage in plain
// Go and their host op: per-level proposal selection as torchvision's
// RegionProposalNetwork.filter_proposals on several feature levels.

// LevelPredictions are one image's RPN predictions on one feature level,
// in anchor order (FlattenRPN): Anchors, Logits and Deltas have the same
// length Hi*Wi*A.
type LevelPredictions struct {
	Anchors []box.Box
	Logits  []float32
	Deltas  []box.Delta
}

// FilterProposalsLevels turns one image's RPN predictions on several
// feature levels into proposals, as torchvision's filter_proposals: on each
// level the PreNMSTopN anchors with the highest objectness (by level: 1000
// per level at test time, 2000 in training), concatenated level by level;
// decoded with the RPN box coder, clipped to img (the resized image before
// padding), boxes with a side below MinSize dropped, then those with
// probability sigmoid(logit) below ScoreThresh; NMS at NMSThresh within each
// level (box.BatchedNMS with the level as the class), and the PostNMSTopN
// best of all levels kept. It returns the proposals in img's pixels and
// their objectness probabilities, by decreasing probability. With one level
// it equals FilterProposals up to the order of exact ties. With LogitScores
// the scores are the logits and the rules Detectron2's
// find_top_rpn_proposals (see RPNConfig.LogitScores; NMS per level, then
// the PostNMSTopN best logits of all levels). It panics if a level's
// lengths differ.
func (c RPNConfig) FilterProposalsLevels(levels []LevelPredictions, img Size, training bool) ([]box.Box, []float32) {
	preN, postN := c.TopN(training)
	coder := c.BoxCoder()
	w, h := float32(img.W), float32(img.H)
	var boxes []box.Box
	var scores []float32
	var lvls []int
	for l, lp := range levels {
		if len(lp.Anchors) != len(lp.Logits) || len(lp.Anchors) != len(lp.Deltas) {
			panic(fmt.Sprintf("detection.FilterProposalsLevels: level %d: %d anchors, %d logits, %d deltas",
				l, len(lp.Anchors), len(lp.Logits), len(lp.Deltas)))
		}
		for _, i := range topN(lp.Logits, preN) {
			b, s, ok := c.candidate(coder, lp.Deltas[i], lp.Anchors[i], lp.Logits[i], w, h)
			if !ok {
				continue
			}
			boxes = append(boxes, b)
			scores = append(scores, s)
			lvls = append(lvls, l)
		}
	}
	keep := box.BatchedNMS(boxes, scores, lvls, c.NMSThresh)
	if len(keep) > postN {
		keep = keep[:postN]
	}
	outB := make([]box.Box, len(keep))
	outS := make([]float32, len(keep))
	for k, i := range keep {
		outB[k], outS[k] = boxes[i], scores[i]
	}
	return outB, outS
}

// levelShape is one feature level of the multi-level proposal op.
type levelShape struct {
	anchors []box.Box
	fh, fw  int
}

// multiProposalOp runs FilterProposalsLevels on each image of a batch
// during a run: inputs objectness [N, A, Hi, Wi] and deltas [N, 4A, Hi, Wi]
// of each level in turn (2L inputs); output [N*P, 5] RoI rows (RoIRows, P =
// rows); the proposals and scores go to the batch. See batchOp.
type multiProposalOp struct {
	batchOp
	r      *RegionProposalNetwork
	levels []levelShape
	a      int
}

func (op *multiProposalOp) Arity() int { return 2 * len(op.levels) }
func (op *multiProposalOp) Type() hm.Type {
	ts := make([]hm.Type, 0, 2*len(op.levels)+1)
	for range op.levels {
		ts = append(ts, tensorType(4), tensorType(4))
	}
	return hm.NewFnType(append(ts, tensorType(2))...)
}

func (op *multiProposalOp) Do(in ...G.Value) (G.Value, error) {
	b := op.b
	obj := make([][]float32, len(op.levels))
	dlt := make([][]float32, len(op.levels))
	for l, lv := range op.levels {
		var err error
		if obj[l], err = nodeData("Proposals", fmt.Sprintf("level %d objectness", l), in[2*l], []int{b.n, op.a, lv.fh, lv.fw}); err != nil {
			return nil, err
		}
		if dlt[l], err = nodeData("Proposals", fmt.Sprintf("level %d deltas", l), in[2*l+1], []int{b.n, 4 * op.a, lv.fh, lv.fw}); err != nil {
			return nil, err
		}
	}
	rows := make([]float32, 0, 5*b.n*op.rows)
	preds := make([]LevelPredictions, len(op.levels))
	for i := range b.n {
		for l, lv := range op.levels {
			n := op.a * lv.fh * lv.fw
			logits, ds := FlattenRPN(obj[l][i*n:(i+1)*n], dlt[l][4*i*n:4*(i+1)*n], op.a, lv.fh, lv.fw)
			preds[l] = LevelPredictions{Anchors: lv.anchors, Logits: logits, Deltas: ds}
		}
		b.proposals[i], b.scores[i] = op.r.Config.FilterProposalsLevels(preds, b.imgs[i], b.training)
		rows = RoIRows(rows, b.proposals[i], i, op.rows)
	}
	return RoITensor(rows), nil
}

// forwardLevels is RegionProposalNetwork.forward on the maps named Levels:
// the shared head on each, anchors of every level (AnchorGenerator.Level,
// at AnchorGenerator.Strides: torchvision's from the padded size,
// Detectron2's the level's own stride),
// the multi-level proposal op and, for a training batch, the loss over the
// levels' concatenated anchors.
func (r *RegionProposalNetwork) forwardLevels(feats []Feature, b *batch) (*rpnOutputs, error) {
	if n := r.Config.Anchors.NumLevels(); n != len(r.Levels) {
		return nil, fmt.Errorf("detection: RPN: %d feature levels %v but anchors for %d", len(r.Levels), r.Levels, n)
	}
	o := &rpnOutputs{}
	op := &multiProposalOp{r: r, a: r.Config.Anchors.NumAnchors()}
	var objs, dlts, ins []*G.Node
	for l, name := range r.Levels {
		f, err := featureNamed(feats, name)
		if err != nil {
			return nil, fmt.Errorf("detection: RPN: %w", err)
		}
		obj, dlt, err := r.Head.Forward(f)
		if err != nil {
			return nil, fmt.Errorf("detection: RPN level %q: %w", name, err)
		}
		fh, fw := obj.Shape()[2], obj.Shape()[3]
		sh, sw := r.Config.Anchors.Strides(b.padded.H, b.padded.W, fh, fw, f.Spec.Stride)
		anchors := r.Config.Anchors.Level(l).Anchors(fh, fw, sh, sw)
		o.anchors = append(o.anchors, anchors...)
		op.levels = append(op.levels, levelShape{anchors: anchors, fh: fh, fw: fw})
		objs, dlts, ins = append(objs, obj), append(dlts, dlt), append(ins, obj, dlt)
	}
	_, post := r.Config.TopN(b.training)
	op.batchOp = batchOp{name: "ProposalsLevels", b: b, rows: post}
	var err error
	if o.proposals, err = G.ApplyOp(op, ins...); err != nil {
		return nil, fmt.Errorf("detection: RPN proposals: %w", err)
	}
	if b.training {
		if o.loss, err = NewRPNLossLevels(objs, dlts, nil); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// LevelMapper assigns RoIs to pyramid levels by their size (Lin et al.
// 2017, eq. 1), as torchvision's LevelMapper: level = floor(Canonical +
// log2(sqrt(area)/CanonicalSize) + Eps) with Eps outside the logarithm
// (torchvision: 4, 224, 1e-6), or floor(Canonical + log2(sqrt(area)/
// CanonicalSize + Eps)) with EpsInLog (Detectron2's
// assign_boxes_to_levels, Eps 1e-8), computed in float32, clamped to [Min,
// Max]. area = (x2-x1)*(y2-y1) in input pixels.
type LevelMapper struct {
	Min, Max      int // levels of the finest and coarsest maps (2, 5)
	Canonical     int // level of a CanonicalSize box (4)
	CanonicalSize float32
	Eps           float32
	EpsInLog      bool
}

// Level returns the level of b in [Min, Max].
func (m LevelMapper) Level(b box.Box) int {
	s := float32(math.Sqrt(float64((b.X2 - b.X1) * (b.Y2 - b.Y1))))
	var v float32
	if m.EpsInLog {
		v = float32(m.Canonical) + log2f(s/m.CanonicalSize+m.Eps)
	} else {
		v = float32(m.Canonical) + log2f(s/m.CanonicalSize) + m.Eps
	}
	f := math.Floor(float64(v))
	switch {
	case math.IsNaN(f) || f < float64(m.Min):
		return m.Min
	case f > float64(m.Max):
		return m.Max
	}
	return int(f)
}

func log2f(x float32) float32 { return float32(math.Log2(float64(x))) }

// InferScale returns torchvision's MultiScaleRoIAlign scale of a feature
// map featSize cells high for an image imageSize pixels high:
// 2^round(log2(featSize/imageSize)) (1/4 for P2 of any image of more than
// a few dozen pixels).
func InferScale(featSize, imageSize int) float32 {
	return float32(math.Exp2(math.Round(math.Log2(float64(featSize) / float64(imageSize)))))
}
