package detection

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/backbone"
	"resdet/box"
	"resdet/nn"
	"resdet/ops"
)

// This file runs training steps (approximate joint training, as
// torchvision's GeneralizedRCNN in training mode) on the detector's forward
// graph built in training mode (FasterRCNN.forward: the parts add their
// targets and loss nodes), with the gradients of the losses' sum w.r.t.
// every learnable parameter. One graph serves each padded batch shape; the
// loss selections change every step, the graph does not.

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
	// Precision of the training step (zero: fp32), decided on this CPU by
	// nn.Precision.ResolveTraining: auto is bf16 only with AMX, bf16 needs
	// AVX512_BF16 or AMX (an error naming the CPU's ISA otherwise). With
	// bf16, mixed precision: every convolution of the backbone (the C4 res5
	// box head included), the RPN head's 3x3 and the box heads' layers
	// (DC5's fc1/fc2, FPN's TwoMLPHead or ConvFCHead) run forward and
	// backward in bf16 (nn.ConvOpts.BF16, nn.LinearOpts.BF16: operands
	// rounded to bf16, float32 accumulation and gradients; activations
	// bf16 inside the backbone's stages and out of the RPN head's 3x3,
	// float32 elsewhere); the parameters stay float32 (the optimiser's
	// master copy, rounded to bf16 on every run), as do batch norm, the FPN
	// neck, the RPN's 1x1 predictions, the box predictor and the losses. The weights (State, checkpoints) are
	// float32 whatever the precision.
	Precision nn.Precision
}

// NewTrainable builds a detector whose backbone convolutions are learnable
// (Learnables lists them with the heads'), for Trainer. It returns an error
// if cfg is not valid, or has Detectron2's predictor layout
// (RoIHeadsConfig.BackgroundLast): the trainer's losses take torchvision's,
// background first, to which checkpoint.ReadInit moves a Detectron2
// file's predictor rows.
func NewTrainable(cfg Config, o TrainBuild) (*FasterRCNN, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RoIHeads.BackgroundLast {
		return nil, fmt.Errorf("detection: training %s: RoIHeads.BackgroundLast (Detectron2's predictor layout) is for inference; train with the background first (checkpoint.ReadInit converts a Detectron2 detector)", cfg.Arch)
	}
	prec, err := resolvePrecisionFor(o.Precision, true)
	if err != nil {
		return nil, err
	}
	depth, _ := ArchDepth(cfg.Arch)
	m, err := build(cfg, backbone.Config{Depth: depth, Norm: o.Norm, Train: o.Norm == backbone.TrainableBN, FreezeAt: o.FreezeAt, BF16: prec.BF16}, o.Rng)
	if err != nil {
		return nil, err
	}
	m.Precision = prec
	return m, nil
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
	fwd       *forwardGraph
	losses    [4]*G.Node
	grads     G.Nodes
	ex        *nn.Executor
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
	padImages(buf, n, ph, pw, func(i int) ([]float32, int, int) { return batch[i].Data, batch[i].W, batch[i].H })
	b := tg.fwd.b
	b.imgs, b.gts, b.labels = b.imgs[:0], b.gts[:0], b.labels[:0]
	for _, im := range batch {
		b.imgs = append(b.imgs, Size{W: im.W, H: im.H})
		b.gts = append(b.gts, im.Boxes)
		b.labels = append(b.labels, im.Labels)
	}
	b.opts, b.rng = t.cfg.Targets, r
	if err := G.Let(tg.fwd.x, tensor.New(tensor.WithShape(n, 3, ph, pw), tensor.WithBacking(buf))); err != nil {
		return Losses{}, fmt.Errorf("detection: train step: %w", err)
	}
	// The RPN's targets depend only on the anchors and the ground truth;
	// the RoI heads sample theirs during the run, from the proposals.
	if err := tg.model.RPN.setTargets(tg.fwd.rpn, b, r); err != nil {
		return Losses{}, fmt.Errorf("detection: train step: %w", err)
	}
	if err := tg.ex.Run(); err != nil {
		return Losses{}, fmt.Errorf("detection: train step: %w", err)
	}
	t.cur = tg
	var v [4]float64
	for i, l := range tg.losses {
		f, err := ops.Scalar(l.Value())
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
	return t.cur.fwd.b.fg
}

// LastRoIs returns the number of RoIs sampled in the last Step over the
// batch, foreground and background (padding rows not counted): the
// normaliser of both box-head losses.
func (t *Trainer) LastRoIs() int {
	if t.cur == nil {
		return 0
	}
	return t.cur.fwd.b.rois
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
	fwd, err := m.forward(x, true)
	if err != nil {
		return nil, wrap(err)
	}
	losses := [4]*G.Node{fwd.rpn.loss.Objectness, fwd.rpn.loss.BoxReg, fwd.roi.loss.Classifier, fwd.roi.loss.BoxReg}
	total := losses[0]
	for _, l := range losses[1:] {
		if total, err = G.Add(total, l); err != nil {
			return nil, wrap(err)
		}
	}
	grads, err := G.Grad(total, params...)
	if err != nil {
		return nil, wrap(fmt.Errorf("gradients: %w", err))
	}
	ex, err := nn.NewExecutor(m.g, append(losses[:], grads...)...)
	if err != nil {
		return nil, wrap(err)
	}
	return &trainGraph{model: m, n: n, ph: ph, pw: pw, fwd: fwd, losses: losses, grads: grads, ex: ex}, nil
}

// shapeCopy builds a detector like m on a new graph (same backbone
// configuration and heads), with zero weights: Step loads the owner's.
func (m *FasterRCNN) shapeCopy() (*FasterRCNN, error) {
	return build(m.Config, m.Backbone.Config, nil)
}
