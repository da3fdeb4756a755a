package detection

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/backbone"
	"resdet/box"
	"resdet/nn"
)

// Normalization maps 8-bit pixels to network input: out[c] =
// (pixel[c]/Range - Mean[c]) / Std[c], channels in RGB order or BGR. It has
// the fields (and meaning) of imageio.Normalization, which converts to it.
type Normalization struct {
	BGR   bool
	Range float32
	Mean  [3]float32
	Std   [3]float32
}

// ImageNetNormalization is torchvision's: RGB on [0, 1], mean [0.485,
// 0.456, 0.406], std [0.229, 0.224, 0.225].
func ImageNetNormalization() Normalization {
	return Normalization{Range: 255, Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225}}
}

// CaffeNormalization is the original Faster R-CNN's: BGR, 0..255, mean
// [102.9801, 115.9465, 122.7717] subtracted.
func CaffeNormalization() Normalization {
	return Normalization{BGR: true, Range: 1, Mean: [3]float32{102.9801, 115.9465, 122.7717}, Std: [3]float32{1, 1, 1}}
}

// TransformConfig is the preprocessing the detector expects (torchvision's
// GeneralizedRCNNTransform): normalise, resize so that the shorter side is
// MinSize and the longer at most MaxSize (bilinear), pad with zeros to a
// multiple of SizeDivisible. Package imageio implements the first two
// steps; Predict pads.
type TransformConfig struct {
	MinSize, MaxSize int // 600, 1000 (the paper's)
	SizeDivisible    int // 32
	Norm             Normalization
}

// DefaultTransformConfig returns 600/1000, padding to 32, ImageNet
// normalisation.
func DefaultTransformConfig() TransformConfig {
	return TransformConfig{MinSize: 600, MaxSize: 1000, SizeDivisible: 32, Norm: ImageNetNormalization()}
}

// Validate returns an error naming the field out of range.
func (c TransformConfig) Validate() error {
	if c.MinSize < 1 || c.MaxSize < 1 || c.SizeDivisible < 1 {
		return fmt.Errorf("detection: TransformConfig: MinSize %d, MaxSize %d, SizeDivisible %d: want all >= 1", c.MinSize, c.MaxSize, c.SizeDivisible)
	}
	if !(c.Norm.Range > 0) || !(c.Norm.Std[0] > 0 && c.Norm.Std[1] > 0 && c.Norm.Std[2] > 0) {
		return fmt.Errorf("detection: TransformConfig.Norm: Range %v, Std %v: want > 0", c.Norm.Range, c.Norm.Std)
	}
	return nil
}

// Config describes a Faster R-CNN C4 detector completely; native
// checkpoints carry it (see SaveCheckpoint).
type Config struct {
	// Arch is the backbone: "r18-c4", "r34-c4", "r50-c4", "r101-c4" (the
	// paper's) or "r152-c4": ResNet-N, C4 trunk, res5 as the box head.
	Arch string
	// Classes are the names of classes 1..K (label j is Classes[j-1]); the
	// network has K+1 outputs, class 0 the background.
	Classes   []string
	Transform TransformConfig
	RPN       RPNConfig
	RoIHeads  RoIHeadsConfig
	RoIOp     RoIOpConfig
}

// DefaultConfig returns the paper's test-time detector for arch and classes:
// torchvision's defaults (DefaultRPNConfig, DefaultRoIHeadsConfig,
// DefaultTransformConfig, RoIAlign 14x14) with 300 proposals after NMS.
func DefaultConfig(arch string, classes []string) Config {
	rpn := DefaultRPNConfig()
	rpn.PostNMSTopNTest = 300
	return Config{
		Arch:      arch,
		Classes:   append([]string(nil), classes...),
		Transform: DefaultTransformConfig(),
		RPN:       rpn,
		RoIHeads:  DefaultRoIHeadsConfig(),
		RoIOp:     DefaultRoIOpConfig(),
	}
}

// Archs lists the supported values of Config.Arch.
var archDepths = map[string]int{"r18-c4": 18, "r34-c4": 34, "r50-c4": 50, "r101-c4": 101, "r152-c4": 152}

// ArchDepth returns the ResNet depth of an architecture name ("r101-c4" ->
// 101), or an error listing the valid names.
func ArchDepth(arch string) (int, error) {
	if d, ok := archDepths[arch]; ok {
		return d, nil
	}
	return 0, fmt.Errorf("detection: unknown architecture %q (want r18-c4, r34-c4, r50-c4, r101-c4 or r152-c4)", arch)
}

// DefaultClassNames returns "class1".."classK".
func DefaultClassNames(k int) []string {
	s := make([]string, k)
	for i := range s {
		s[i] = "class" + strconv.Itoa(i+1)
	}
	return s
}

// Validate returns an error naming the first invalid field.
func (c Config) Validate() error {
	if _, err := ArchDepth(c.Arch); err != nil {
		return err
	}
	if len(c.Classes) < 1 {
		return fmt.Errorf("detection: Config.Classes is empty, want at least one class")
	}
	for i, n := range c.Classes {
		if strings.TrimSpace(n) == "" {
			return fmt.Errorf("detection: Config.Classes[%d] is empty", i)
		}
	}
	for _, v := range []interface{ Validate() error }{c.Transform, c.RPN, c.RoIHeads, c.RoIOp} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Options are the build options of New that a checkpoint does not carry.
type Options struct {
	// Rng initialises the weights (backbone as torchvision's ResNet, heads
	// as NewRPNHead and NewRoIHeads); nil leaves them zero for Load.
	Rng *rand.Rand
	// Train builds a backbone whose convolutions are learnable (frozen BN as
	// a separate scale and shift, backbone.Config.Inference off) with the
	// stem and res2 frozen (FreezeAt 2), for training with G.Grad.
	// Otherwise the batch norms are folded into the convolutions: the
	// fastest forward pass, with no backbone learnables.
	Train bool
}

// FasterRCNN is the C4 detector of He et al. 2015, composed as
// torchvision's GeneralizedRCNN of a transform (Config.Transform, applied by
// the caller up to padding), a backbone (C4 trunk), a region proposal
// network and RoI heads (res5 + predictor). All parameters live on one
// graph. Predict builds the forward graph for each input shape it meets and
// runs it with an nn.Executor; a FasterRCNN is not safe for concurrent use.
type FasterRCNN struct {
	Config   Config
	Backbone *backbone.ResNet
	RPN      *RegionProposalNetwork
	RoIHeads *RoIHeads

	g       *G.ExprGraph
	inBuf   []float32 // padded image, backs every image input node
	featBuf []float32 // C4 map copied out of stage 1, backs stage 2's input
	roiBuf  []float32 // RoI rows, backs stage 2's RoI input
	s1      *stage1
	s2      *stage2
}

// stage1 is the trunk and the RPN head for one padded input size.
type stage1 struct {
	ph, pw        int
	x             *G.Node // [1, 3, ph, pw]
	c4, obj, dlt  *G.Node
	ex            *nn.Executor
	featH, featW  int
	featC, anchor int
}

// stage2 is the box head for one feature size and RoI count.
type stage2 struct {
	fh, fw, k  int
	feat, rois *G.Node
	cls, bbox  *G.Node
	ex         *nn.Executor
}

// New builds a detector on a new graph. It returns an error if cfg is not
// valid.
func New(cfg Config, o Options) (*FasterRCNN, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	depth, _ := ArchDepth(cfg.Arch)
	bcfg := backbone.Config{Depth: depth, Inference: !o.Train}
	if o.Train {
		bcfg.FreezeAt = 2
	}
	return build(cfg, bcfg, o.Rng)
}

// build assembles a detector for a valid cfg on a new graph: the backbone
// bcfg describes, the RPN head and the RoI heads, initialised from rng (nil:
// zero weights).
func build(cfg Config, bcfg backbone.Config, rng *rand.Rand) (*FasterRCNN, error) {
	g := G.NewGraph()
	bb, err := backbone.New(g, bcfg, rng)
	if err != nil {
		return nil, fmt.Errorf("detection: %s backbone: %w", cfg.Arch, err)
	}
	c4 := bb.C4Out()
	m := &FasterRCNN{Config: cfg, Backbone: bb, g: g}
	m.RPN = &RegionProposalNetwork{Config: cfg.RPN, Head: NewRPNHead(g, c4.Channels, cfg.RPN.Anchors.NumAnchors(), rng)}
	m.RoIHeads = NewRoIHeads(g, cfg.RoIHeads, cfg.RoIOp, bb.Res5(), c4.Stride, len(cfg.Classes)+1, rng)
	return m, nil
}

// Graph returns the graph holding the parameters (for training code that
// builds its own forward and loss graph with the heads' Forward methods).
func (m *FasterRCNN) Graph() *G.ExprGraph { return m.g }

// NumClasses returns NC = K+1, counting the background.
func (m *FasterRCNN) NumClasses() int { return m.RoIHeads.NumClasses }

// Learnables returns the trainable parameters: the backbone's (see
// Options.Train), the RPN head's and the predictor's.
func (m *FasterRCNN) Learnables() G.Nodes {
	ns := m.Backbone.Learnables()
	ns = append(ns, m.RPN.Head.Learnables()...)
	return append(ns, m.RoIHeads.Learnables()...)
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
// labels 1..K. Steps: pad to Config.Transform.SizeDivisible; trunk and RPN
// head (graph); anchors and proposal filtering (Go); RoI features, res5 and
// predictor (graph) on the proposals; post-processing (Go); scaling by
// OrigW/W and OrigH/H as torchvision's transform.postprocess. It returns an
// error if img's sizes do not match its data.
func (m *FasterRCNN) Predict(img Image) (Detections, error) {
	if img.W < 1 || img.H < 1 || img.OrigW < 1 || img.OrigH < 1 || len(img.Data) != 3*img.W*img.H {
		return Detections{}, fmt.Errorf("detection: predict: image %dx%d (original %dx%d) with %d values, want 3*W*H > 0",
			img.W, img.H, img.OrigW, img.OrigH, len(img.Data))
	}
	d := m.Config.Transform.SizeDivisible
	ph, pw := (img.H+d-1)/d*d, (img.W+d-1)/d*d
	s1, err := m.stage1(ph, pw)
	if err != nil {
		return Detections{}, err
	}
	// Pad: the image at the top-left, zeros elsewhere.
	buf := m.inBuf[:3*ph*pw]
	clear(buf)
	for c := 0; c < 3; c++ {
		for y := 0; y < img.H; y++ {
			copy(buf[(c*ph+y)*pw:], img.Data[(c*img.H+y)*img.W:(c*img.H+y+1)*img.W])
		}
	}
	if err := G.Let(s1.x, tensor.New(tensor.WithShape(1, 3, ph, pw), tensor.WithBacking(buf))); err != nil {
		return Detections{}, fmt.Errorf("detection: predict: %w", err)
	}
	if err := s1.ex.Run(); err != nil {
		return Detections{}, fmt.Errorf("detection: predict: trunk: %w", err)
	}
	proposals, _ := m.RPN.Proposals(values(s1.obj), values(s1.dlt), s1.featH, s1.featW,
		Size{W: pw, H: ph}, Size{W: img.W, H: img.H}, false)
	if len(proposals) == 0 {
		return Detections{}, nil
	}
	cls, bbox, err := m.boxHead(s1, proposals)
	if err != nil {
		return Detections{}, err
	}
	det := m.RoIHeads.Config.PostprocessDetections(cls, bbox, proposals, m.NumClasses(), Size{W: img.W, H: img.H})
	sx, sy := float32(img.OrigW)/float32(img.W), float32(img.OrigH)/float32(img.H)
	for i, b := range det.Boxes {
		det.Boxes[i] = b.Scale(sx, sy)
	}
	return det, nil
}

// PredictProposals runs the trunk and the RPN only and returns the proposals
// in resized-image pixels (as torchvision's model.rpn), best first, with
// their objectness probabilities.
func (m *FasterRCNN) PredictProposals(img Image) ([]box.Box, []float32, error) {
	if img.W < 1 || img.H < 1 || len(img.Data) != 3*img.W*img.H {
		return nil, nil, fmt.Errorf("detection: proposals: image %dx%d with %d values", img.W, img.H, len(img.Data))
	}
	d := m.Config.Transform.SizeDivisible
	ph, pw := (img.H+d-1)/d*d, (img.W+d-1)/d*d
	s1, err := m.stage1(ph, pw)
	if err != nil {
		return nil, nil, err
	}
	buf := m.inBuf[:3*ph*pw]
	clear(buf)
	for c := 0; c < 3; c++ {
		for y := 0; y < img.H; y++ {
			copy(buf[(c*ph+y)*pw:], img.Data[(c*img.H+y)*img.W:(c*img.H+y+1)*img.W])
		}
	}
	if err := G.Let(s1.x, tensor.New(tensor.WithShape(1, 3, ph, pw), tensor.WithBacking(buf))); err != nil {
		return nil, nil, err
	}
	if err := s1.ex.Run(); err != nil {
		return nil, nil, fmt.Errorf("detection: proposals: trunk: %w", err)
	}
	b, s := m.RPN.Proposals(values(s1.obj), values(s1.dlt), s1.featH, s1.featW, Size{W: pw, H: ph}, Size{W: img.W, H: img.H}, false)
	return b, s, nil
}

// values returns a node's float32 data.
func values(n *G.Node) []float32 { return n.Value().Data().([]float32) }

// stage1 returns the trunk + RPN head executor for a padded input of ph x
// pw, building it (and dropping the previous one) when the size changes.
func (m *FasterRCNN) stage1(ph, pw int) (*stage1, error) {
	if s := m.s1; s != nil && s.ph == ph && s.pw == pw {
		return s, nil
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
	c4, err := m.Backbone.C4(x)
	if err != nil {
		return nil, fmt.Errorf("detection: %s trunk on %dx%d: %w", m.Config.Arch, pw, ph, err)
	}
	obj, dlt, err := m.RPN.Head.Forward(c4)
	if err != nil {
		return nil, err
	}
	ex, err := nn.NewExecutor(m.g, c4, obj, dlt)
	if err != nil {
		return nil, fmt.Errorf("detection: trunk executor: %w", err)
	}
	s := c4.Shape()
	m.s1 = &stage1{ph: ph, pw: pw, x: x, c4: c4, obj: obj, dlt: dlt, ex: ex, featC: s[1], featH: s[2], featW: s[3]}
	return m.s1, nil
}

// boxHead runs the second stage on the C4 map of s1's last run and the
// proposals; it returns the class logits [K, NC] and deltas [K, 4*NC].
func (m *FasterRCNN) boxHead(s1 *stage1, proposals []box.Box) (cls, bbox []float32, err error) {
	k := len(proposals)
	s2 := m.s2
	if s2 == nil || s2.fh != s1.featH || s2.fw != s1.featW || s2.k != k {
		if s2 != nil {
			s2.ex.Close()
			m.s2 = nil
		}
		if s2, err = m.buildStage2(s1, k); err != nil {
			return nil, nil, err
		}
		m.s2 = s2
	}
	copy(m.featBuf, values(s1.c4))
	m.roiBuf = RoIs(m.roiBuf[:0], proposals, 0)
	// Bind the inputs every run: a node built for an earlier size may have
	// been merged with this one and hold an older buffer.
	if err := G.Let(s2.feat, tensor.New(tensor.WithShape(s2.feat.Shape()...), tensor.WithBacking(m.featBuf))); err != nil {
		return nil, nil, err
	}
	if err := G.Let(s2.rois, RoITensor(m.roiBuf)); err != nil {
		return nil, nil, err
	}
	if err := s2.ex.Run(); err != nil {
		return nil, nil, fmt.Errorf("detection: predict: box head: %w", err)
	}
	return values(s2.cls), values(s2.bbox), nil
}

func (m *FasterRCNN) buildStage2(s1 *stage1, k int) (*stage2, error) {
	n := s1.featC * s1.featH * s1.featW
	if cap(m.featBuf) < n {
		m.featBuf = make([]float32, n)
	}
	m.featBuf = m.featBuf[:n]
	if post := m.Config.RPN.PostNMSTopNTest; cap(m.roiBuf) < 5*k {
		m.roiBuf = make([]float32, 0, 5*max(k, post))
	}
	feat := G.NewTensor(m.g, tensor.Float32, 4, G.WithShape(1, s1.featC, s1.featH, s1.featW),
		G.WithName(fmt.Sprintf("c4_%dx%d", s1.featH, s1.featW)),
		G.WithValue(tensor.New(tensor.WithShape(1, s1.featC, s1.featH, s1.featW), tensor.WithBacking(m.featBuf))))
	rois := G.NewTensor(m.g, tensor.Float32, 2, G.WithShape(k, 5), G.WithName(fmt.Sprintf("rois_%d", k)),
		G.WithValue(tensor.New(tensor.WithShape(k, 5), tensor.WithBacking(m.roiBuf[:5*k]))))
	cls, bbox, err := m.RoIHeads.Forward(feat, rois)
	if err != nil {
		return nil, err
	}
	ex, err := nn.NewExecutor(m.g, cls, bbox)
	if err != nil {
		return nil, fmt.Errorf("detection: box head executor: %w", err)
	}
	return &stage2{fh: s1.featH, fw: s1.featW, k: k, feat: feat, rois: rois, cls: cls, bbox: bbox, ex: ex}, nil
}

// release closes the executors and unbinds the values of every non-input
// node, so that graphs built for earlier sizes hold no memory.
func (m *FasterRCNN) release() {
	if m.s1 != nil {
		m.s1.ex.Close()
		m.s1 = nil
	}
	if m.s2 != nil {
		m.s2.ex.Close()
		m.s2 = nil
	}
	m.g.UnbindAllNonInputs()
}

// SetRoIOp switches the RoI feature op of the box head (e.g. RoIPool on
// weights trained with RoIAlign) and drops the built graphs' executors.
func (m *FasterRCNN) SetRoIOp(c RoIOpConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	m.Config.RoIOp, m.RoIHeads.RoIOp = c, c
	m.release()
	return nil
}

// Close frees the executors' memory. The detector stays usable.
func (m *FasterRCNN) Close() { m.release() }

// SetTestProposals sets how many proposals Predict keeps after NMS (n > 0;
// at least n are kept before it), as RPNConfig.PostNMSTopNTest.
func (m *FasterRCNN) SetTestProposals(n int) {
	m.Config.RPN.PostNMSTopNTest = n
	m.Config.RPN.PreNMSTopNTest = max(m.Config.RPN.PreNMSTopNTest, n)
	m.RPN.Config = m.Config.RPN
}
