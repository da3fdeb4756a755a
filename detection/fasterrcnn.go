package detection

import (
	"fmt"
	"math/rand"
	"runtime"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/backbone"
	"resdet/box"
	"resdet/nn"
)

// Feature is one named feature map handed from the backbone (or the neck)
// to the heads: Map is [N, C, Hi, Wi] with C = Spec.Channels, one cell per
// Spec.Stride input pixels. The C4 detector has one, "res4".
type Feature struct {
	Name string
	Map  *G.Node
	Spec backbone.ShapeSpec
	// Chain, if not nil, is Map in the layout of the backbone's blocked
	// chain (backbone.Feature.Chain: float32 nChw<B>c, or bf16
	// channels-last as a BFloat16 node). The RPN head's first convolution
	// reads it as it is when its precision matches (RPNHead.Forward);
	// everything else reads Map.
	// The neck's outputs have none.
	Chain *G.Node
}

// featureNamed returns the feature named name, or an error listing the
// names there are.
func featureNamed(feats []Feature, name string) (Feature, error) {
	names := make([]string, len(feats))
	for i, f := range feats {
		if f.Name == name {
			return f, nil
		}
		names[i] = f.Name
	}
	return Feature{}, fmt.Errorf("no feature map %q (have %v)", name, names)
}

// Neck turns the backbone's feature maps into the heads' (an FPN makes P2
// .. P6 from res2 .. res5). The C4 detector has none (nil).
type Neck interface {
	Forward(in []Feature) ([]Feature, error)
	Learnables() G.Nodes
}

// FasterRCNN is a Faster R-CNN detector, composed as torchvision's
// GeneralizedRCNN of a transform (Config.Transform, applied by the caller
// up to padding), a backbone handing named feature maps to an optional
// neck, a region proposal network and RoI heads; the C4 detector of He et
// al. 2015 has the ResNet trunk up to res4, no neck, and res5 + mean as the
// box head. All parameters live on one graph. forward assembles the parts
// once for Predict and the Trainer alike; Predict builds that graph for each
// padded input size it meets and runs it with an nn.Executor. A FasterRCNN
// is not safe for concurrent use.
type FasterRCNN struct {
	Config   Config
	Backbone *backbone.ResNet
	Neck     Neck // nil: the heads see the backbone's maps
	// BackboneOut names the backbone outputs handed to the neck or the
	// heads (backbone.ResNet.Outputs): "res2" .. "res5" for an FPN; nil for
	// the C4 trunk's "res4".
	BackboneOut []string
	RPN         *RegionProposalNetwork
	RoIHeads    *RoIHeads
	// Precision is what Options.Precision resolved to on this CPU: whether
	// the heavy ops run in bf16, and why.
	Precision nn.PrecisionChoice

	g      *G.ExprGraph
	inBuf  []float32 // padded image, backs every Predict input node
	roiBuf []float32 // RoI rows of Predict's box stage
	// Predict's class logits [K, NC] and box regression, gathered over
	// the box stage's chunks.
	logitBuf, deltaBuf []float32
	boxChunk           int // maxBoxChunk if 0 (tests set it)
	pred               *predictGraph
	batches            map[string]*batch // by input shape and mode: see forward
}

// predictGraph is Predict's graph for one padded input size, in two
// stages around the proposals (which leave the graph for plain Go anyway):
// the features and the RPN (fwd, run by ex), then the RoI heads on exactly
// the image's proposals (box, rebuilt when their number changes).
type predictGraph struct {
	ph, pw int
	fwd    *forwardGraph
	ex     *nn.Executor
	box    *boxStage
	chunks int // box stage runs in the last Predict
}

// maxBoxChunk bounds the RoIs the box stage takes in one run: the
// proposals go through it in the fewest chunks of at most maxBoxChunk
// (1000 proposals: 4 runs of 250). Each RoI's computation is independent
// of the others, so the results are those of one run on all of them,
// while the RoI features and the box head's activations (a C4 head on
// 1000 RoIs: [1000, 1024, 14, 14] pooled, 800 MB, then res5's) take a
// quarter of the memory.
const maxBoxChunk = 256

// boxStage is the RoI heads on k proposals of one image, on input nodes
// bound to the feature maps of fwd's last run (no copies: fwd's outputs
// keep their buffers until its next run). Its executor shares fwd's buffer
// pool, so the heads reuse what the first stage freed.
type boxStage struct {
	k     int
	feats []Feature // input nodes bound to fwd's feature maps
	rois  *G.Node   // [k, 5], backed by FasterRCNN.roiBuf
	out   *roiOutputs
	ex    *nn.Executor
}

// New builds a detector on a new graph. It returns an error if cfg is not
// valid.
func New(cfg Config, o Options) (*FasterRCNN, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	prec, err := resolvePrecision(o)
	if err != nil {
		return nil, err
	}
	depth, _ := ArchDepth(cfg.Arch)
	bcfg := backbone.Config{Depth: depth, Inference: !o.Train, BF16: prec.BF16}
	if o.Train {
		bcfg.FreezeAt = 2
	}
	m, err := build(cfg, bcfg, o.Rng)
	if err != nil {
		return nil, err
	}
	m.Precision = prec
	return m, nil
}

// setPrecision marks the heads' bf16 ops (the RPN head's 3x3, the box
// head's layers; the C4 res5 head and the backbone follow
// backbone.Config.BF16) and says whether their weights stay constant while
// the graph runs (inference: converted to bf16 once) or change between
// runs (training: rounded on every run).
func (m *FasterRCNN) setPrecision(bf16, training bool) {
	m.RPN.Head.BF16, m.RPN.Head.varW = bf16, training
	switch h := m.RoIHeads.BoxHead.(type) {
	case *FCHead:
		h.BF16, h.varW = bf16, training
	case *TwoMLPHead:
		h.BF16, h.varW = bf16, training
	case *ConvFCHead:
		h.BF16, h.varW = bf16, training
	}
}

// resolvePrecision decides o.Precision on this CPU: nn.Precision.Resolve
// for inference, nn.Precision.ResolveTraining with o.Train.
func resolvePrecision(o Options) (nn.PrecisionChoice, error) {
	return resolvePrecisionFor(o.Precision, o.Train)
}

// resolvePrecisionFor decides p on this CPU for training or inference.
func resolvePrecisionFor(p nn.Precision, training bool) (nn.PrecisionChoice, error) {
	p, err := nn.ParsePrecision(string(p))
	if err != nil {
		return nn.PrecisionChoice{}, fmt.Errorf("detection: precision: %w", err)
	}
	resolve := p.Resolve
	if training {
		resolve = p.ResolveTraining
	}
	c, err := resolve()
	if err != nil {
		return nn.PrecisionChoice{}, fmt.Errorf("detection: precision: %w", err)
	}
	return c, nil
}

// build assembles a detector for a valid cfg on a new graph: the backbone
// bcfg describes, the RPN and the RoI heads sized from the backbone's
// feature map, initialised from rng (nil: zero weights).
func build(cfg Config, bcfg backbone.Config, rng *rand.Rand) (*FasterRCNN, error) {
	m, err := buildParts(cfg, bcfg, rng)
	if err != nil {
		return nil, err
	}
	m.setPrecision(bcfg.BF16, !bcfg.Inference)
	return m, nil
}

// buildParts is build without the heads' precision (setPrecision).
func buildParts(cfg Config, bcfg backbone.Config, rng *rand.Rand) (*FasterRCNN, error) {
	cfg.ResNet.apply(&bcfg)
	if IsFPN(cfg.Arch) {
		return buildFPN(cfg, bcfg, rng)
	}
	g := G.NewGraph()
	bb, err := backbone.New(g, bcfg, rng)
	if err != nil {
		return nil, fmt.Errorf("detection: %s backbone: %w", cfg.Arch, err)
	}
	in := featureName(cfg.Arch)
	spec := bb.OutputShapes()[in]
	// A res5 head on the blocked layout (frozen BN) reads RoIAlign's output
	// in that layout (the bf16 chain's in bf16).
	pooler := &SingleLevelPooler{In: in, Op: cfg.RoIOp}
	var box BoxHead
	if ArchDC5(cfg.Arch) {
		box = NewFCHead(g, spec.Channels, cfg.RoIOp.Size, cfg.FCDim, rng)
	} else {
		res5 := bb.Res5()
		pooler.Blocked = res5.Blocked()
		pooler.BF16 = pooler.Blocked && res5.BF16Chain()
		// Detectron2's res5 (stride on the 1x1) reads every other pooled
		// row and column: RoIAlign computes only those.
		strided := cfg.RoIOp.Op == RoIOpAlign && res5.InputStride() > 1
		if strided {
			pooler.Step = res5.InputStride()
		}
		box = &Res5Head{Res5: res5, Input: backbone.StageInput{Blocked: pooler.Blocked, Strided: strided}}
	}
	m := &FasterRCNN{Config: cfg, Backbone: bb, g: g}
	m.RPN = &RegionProposalNetwork{Config: cfg.RPN, In: in,
		Head: NewRPNHead(g, spec.Channels, cfg.RPN.Anchors.NumAnchors(), rng)}
	m.RoIHeads = &RoIHeads{
		Config:    cfg.RoIHeads,
		Pooler:    pooler,
		BoxHead:   box,
		Predictor: NewFastRCNNPredictorBoxes(g, box.OutChannels(), len(cfg.Classes)+1, cfg.RoIHeads.boxClasses(len(cfg.Classes)+1), rng),
	}
	return m, nil
}

// NumClasses returns NC = K+1, counting the background.
func (m *FasterRCNN) NumClasses() int { return m.RoIHeads.NumClasses() }

// Learnables returns the trainable parameters: the backbone's (see
// Options.Train), the neck's, the RPN head's and the predictor's (the C4
// box head's res5 is the backbone's).
func (m *FasterRCNN) Learnables() G.Nodes {
	ns := m.Backbone.Learnables()
	if m.Neck != nil {
		ns = append(ns, m.Neck.Learnables()...)
	}
	for _, p := range m.headParams() {
		if !p.frozen {
			ns = append(ns, p.node)
		}
	}
	return ns
}

// featureName is the backbone output the heads of arch run on: "res5" for
// DC5 (dilated, stride 16), "res4" for C4.
func featureName(arch string) string {
	if ArchDC5(arch) {
		return "res5"
	}
	return "res4"
}

// features runs the backbone (and the neck) on x [N, 3, H, W]: the C4
// trunk's map, named "res4", DC5's "res5", or the outputs BackboneOut
// names through the neck (FPN: P2..P6 named "0" .. "3", "pool").
func (m *FasterRCNN) features(x *G.Node) ([]Feature, error) {
	names := m.BackboneOut
	if len(names) == 0 {
		names = []string{featureName(m.Config.Arch)}
	}
	fs, err := m.Backbone.Outputs(x, names...)
	if err != nil {
		return nil, fmt.Errorf("detection: %s trunk on %v: %w", m.Config.Arch, x.Shape(), err)
	}
	feats := backboneFeatures(fs)
	if m.Neck != nil {
		if feats, err = m.Neck.Forward(feats); err != nil {
			return nil, fmt.Errorf("detection: neck: %w", err)
		}
	}
	return feats, nil
}

// forwardGraph is the detector on one input node, as forward built it.
type forwardGraph struct {
	x     *G.Node // [N, 3, H, W], padded
	b     *batch
	feats []Feature
	rpn   *rpnOutputs
	roi   *roiOutputs // training graphs; Predict runs the RoI heads in its box stage
}

// forward assembles the detector on x [N, 3, H, W] (padded images): the
// features, the RPN (head, proposals, and its losses when training) and,
// when training, the RoI heads on the same graph (sampling, box head,
// losses). Predict and the Trainer's step both run it; Predict runs the RoI
// heads (RoIHeads.forward, as here) in a second graph on the image's
// proposals (boxStage), so that the box head runs on no more rows than
// there are proposals.
func (m *FasterRCNN) forward(x *G.Node, training bool) (*forwardGraph, error) {
	// A graph rebuilt for an input shape and mode seen before merges with
	// the first one (gorgonia merges nodes of equal hash), host ops
	// included: they must share its batch.
	s := x.Shape()
	key := fmt.Sprintf("%v:train=%v", s, training)
	b, ok := m.batches[key]
	if !ok {
		b = newBatch(key, s[0], Size{W: s[3], H: s[2]}, training)
		if m.batches == nil {
			m.batches = make(map[string]*batch)
		}
		m.batches[key] = b
	}
	feats, err := m.features(x)
	if err != nil {
		return nil, err
	}
	rpn, err := m.RPN.forward(feats, b)
	if err != nil {
		return nil, err
	}
	fg := &forwardGraph{x: x, b: b, feats: feats, rpn: rpn}
	if training {
		if fg.roi, err = m.RoIHeads.forward(feats, rpn.proposals, b); err != nil {
			return nil, err
		}
	}
	return fg, nil
}

// Image is one preprocessed input image: Data is [3, H, W] (CHW, row-major),
// normalised and resized as Config.Transform says (imageio.Transform does
// both); OrigW x OrigH is the size before resizing, to which Predict maps
// the detections back.
type Image struct {
	Data         []float32
	W, H         int
	OrigW, OrigH int
}

// Predict runs the detector on one image and returns its detections in
// original image pixels (XYXY, continuous, see package box), best first,
// labels 1..K. Steps: pad to Config.Transform.SizeDivisible; features and
// RPN head (graph); anchors and proposal filtering (Go, in the graph's
// proposal op); RoI features, box head and predictor (a second graph) on
// the proposals; post-processing (Go); scaling by OrigW/W and OrigH/H as
// torchvision's transform.postprocess. It returns an error if img's sizes
// do not match its data.
func (m *FasterRCNN) Predict(img Image) (Detections, error) {
	if img.W < 1 || img.H < 1 || img.OrigW < 1 || img.OrigH < 1 || len(img.Data) != 3*img.W*img.H {
		return Detections{}, fmt.Errorf("detection: predict: image %dx%d (original %dx%d) with %d values, want 3*W*H > 0",
			img.W, img.H, img.OrigW, img.OrigH, len(img.Data))
	}
	pg, err := m.run(img)
	if err != nil {
		return Detections{}, err
	}
	proposals := pg.fwd.b.proposals[0]
	if len(proposals) == 0 {
		return Detections{}, nil
	}
	logits, deltas, err := m.runBoxStage(pg, proposals)
	if err != nil {
		return Detections{}, err
	}
	det := m.RoIHeads.Config.PostprocessDetections(logits, deltas, proposals, m.NumClasses(), Size{W: img.W, H: img.H})
	return m.RoIHeads.Config.Rescale(det, Size{W: img.W, H: img.H}, Size{W: img.OrigW, H: img.OrigH}), nil
}

// PredictProposals runs the features and the RPN on one image and returns
// the proposals in resized-image pixels (as torchvision's model.rpn), best
// first, with their objectness probabilities. OrigW and OrigH are not used.
func (m *FasterRCNN) PredictProposals(img Image) ([]box.Box, []float32, error) {
	pg, err := m.run(img)
	if err != nil {
		return nil, nil, err
	}
	return pg.fwd.b.proposals[0], pg.fwd.b.scores[0], nil
}

// run pads img into Predict's graph of its padded size and runs its first
// stage (features and RPN).
func (m *FasterRCNN) run(img Image) (*predictGraph, error) {
	if img.W < 1 || img.H < 1 || len(img.Data) != 3*img.W*img.H {
		return nil, fmt.Errorf("detection: predict: image %dx%d with %d values, want 3*W*H > 0", img.W, img.H, len(img.Data))
	}
	d := m.Config.Transform.SizeDivisible
	ph, pw := (img.H+d-1)/d*d, (img.W+d-1)/d*d
	pg, err := m.predictGraph(ph, pw)
	if err != nil {
		return nil, err
	}
	buf := m.inBuf[:3*ph*pw]
	padImages(buf, 1, ph, pw, func(int) ([]float32, int, int) { return img.Data, img.W, img.H })
	if err := G.Let(pg.fwd.x, tensor.New(tensor.WithShape(1, 3, ph, pw), tensor.WithBacking(buf))); err != nil {
		return nil, fmt.Errorf("detection: predict: %w", err)
	}
	pg.fwd.b.imgs = append(pg.fwd.b.imgs[:0], Size{W: img.W, H: img.H})
	if err := pg.ex.Run(); err != nil {
		return nil, fmt.Errorf("detection: predict: %w", err)
	}
	return pg, nil
}

// padImages writes n images into buf [n, 3, ph, pw]: image i (data
// [3, h, w] from img(i)) at the top-left, zeros elsewhere.
func padImages(buf []float32, n, ph, pw int, img func(i int) (data []float32, w, h int)) {
	clear(buf)
	for i := range n {
		data, w, h := img(i)
		for c := 0; c < 3; c++ {
			for y := 0; y < h; y++ {
				copy(buf[((i*3+c)*ph+y)*pw:], data[(c*h+y)*w:(c*h+y+1)*w])
			}
		}
	}
}

// predictGraph returns Predict's graph for a padded input of ph x pw,
// building it (and dropping the previous one) when the size changes.
func (m *FasterRCNN) predictGraph(ph, pw int) (*predictGraph, error) {
	if p := m.pred; p != nil && p.ph == ph && p.pw == pw {
		return p, nil
	}
	m.release()
	if n := 3 * ph * pw; cap(m.inBuf) < n {
		// Sized for the largest image the transform can produce, so that
		// input nodes of earlier sizes share this buffer.
		r := (m.Config.Transform.MaxSize + m.Config.Transform.SizeDivisible - 1) /
			m.Config.Transform.SizeDivisible * m.Config.Transform.SizeDivisible
		m.inBuf = make([]float32, max(n, 3*r*r))
	}
	x := G.NewTensor(m.g, tensor.Float32, 4, G.WithShape(1, 3, ph, pw), G.WithName(fmt.Sprintf("image_%dx%d", ph, pw)),
		G.WithValue(tensor.New(tensor.WithShape(1, 3, ph, pw), tensor.WithBacking(m.inBuf[:3*ph*pw]))))
	fwd, err := m.forward(x, false)
	if err != nil {
		return nil, err
	}
	outs := []*G.Node{fwd.rpn.proposals}
	for _, f := range fwd.feats {
		outs = append(outs, f.Map)
	}
	ex, err := nn.NewExecutor(m.g, outs...)
	if err != nil {
		return nil, fmt.Errorf("detection: predict executor: %w", err)
	}
	m.pred = &predictGraph{ph: ph, pw: pw, fwd: fwd, ex: ex}
	return m.pred, nil
}

// runBoxStage runs the RoI heads on the proposals of pg's last run (one
// image) in chunks of at most maxBoxChunk RoIs, building the box stage when
// the chunk size changed, and returns the class logits [K, NC] and box
// regression [K, 4*NC or 4] of all K proposals (valid until the next
// Predict).
func (m *FasterRCNN) runBoxStage(pg *predictGraph, proposals []box.Box) (logits, deltas []float32, err error) {
	k := len(proposals)
	most := maxBoxChunk
	if m.boxChunk > 0 {
		most = m.boxChunk
	}
	chunks := (k + most - 1) / most
	size := (k + chunks - 1) / chunks
	if bs := pg.box; bs == nil || bs.k != size {
		if bs != nil {
			bs.ex.Close()
			pg.box = nil
		}
		bs, err := m.buildBoxStage(pg, size)
		if err != nil {
			return nil, nil, err
		}
		pg.box = bs
	}
	bs := pg.box
	pg.chunks = chunks
	// Bind the inputs every run: a node built for an earlier stage may have
	// been merged with this one and hold another buffer.
	for i, f := range bs.feats {
		if err := G.Let(f.Map, pg.fwd.feats[i].Map.Value()); err != nil {
			return nil, nil, fmt.Errorf("detection: predict: %w", err)
		}
	}
	nl, nd := bs.out.classLogits.Shape()[1], bs.out.boxRegression.Shape()[1]
	m.logitBuf, m.deltaBuf = grow(m.logitBuf, k*nl), grow(m.deltaBuf, k*nd)
	for c := range chunks {
		lo, hi := c*size, min((c+1)*size, k)
		// The last chunk may be short: RoIRows repeats its boxes.
		m.roiBuf = RoIRows(m.roiBuf[:0], proposals[lo:hi], 0, size)
		if err := G.Let(bs.rois, RoITensor(m.roiBuf)); err != nil {
			return nil, nil, fmt.Errorf("detection: predict: %w", err)
		}
		if err := bs.ex.Run(); err != nil {
			return nil, nil, fmt.Errorf("detection: predict: RoI heads: %w", err)
		}
		copy(m.logitBuf[lo*nl:hi*nl], values(bs.out.classLogits))
		copy(m.deltaBuf[lo*nd:hi*nd], values(bs.out.boxRegression))
	}
	return m.logitBuf, m.deltaBuf, nil
}

// grow returns buf resized to n values, reallocated only when too small.
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

// buildBoxStage builds the RoI heads on k RoIs and on input nodes shaped as
// pg's feature maps.
func (m *FasterRCNN) buildBoxStage(pg *predictGraph, k int) (*boxStage, error) {
	if cap(m.roiBuf) < 5*k {
		m.roiBuf = make([]float32, 0, 5*max(k, m.Config.RPN.PostNMSTopNTest))
	}
	bs := &boxStage{k: k}
	for _, f := range pg.fwd.feats {
		s := f.Map.Shape()
		in := G.NewTensor(m.g, tensor.Float32, len(s), G.WithShape(s...), G.WithName(fmt.Sprintf("%s_%v", f.Name, s)),
			G.WithValue(f.Map.Value()))
		bs.feats = append(bs.feats, Feature{Name: f.Name, Map: in, Spec: f.Spec})
	}
	bs.rois = G.NewTensor(m.g, tensor.Float32, 2, G.WithShape(k, 5), G.WithName(fmt.Sprintf("rois_%d", k)),
		G.WithValue(tensor.New(tensor.WithShape(k, 5), tensor.WithBacking(m.roiBuf[:5*k]))))
	var err error
	if bs.out, err = m.RoIHeads.forward(bs.feats, bs.rois, pg.fwd.b); err != nil {
		return nil, err
	}
	if bs.ex, err = nn.NewExecutor(m.g, bs.out.classLogits, bs.out.boxRegression); err != nil {
		return nil, fmt.Errorf("detection: box stage executor: %w", err)
	}
	if err := bs.ex.SharePool(pg.ex); err != nil {
		return nil, fmt.Errorf("detection: box stage executor: %w", err)
	}
	return bs, nil
}

// release closes Predict's executors and unbinds the values of every
// non-input node, so that graphs built for earlier sizes hold no memory.
// When there was a graph it also runs the garbage collector: its buffers
// (hundreds of MB at 800x1333) are garbage now, and without a collection
// the next size's graph would be allocated beside them (the collector
// waits for the heap to double), nearly doubling the peak memory whenever
// the image size changes.
func (m *FasterRCNN) release() {
	p := m.pred
	if p != nil {
		p.ex.Close()
		if p.box != nil {
			p.box.ex.Close()
		}
		m.pred = nil
	}
	m.g.UnbindAllNonInputs()
	if p != nil {
		runtime.GC()
	}
}

// SetRoIOp switches the RoI feature op of the box head (e.g. RoIPool on
// weights trained with RoIAlign) and drops Predict's graph.
func (m *FasterRCNN) SetRoIOp(c RoIOpConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	p, ok := m.RoIHeads.Pooler.(*SingleLevelPooler)
	if !ok {
		return fmt.Errorf("detection: SetRoIOp: the RoI pooler is a %T, not a single-level one", m.RoIHeads.Pooler)
	}
	m.Config.RoIOp, p.Op = c, c
	m.release()
	return nil
}

// PredictFLOPs returns the FLOPs of the convolutions and matrix multiplies
// (nn.Executor.FLOPs: two per multiply-add) of the last Predict's graphs:
// features and RPN head at its padded size, and the RoI heads on its
// proposals. It returns 0 before the first Predict.
func (m *FasterRCNN) PredictFLOPs() float64 {
	p := m.pred
	if p == nil {
		return 0
	}
	f := p.ex.FLOPs()
	if p.box != nil {
		f += float64(p.chunks) * p.box.ex.FLOPs()
	}
	return f
}

// Close frees Predict's executor and the engine's converted copies of
// constant weights (bf16 weights, the FPN neck's; nn.ReleaseConvBuffers):
// those are kept per weight address for the life of the process otherwise,
// so a closed detector's copies (R101-C4 in bf16: 99 MB) and its weights
// would stay. Other detectors convert theirs again on their next run. The
// detector stays usable.
func (m *FasterRCNN) Close() {
	m.release()
	nn.ReleaseConvBuffers()
}

// SetTestProposals sets how many proposals Predict keeps after NMS (n > 0;
// at least n are kept before it), as RPNConfig.PostNMSTopNTest, and drops
// Predict's graph.
func (m *FasterRCNN) SetTestProposals(n int) {
	m.Config.RPN.PostNMSTopNTest = n
	m.Config.RPN.PreNMSTopNTest = max(m.Config.RPN.PreNMSTopNTest, n)
	m.RPN.Config = m.Config.RPN
	m.release()
}
