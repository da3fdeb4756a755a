package detection

import (
	"errors"
	"fmt"
	"hash"
	"math"
	"math/rand"
	"slices"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/backbone"
	"resdet/box"
	"resdet/nn"
)

// This file builds and runs the training step of the whole detector
// (approximate joint training, as torchvision's GeneralizedRCNN in training
// mode): one graph per padded batch shape holds the trunk, the RPN head,
// the RPN losses, an op that turns the RPN outputs into sampled RoIs and
// their targets in plain Go (no gradient flows through it: the proposals
// are constants for the second stage), RoI features, res5, the predictor,
// the box-head losses, and the gradients of their sum w.r.t. every
// learnable parameter. The loss ops' selections change every step; the
// graph does not.

// TrainBuild selects how NewTrainable builds a detector for training.
type TrainBuild struct {
	// Rng initialises the weights (nil: zero, to be filled by Load).
	Rng *rand.Rand
	// Norm: backbone.FrozenBN (the paper's, for an ImageNet-initialised
	// backbone) or backbone.TrainableBN (batch statistics; for training
	// from scratch). Checkpoints store BN as torchvision does, so either
	// loads into the frozen, folded inference detector.
	Norm backbone.Norm
	// FreezeAt as backbone.Config.FreezeAt: 2 (stem and res2 frozen, the
	// paper's for ImageNet initialisation) or 0 (nothing frozen).
	FreezeAt int
}

// NewTrainable builds a detector whose backbone convolutions are learnable
// (Learnables lists them with the heads'), for Trainer. It returns an error
// if cfg is not valid.
func NewTrainable(cfg Config, o TrainBuild) (*FasterRCNN, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	depth, _ := ArchDepth(cfg.Arch)
	return build(cfg, backbone.Config{Depth: depth, Norm: o.Norm, Train: o.Norm == backbone.TrainableBN, FreezeAt: o.FreezeAt}, o.Rng)
}

// TrainImage is one training image: Data is [3, H, W] (CHW, normalised and
// resized as Config.Transform says), Boxes its ground truth in its pixels
// (package box convention) and Labels their classes, 1..K. Name, if set,
// names the image in errors (its file path).
type TrainImage struct {
	Data   []float32
	W, H   int
	Boxes  []box.Box
	Labels []int
	Name   string
}

// what names the image in errors: its Name, else its position i in the batch.
func (im TrainImage) what(i int) string {
	if im.Name != "" {
		return im.Name
	}
	return fmt.Sprintf("image %d", i)
}

// Losses are the four training losses of one step (torchvision's names in
// the JSON tags), each a mean as RPNLoss and FastRCNNLoss define it.
type Losses struct {
	Objectness float64 `json:"loss_objectness"`
	RPNBoxReg  float64 `json:"loss_rpn_box_reg"`
	Classifier float64 `json:"loss_classifier"`
	BoxReg     float64 `json:"loss_box_reg"`
}

// Total returns the sum of the four losses (what the gradients are of).
func (l Losses) Total() float64 { return l.Objectness + l.RPNBoxReg + l.Classifier + l.BoxReg }

// TrainerConfig tunes a Trainer.
type TrainerConfig struct {
	// Targets chooses torchvision's or the paper's target rules.
	Targets TargetOptions
	// PadMultiple: a batch is padded to H and W multiples of it (0 means
	// Config.Transform.SizeDivisible). Coarser padding means fewer distinct
	// graphs.
	PadMultiple int
	// MaxGraphs bounds the step graphs (one per padded batch shape) whose
	// executors are kept; the least recently used is closed beyond it,
	// except the first shape's (on the detector itself), which is always
	// kept. 0 means 4.
	MaxGraphs int
}

// Trainer runs training steps of a detector built by NewTrainable (or New
// with Options.Train): Step computes the losses of a batch and the
// gradients of their sum, which Params exposes to an optimiser. The graph
// gives each image's second stage a fixed B = RoIHeads.Config.BatchSizePerImage
// rows. When the sampler draws fewer RoIs than B for an image (too few
// proposals with the ground truth), the extra rows are padding: they repeat
// the image's sampled RoIs (real boxes, so the box head sees the usual
// inputs) but the losses leave them out, so they get zero gradient with
// frozen BN. Both box-head losses are normalised by the number of real
// sampled RoIs of the batch, as torchvision's fastrcnn_loss (cross-entropy
// averaged over them; smooth L1 summed over the foreground RoIs and divided
// by the same count). With TrainableBN the padding rows still enter res5's batch
// statistics (and receive gradient through them).
//
// gorgonia cannot differentiate a graph that already holds another
// shape's gradient nodes, so the first padded batch shape is trained on the
// detector given to NewTrainer (its own graph) and each further shape gets
// its own copy of the detector. The weights live in one of them at a time,
// the owner: Step moves them (a full State/Load copy) to the detector of
// the batch's shape when that differs, and Sync moves them back to the
// detector given to NewTrainer. With a single shape (e.g. one image size)
// nothing is copied and no second set of weights exists. A Trainer is not
// safe for concurrent use.
type Trainer struct {
	m      *FasterRCNN
	cfg    TrainerConfig
	owner  *FasterRCNN // holds the current weights
	params map[*FasterRCNN]G.Nodes
	graphs []*trainGraph // most recently used last
	home   bool          // a step graph is built on m itself
	cur    *trainGraph
	inBuf  []float32
}

// ErrNonFiniteLoss is wrapped by the error Step returns when a loss is NaN
// or infinite.
var ErrNonFiniteLoss = errors.New("loss is not finite")

// trainGraph is the step graph of one padded batch shape.
type trainGraph struct {
	model     *FasterRCNN // this shape's copy of the detector
	n, ph, pw int
	x         *G.Node
	losses    [4]*G.Node
	grads     G.Nodes
	ex        *nn.Executor
	rpnCls    *lossOp
	rpnBox    *lossOp
	st        *stepState
	fh, fw    int
	anchors   []box.Box
}

// stepState is what the proposal op reads and writes during one Run.
type stepState struct {
	m       *FasterRCNN
	opts    TargetOptions
	n       int
	fh, fw  int
	padded  Size
	imgs    []Size
	gts     [][]box.Box
	labels  [][]int
	rng     *rand.Rand
	ce, box *lossOp
	fg      int // foreground RoIs sampled in the last run
	rois    int // RoIs sampled in the last run (padding rows excluded)
}

// NewTrainer returns a trainer for m, whose Learnables it trains.
func NewTrainer(m *FasterRCNN, c TrainerConfig) *Trainer {
	if c.PadMultiple <= 0 {
		c.PadMultiple = m.Config.Transform.SizeDivisible
	}
	if c.MaxGraphs <= 0 {
		c.MaxGraphs = 4
	}
	return &Trainer{m: m, cfg: c, owner: m, params: map[*FasterRCNN]G.Nodes{m: m.Learnables()}}
}

// Sync moves the current weights (and BN statistics) into the detector
// given to NewTrainer, which must not be changed otherwise while training
// (call Sync before reading it: checkpoints, evaluation; and after changing
// it, e.g. loading a checkpoint, before the next Step only if Sync was
// called since the last Step).
func (t *Trainer) Sync() error {
	if t.owner == t.m {
		return nil
	}
	if err := t.m.Load(t.owner.State()); err != nil {
		return fmt.Errorf("detection: trainer sync: %w", err)
	}
	t.owner = t.m
	return nil
}

// Params returns the learnable parameters with their gradients of the last
// Step, for optim.NewSGD (names are the node names). A gradient read before
// the first Step is an error.
func (t *Trainer) Params() []G.ValueGrad {
	ps := t.params[t.m]
	out := make([]G.ValueGrad, len(ps))
	for i, p := range ps {
		out[i] = trainGrad{t: t, i: i, name: p.Name()}
	}
	return out
}

// trainGrad is parameter i of the weights' owner with its gradient of the
// last Step.
type trainGrad struct {
	t    *Trainer
	i    int
	name string
}

func (g trainGrad) Value() G.Value { return g.t.params[g.t.owner][g.i].Value() }
func (g trainGrad) Name() string   { return g.name }
func (g trainGrad) Grad() (G.Value, error) {
	if g.t.cur == nil || g.t.cur.model != g.t.owner {
		return nil, fmt.Errorf("detection: trainer: gradient of %s read without a step since the last Sync", g.name)
	}
	return g.t.cur.grads[g.i].Value(), nil
}

// Step runs the forward and backward pass on batch (at least one image)
// and returns the losses. The images are padded at the bottom and right to
// a common size (multiples of TrainerConfig.PadMultiple). r draws the RPN
// anchors and the RoIs of the loss (consumed image by image: RPN first,
// then RoIs). It returns an error naming the image for a bad ground truth or
// label, or if a loss is not finite.
func (t *Trainer) Step(batch []TrainImage, r *rand.Rand) (Losses, error) {
	if len(batch) == 0 {
		return Losses{}, fmt.Errorf("detection: train step: empty batch")
	}
	nc := t.m.NumClasses()
	var ph, pw int
	for i, im := range batch {
		if im.W < 1 || im.H < 1 || len(im.Data) != 3*im.W*im.H {
			return Losses{}, fmt.Errorf("detection: train step: %s is %dx%d with %d values, want 3*W*H > 0", im.what(i), im.W, im.H, len(im.Data))
		}
		if len(im.Boxes) != len(im.Labels) {
			return Losses{}, fmt.Errorf("detection: train step: %s has %d boxes and %d labels", im.what(i), len(im.Boxes), len(im.Labels))
		}
		for j, l := range im.Labels {
			if l < 1 || l >= nc {
				return Losses{}, fmt.Errorf("detection: train step: %s box %d has label %d, want 1..%d", im.what(i), j, l, nc-1)
			}
		}
		ph, pw = max(ph, im.H), max(pw, im.W)
	}
	d := t.cfg.PadMultiple
	ph, pw = (ph+d-1)/d*d, (pw+d-1)/d*d
	tg, err := t.graph(len(batch), ph, pw)
	if err != nil {
		return Losses{}, err
	}
	if tg.model != t.owner {
		if err := tg.model.Load(t.owner.State()); err != nil {
			return Losses{}, fmt.Errorf("detection: train step: %w", err)
		}
		t.owner = tg.model
	}
	n := len(batch)
	buf := t.inBuf[:n*3*ph*pw]
	clear(buf)
	st := tg.st
	st.imgs, st.gts, st.labels = st.imgs[:0], st.gts[:0], st.labels[:0]
	for i, im := range batch {
		for c := 0; c < 3; c++ {
			for y := 0; y < im.H; y++ {
				copy(buf[((i*3+c)*ph+y)*pw:], im.Data[(c*im.H+y)*im.W:(c*im.H+y+1)*im.W])
			}
		}
		st.imgs = append(st.imgs, Size{W: im.W, H: im.H})
		st.gts = append(st.gts, im.Boxes)
		st.labels = append(st.labels, im.Labels)
	}
	st.rng = r
	if err := G.Let(tg.x, tensor.New(tensor.WithShape(n, 3, ph, pw), tensor.WithBacking(buf))); err != nil {
		return Losses{}, fmt.Errorf("detection: train step: %w", err)
	}
	// RPN targets depend only on the anchors and the ground truth.
	rpn, err := t.m.Config.RPN.SampleRPNBatch(tg.anchors, st.gts, st.imgs, t.cfg.Targets, r)
	if err != nil {
		return Losses{}, fmt.Errorf("detection: train step: %w", err)
	}
	if err := setRPNSelection(tg.rpnCls, tg.rpnBox, rpn, t.m.Config.RPN.Anchors.NumAnchors(), tg.fh*tg.fw); err != nil {
		return Losses{}, fmt.Errorf("detection: train step: %w", err)
	}
	if err := tg.ex.Run(); err != nil {
		return Losses{}, fmt.Errorf("detection: train step: %w", err)
	}
	t.cur = tg
	var v [4]float64
	for i, l := range tg.losses {
		f, err := lossScalar(l.Value())
		if err != nil {
			return Losses{}, fmt.Errorf("detection: train step: loss %d: %w", i, err)
		}
		v[i] = float64(f)
	}
	ls := Losses{Objectness: v[0], RPNBoxReg: v[1], Classifier: v[2], BoxReg: v[3]}
	if tot := ls.Total(); math.IsNaN(tot) || math.IsInf(tot, 0) {
		return ls, fmt.Errorf("detection: train step: %w (%+v)", ErrNonFiniteLoss, ls)
	}
	return ls, nil
}

// LastForeground returns the number of foreground RoIs sampled in the last
// Step over the batch (padding rows not counted).
func (t *Trainer) LastForeground() int {
	if t.cur == nil {
		return 0
	}
	return t.cur.st.fg
}

// LastRoIs returns the number of RoIs sampled in the last Step over the
// batch, foreground and background (padding rows not counted): the
// normaliser of both box-head losses.
func (t *Trainer) LastRoIs() int {
	if t.cur == nil {
		return 0
	}
	return t.cur.st.rois
}

// Close frees every step graph's executor.
func (t *Trainer) Close() {
	for _, g := range t.graphs {
		g.ex.Close()
	}
	t.graphs, t.cur = nil, nil
}

// graph returns the step graph for n images padded to ph x pw, building it
// if needed.
func (t *Trainer) graph(n, ph, pw int) (*trainGraph, error) {
	for i, g := range t.graphs {
		if g.n == n && g.ph == ph && g.pw == pw {
			t.graphs = append(slices.Delete(t.graphs, i, i+1), g)
			return g, nil
		}
	}
	if len(t.graphs) >= t.cfg.MaxGraphs {
		// The least recently used copy; m's own graph stays.
		if i := slices.IndexFunc(t.graphs, func(g *trainGraph) bool { return g.model != t.m }); i >= 0 {
			old := t.graphs[i]
			if t.owner == old.model {
				if err := t.Sync(); err != nil {
					return nil, err
				}
			}
			old.ex.Close()
			if t.cur == old {
				t.cur = nil
			}
			delete(t.params, old.model)
			t.graphs = slices.Delete(t.graphs, i, i+1)
		}
	}
	if sz := n * 3 * ph * pw; cap(t.inBuf) < sz {
		t.inBuf = make([]float32, sz)
	}
	g, err := t.build(n, ph, pw)
	if err != nil {
		return nil, err
	}
	t.graphs = append(t.graphs, g)
	return g, nil
}

func (t *Trainer) build(n, ph, pw int) (*trainGraph, error) {
	wrap := func(err error) error {
		return fmt.Errorf("detection: training graph %dx%dx%d: %w", n, ph, pw, err)
	}
	m := t.m
	if t.home {
		var err error
		if m, err = t.m.shapeCopy(); err != nil {
			return nil, wrap(err)
		}
	}
	t.home = true // also after a failed build: m's graph may hold part of it
	params := m.Learnables()
	t.params[m] = params
	x := G.NewTensor(m.g, tensor.Float32, 4, G.WithShape(n, 3, ph, pw), G.WithName(fmt.Sprintf("train_image_%dx%dx%d", n, ph, pw)),
		G.WithValue(tensor.New(tensor.WithShape(n, 3, ph, pw), tensor.WithBacking(t.inBuf[:n*3*ph*pw]))))
	c4, err := m.Backbone.C4(x)
	if err != nil {
		return nil, wrap(err)
	}
	obj, dlt, err := m.RPN.Head.Forward(c4)
	if err != nil {
		return nil, wrap(err)
	}
	fs := obj.Shape()
	fh, fw := fs[2], fs[3]
	lObj, err := BCEWithLogitsLoss(obj, []int{0}, []float32{0})
	if err != nil {
		return nil, wrap(err)
	}
	lRPNBox, err := SmoothL1Loss(dlt, nil, nil, RPNBoxBeta, 1)
	if err != nil {
		return nil, wrap(err)
	}
	per := m.RoIHeads.Config.BatchSizePerImage
	st := &stepState{m: m, opts: t.cfg.Targets, n: n, fh: fh, fw: fw, padded: Size{W: pw, H: ph}}
	rois, err := G.ApplyOp(&proposalOp{st: st, k: n * per, key: fmt.Sprintf("%dx%dx%d", n, ph, pw)}, obj, dlt)
	if err != nil {
		return nil, wrap(err)
	}
	cls, bbox, err := m.RoIHeads.Forward(c4, rois)
	if err != nil {
		return nil, wrap(err)
	}
	lCls, err := CrossEntropyLoss(cls, make([]int, n*per))
	if err != nil {
		return nil, wrap(err)
	}
	lBox, err := SmoothL1Loss(bbox, nil, nil, BoxHeadBeta, float32(n*per))
	if err != nil {
		return nil, wrap(err)
	}
	st.ce, st.box = lCls.Op().(*lossOp), lBox.Op().(*lossOp)
	total, err := G.Add(lObj, lRPNBox)
	if err == nil {
		total, err = G.Add(total, lCls)
	}
	if err == nil {
		total, err = G.Add(total, lBox)
	}
	if err != nil {
		return nil, wrap(err)
	}
	grads, err := G.Grad(total, params...)
	if err != nil {
		return nil, wrap(fmt.Errorf("gradients: %w", err))
	}
	losses := [4]*G.Node{lObj, lRPNBox, lCls, lBox}
	ex, err := nn.NewExecutor(m.g, append(losses[:], grads...)...)
	if err != nil {
		return nil, wrap(err)
	}
	return &trainGraph{
		model: m, n: n, ph: ph, pw: pw, x: x, losses: losses, grads: grads, ex: ex,
		rpnCls: lObj.Op().(*lossOp), rpnBox: lRPNBox.Op().(*lossOp), st: st, fh: fh, fw: fw,
		anchors: m.Config.RPN.Anchors.Anchors(fh, fw, Stride(ph, fh), Stride(pw, fw)),
	}, nil
}

// setRPNSelection points the RPN loss ops at the sampled anchors of batch,
// with RPNLoss's layout and normalisation (objectness [N, A, Hi, Wi],
// deltas [N, 4A, Hi, Wi], both divided by the number of sampled anchors).
func setRPNSelection(cls, bx *lossOp, batch []RPNSample, a, hw int) error {
	cls.idx, cls.target = cls.idx[:0], cls.target[:0]
	bx.idx, bx.target = bx.idx[:0], bx.target[:0]
	for img, s := range batch {
		for _, set := range [][]int{s.Pos, s.Neg} {
			for _, i := range set {
				p, k := i/a, i%a
				cls.idx = append(cls.idx, (img*a+k)*hw+p)
				cls.target = append(cls.target, float32(max(s.Targets.Labels[i], 0)))
			}
		}
		for _, i := range s.Pos {
			p, k := i/a, i%a
			for j := 0; j < 4; j++ {
				bx.idx = append(bx.idx, (img*4*a+4*k+j)*hw+p)
				bx.target = append(bx.target, s.Targets.Deltas[i][j])
			}
		}
	}
	if len(cls.idx) == 0 {
		return fmt.Errorf("no anchor sampled in the batch")
	}
	cls.norm, bx.norm = float32(len(cls.idx)), float32(len(cls.idx))
	return nil
}

// proposalOp turns the RPN outputs of a batch into the RoIs of the second
// stage during a training run: proposals (training top-N), ground truth
// added, targets assigned and sampled (SelectTrainingSamples), each image's
// rows padded up to BatchSizePerImage with repeats of its sampled RoIs; it
// also sets the box-head loss selections (padding rows labelled
// LabelIgnore, left out of both losses, whose normaliser is the number of
// sampled RoIs). Inputs objectness [N, A, Hi, Wi] and deltas
// [N, 4A, Hi, Wi]; output RoIs [K, 5], K = N*BatchSizePerImage. Not
// differentiable.
type proposalOp struct {
	nn.HostOp
	st  *stepState
	k   int
	key string
}

func (op *proposalOp) Arity() int { return 2 }
func (op *proposalOp) Type() hm.Type {
	return hm.NewFnType(tensorType(4), tensorType(4), tensorType(2))
}
func (op *proposalOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.k, 5}, nil
}
func (op *proposalOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *proposalOp) Hashcode() uint32      { return hashOf(op) }
func (op *proposalOp) String() string        { return "TrainProposals{" + op.key + "}" }
func (op *proposalOp) DiffWRT(n int) []bool  { return make([]bool, n) }
func (op *proposalOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("detection: training proposals are not differentiable")
}

func (op *proposalOp) Do(in ...G.Value) (G.Value, error) {
	st := op.st
	m := st.m
	a := m.Config.RPN.Anchors.NumAnchors()
	hw := st.fh * st.fw
	obj, err := roiData("TrainProposals", "objectness", in[0], []int{st.n, a, st.fh, st.fw})
	if err != nil {
		return nil, err
	}
	dlt, err := roiData("TrainProposals", "deltas", in[1], []int{st.n, 4 * a, st.fh, st.fw})
	if err != nil {
		return nil, err
	}
	props := make([][]box.Box, st.n)
	for i := range st.n {
		props[i], _ = m.RPN.Proposals(obj[i*a*hw:(i+1)*a*hw], dlt[i*4*a*hw:(i+1)*4*a*hw], st.fh, st.fw, st.padded, st.imgs[i], true)
	}
	samples, err := m.RoIHeads.Config.SelectTrainingSamples(props, st.gts, st.labels, st.opts, st.rng)
	if err != nil {
		return nil, fmt.Errorf("detection: training RoIs: %w", err)
	}
	per := op.k / st.n
	nc := m.NumClasses()
	rows := make([]float32, 0, 5*op.k)
	ce, bx := st.ce, st.box
	ce.idx = ce.idx[:0]
	bx.idx, bx.target = bx.idx[:0], bx.target[:0]
	st.fg, st.rois = 0, 0
	for img, s := range samples {
		if s.Len() == 0 {
			return nil, fmt.Errorf("detection: training RoIs: image %d has no RoI", img)
		}
		if s.Len() > per {
			return nil, fmt.Errorf("detection: training RoIs: image %d has %d sampled RoIs, more than the %d rows", img, s.Len(), per)
		}
		st.rois += s.Len()
		for j := range per {
			q := j % s.Len()
			b, l := s.RoIs[q], s.Labels[q]
			row := len(ce.idx)
			rows = append(rows, float32(img), b.X1, b.Y1, b.X2, b.Y2)
			if j >= s.Len() {
				ce.idx = append(ce.idx, LabelIgnore)
				continue
			}
			ce.idx = append(ce.idx, l)
			if l > 0 {
				st.fg++
				for c := 0; c < 4; c++ {
					bx.idx = append(bx.idx, row*4*nc+4*l+c)
					bx.target = append(bx.target, s.Deltas[q][c])
				}
			}
		}
	}
	ce.norm, bx.norm = float32(st.rois), float32(st.rois)
	return RoITensor(rows), nil
}

// shapeCopy builds a detector like m on a new graph (same backbone
// configuration and heads), with zero weights: Step loads the owner's.
func (m *FasterRCNN) shapeCopy() (*FasterRCNN, error) {
	return build(m.Config, m.Backbone.Config, nil)
}
