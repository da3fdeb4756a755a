package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"resdet/datasets"
	"resdet/detection"
	"resdet/weights"
)

// Publisher says who published a training starting point (ReadInit): it
// fixes how the network computes (stride on the 1x1 or the 3x3
// convolution, input normalisation) and how the publisher trains from it.
type Publisher string

// The publishers of the files ReadInit accepts.
const (
	// PublisherTorchvision: torchvision's ImageNet ResNets (.pth or
	// .safetensors with torchvision's names) and FasterRCNN state_dicts.
	PublisherTorchvision Publisher = "torchvision"
	// PublisherMSRA: the original MSRA ImageNet ResNets of the Faster R-CNN
	// paper in the Caffe2 layout, as Detectron2 publishes them
	// (ImageNetPretrained/MSRA/R-50.pkl, R-101.pkl).
	PublisherMSRA Publisher = "msra"
	// PublisherDetectron2: Detectron2 model-zoo detectors (.pkl).
	PublisherDetectron2 Publisher = "detectron2"
	// PublisherResdet: our native checkpoints (train-det, detect --save).
	PublisherResdet Publisher = "resdet"
)

// Init is a starting point for training read from a file by ReadInit:
// an ImageNet ResNet (the backbone only) or a whole Faster R-CNN (for
// fine-tuning).
type Init struct {
	Path      string
	Publisher Publisher
	// Detector is set for files holding a whole Faster R-CNN; Config is
	// then its configuration as published (Classes as below) and the
	// predictor is in torchvision's layout, background first
	// (RoIHeadsConfig.BackgroundLast is false: Detectron2's background-last
	// rows are moved when the file is read).
	Detector bool
	Config   detection.Config
	// Classes names the detector's classes 1..K: the file's own for native
	// checkpoints, COCO's (80, or 90 ids with "N/A" gaps as torchvision's)
	// or VOC's (20) for published files of that many classes (Detectron2's
	// and torchvision's class orders), class1..classK otherwise.
	Classes []string
	// Depth and ResNet are the backbone's depth and the settings its
	// tensors fix (widths, groups, stride in the 1x1); DepthTensor is the
	// tensor that tells the depth (the last block of res4), for errors.
	Depth       int
	ResNet      detection.ResNetConfig
	DepthTensor string

	// state holds the tensors: detectors under our names; torchvision
	// backbones under torchvision's ResNet names; MSRA files under their
	// Caffe2 names (BackboneState maps them).
	state weights.State
}

// ReadInit reads a training starting point and says what it is:
//
//   - .pkl: a Detectron2 model-zoo detector (C4 or DC5), or an MSRA ImageNet
//     ResNet in Caffe2 names (R-50.pkl, R-101.pkl);
//   - .pth / .pt: a torchvision ImageNet ResNet classifier (conv1, layer1..4,
//     fc) or a torchvision FasterRCNN state_dict (the C4 construction, or
//     fasterrcnn_resnet50_fpn / _v2);
//   - .safetensors: a native checkpoint (train-det, detect --save) or a
//     ResNet with torchvision's names.
//
// A file with another extension is recognised by its first bytes (pickle,
// zip or safetensors). Errors are one line naming the file: an unknown
// format, a truncated or unreadable file, tensors of no known kind.
func ReadInit(path string) (*Init, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".pkl" && ext != ".pth" && ext != ".pt" && ext != ".safetensors" {
		kind, err := sniff(path)
		if err != nil {
			return nil, err
		}
		switch kind {
		case "pickle":
			if in, err := readPickleInit(path); err == nil {
				return in, nil
			}
			ext = ".pth" // a legacy torch.save file is a pickle too
		case "zip":
			ext = ".pth"
		default:
			ext = "." + kind
		}
	}
	switch ext {
	case ".pkl":
		return readPickleInit(path)
	case ".safetensors":
		return readSafetensorsInit(path)
	}
	raw, err := weights.LoadTorch(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return torchInit(path, raw)
}

// sniff returns "pickle", "zip" or "safetensors" from the first bytes of the
// file, or an error naming it as of an unknown format.
func sniff(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	defer f.Close()
	head := make([]byte, 9)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	head = head[:n]
	switch {
	case n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5:
		return "pickle", nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return "zip", nil
	case n == 9 && head[8] == '{' && binary.LittleEndian.Uint64(head) < 100<<20:
		return "safetensors", nil
	}
	return "", fmt.Errorf("checkpoint: %s: unknown format (not a pickle, a torch zip or a safetensors file): want a Detectron2 or MSRA .pkl, a torchvision .pth or a .safetensors checkpoint", path)
}

// readPickleInit reads a Detectron2 .pkl: a model-zoo detector or an MSRA
// backbone in Caffe2 names.
func readPickleInit(path string) (*Init, error) {
	ck, err := weights.ReadDetectron2(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	switch ck.Layout {
	case weights.Caffe2Flat:
		return msraInit(path, ck.State)
	case weights.Caffe2Blobs:
		return nil, fmt.Errorf("checkpoint: %s: a Detectron (v1) detection file (Caffe2 \"blobs\"): not supported; use a Detectron2 model-zoo file or an ImageNet backbone", path)
	}
	cfg, s, err := FromDetectron2Model(ck.State, path, "", nil)
	if err != nil {
		return nil, err
	}
	k := len(cfg.Classes)
	if err := backgroundFirst(s, k, path); err != nil {
		return nil, err
	}
	cfg.RoIHeads.BackgroundLast = false
	cfg.Classes = publishedClasses(k)
	in := &Init{Path: path, Publisher: PublisherDetectron2, Detector: true, Config: cfg, Classes: slices.Clone(cfg.Classes), state: s}
	return in, in.detectorBackbone()
}

// readSafetensorsInit reads a native checkpoint or a torchvision-named
// ResNet in safetensors.
func readSafetensorsInit(path string) (*Init, error) {
	s, meta, err := weights.ReadSafetensors(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if _, native := meta[FormatKey]; !native {
		return torchInit(path, s)
	}
	cfg, s, err := Read(path)
	if err != nil {
		return nil, err
	}
	if cfg.RoIHeads.BackgroundLast {
		if err := backgroundFirst(s, len(cfg.Classes), path); err != nil {
			return nil, err
		}
		cfg.RoIHeads.BackgroundLast = false
	}
	in := &Init{Path: path, Publisher: PublisherResdet, Detector: true, Config: cfg, Classes: slices.Clone(cfg.Classes), state: s}
	return in, in.detectorBackbone()
}

// torchInit classifies a state with torchvision's names: an ImageNet
// ResNet classifier, or a FasterRCNN (C4 construction or FPN).
func torchInit(path string, raw weights.State) (*Init, error) {
	switch {
	case has(raw, "conv1.weight") && has(raw, "layer1.0.conv1.weight"):
		s := make(weights.State, len(raw))
		for n, t := range raw {
			if !strings.HasSuffix(n, ".num_batches_tracked") {
				s[n] = t
			}
		}
		in := &Init{Path: path, Publisher: PublisherTorchvision, state: s}
		var err error
		in.Depth, in.ResNet, in.DepthTensor, err = inferResNet(path, torchvisionNames(""), s)
		return in, err
	case hasPrefix(raw, "backbone.fpn."):
		s, arch, k, err := FromTorchvisionFPN(raw)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
		}
		classes := publishedClasses(k)
		in := &Init{Path: path, Publisher: PublisherTorchvision, Detector: true, Config: detection.FPNConfig(arch, classes), Classes: classes, state: s}
		return in, in.detectorBackbone()
	case hasPrefix(raw, "rpn.head.") || hasPrefix(raw, "roi_heads."):
		s, k, err := FromTorchvision(raw)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
		}
		classes := publishedClasses(k)
		in := &Init{Path: path, Publisher: PublisherTorchvision, Detector: true, Classes: classes, state: s}
		if err := in.detectorBackbone(); err != nil {
			return nil, err
		}
		in.Config = detection.DefaultConfig(fmt.Sprintf("r%d-c4", in.Depth), classes)
		in.Config.ResNet = in.ResNet
		return in, nil
	}
	names := raw.Names()
	first := "none"
	if len(names) > 0 {
		first = names[0]
	}
	return nil, fmt.Errorf("checkpoint: %s: neither a torchvision ResNet classifier (conv1.weight, layer1.0.conv1.weight, ...) nor a Faster R-CNN (backbone.*, rpn.head.*, roi_heads.*): first tensor %s", path, first)
}

// detectorBackbone reads Depth, ResNet and DepthTensor from a detector's
// state (our names).
func (in *Init) detectorBackbone() error {
	var err error
	in.Depth, in.ResNet, in.DepthTensor, err = inferResNet(in.Path, torchvisionNames("backbone."), in.state)
	if err != nil {
		return err
	}
	// What the configuration says beyond the shapes (the stride's place,
	// DC5's dilation) is the file's.
	in.ResNet.StrideIn1x1, in.ResNet.Res5Dilation = in.Config.ResNet.StrideIn1x1, in.Config.ResNet.Res5Dilation
	return nil
}

// resNetNames names the tensors of a ResNet that inferResNet reads: the
// first convolution of block b of stage s (2..5), and conv k (1..3) of
// res2's first block.
type resNetNames struct {
	block func(stage, b int) string
	conv  func(k int) string
}

// torchvisionNames are torchvision's names, after prefix.
func torchvisionNames(prefix string) resNetNames {
	return resNetNames{
		block: func(s, b int) string { return fmt.Sprintf("%slayer%d.%d.conv1.weight", prefix, s-1, b) },
		conv:  func(k int) string { return fmt.Sprintf("%slayer1.0.conv%d.weight", prefix, k) },
	}
}

// caffe2Names are the MSRA files' Caffe2 names (res2_0_branch2a_w).
func caffe2Names() resNetNames {
	return resNetNames{
		block: func(s, b int) string { return fmt.Sprintf("res%d_%d_branch2a_w", s, b) },
		conv:  func(k int) string { return fmt.Sprintf("res2_0_branch2%c_w", 'a'+k-1) },
	}
}

// inferResNet reads a ResNet's depth (from res4's block count and whether
// res2's blocks have a third convolution) and widths, groups and res2's
// output channels (from res2's first block) from the tensors of s named by
// names. It returns the depth, the settings (zero values for torchvision's
// defaults) and the name of res4's last block. Errors name the file and the
// tensor.
func inferResNet(path string, names resNetNames, s weights.State) (int, detection.ResNetConfig, string, error) {
	res4 := 0
	for has(s, names.block(4, res4)) {
		res4++
	}
	bottleneck := has(s, names.conv(3))
	depths := map[int]int{2: 18, 6: 34}
	if bottleneck {
		depths = map[int]int{6: 50, 23: 101, 36: 152}
	}
	last := names.block(4, max(res4-1, 0))
	depth, ok := depths[res4]
	if !ok {
		return 0, detection.ResNetConfig{}, last, fmt.Errorf("checkpoint: %s: res4 has %d blocks (last %s): no ResNet depth has that many", path, res4, last)
	}
	var rc detection.ResNetConfig
	if !bottleneck {
		return depth, rc, last, nil
	}
	shape := func(k int) ([]int, error) {
		t, ok := s[names.conv(k)]
		if !ok || len(t.Shape) != 4 {
			return nil, fmt.Errorf("checkpoint: %s: tensor %s: missing or not 4-dimensional", path, names.conv(k))
		}
		return t.Shape, nil
	}
	c1, err := shape(1)
	if err != nil {
		return 0, rc, last, err
	}
	c2, err := shape(2)
	if err != nil {
		return 0, rc, last, err
	}
	c3, err := shape(3)
	if err != nil {
		return 0, rc, last, err
	}
	width := c1[0]
	if c2[1] < 1 || width%c2[1] != 0 {
		return 0, rc, last, fmt.Errorf("checkpoint: %s: tensor %s has shape %v: %d input channels per group do not divide the width %d", path, names.conv(2), c2, c2[1], width)
	}
	if groups := width / c2[1]; groups > 1 {
		rc.Groups, rc.WidthPerGroup = groups, width/groups
	} else if width != 64 {
		rc.WidthPerGroup = width
	}
	if c3[0] != 256 {
		rc.Res2OutChannels = c3[0]
	}
	return depth, rc, last, nil
}

// msraInit reads an MSRA ImageNet ResNet in Caffe2 names: stride in the
// 1x1 convolution (groups 1; FAIR's ResNeXt files put it on the 3x3).
func msraInit(path string, s weights.State) (*Init, error) {
	in := &Init{Path: path, Publisher: PublisherMSRA, state: s}
	var err error
	in.Depth, in.ResNet, in.DepthTensor, err = inferResNet(path, caffe2Names(), s)
	in.ResNet.StrideIn1x1 = in.ResNet.Groups <= 1
	return in, err
}

// State returns a detector's tensors under our names (predictor background
// first), or nil for a backbone.
func (in *Init) State() weights.State {
	if !in.Detector {
		return nil
	}
	return in.state
}

// BackboneState returns the ResNet's tensors under torchvision's names
// (the names backbone.ResNet.Load takes) for a backbone whose tensors and
// shapes are model (torchvision names, e.g. a detector's Backbone.State()):
// a torchvision file's as they are; an MSRA file's mapped as Detectron2's
// loader maps them (FromCaffe2Backbone: missing BN statistics filled with
// mean 0 and variance 1); a detector's backbone.* tensors.
func (in *Init) BackboneState(model map[string][]int) (weights.State, error) {
	switch {
	case in.Detector:
		out := make(weights.State)
		for n, t := range in.state {
			if rest, ok := strings.CutPrefix(n, "backbone."); ok && !strings.HasPrefix(n, "backbone.fpn.") {
				out[rest] = t
			}
		}
		return out, nil
	case in.Publisher == PublisherMSRA:
		prefixed := make(map[string][]int, len(model))
		for n, sh := range model {
			prefixed["backbone."+n] = sh
		}
		got, _, err := FromCaffe2Backbone(in.state, prefixed, in.Path)
		if err != nil {
			return nil, err
		}
		out := make(weights.State, len(got))
		for n, t := range got {
			out[strings.TrimPrefix(n, "backbone.")] = t
		}
		return out, nil
	}
	return in.state, nil
}

// Describe returns a short description of the file for a log line, e.g.
// "a Detectron2 r50-c4 detector (80 classes)" or "an MSRA ImageNet
// ResNet-101 (Caffe2 names)".
func (in *Init) Describe() string {
	switch {
	case in.Detector:
		who := map[Publisher]string{PublisherDetectron2: "Detectron2", PublisherTorchvision: "torchvision", PublisherResdet: "resdet"}[in.Publisher]
		return fmt.Sprintf("a %s %s detector (%d classes)", who, in.Config.Arch, len(in.Classes))
	case in.Publisher == PublisherMSRA:
		return fmt.Sprintf("an MSRA ImageNet ResNet-%d (Caffe2 names, Detectron2's ImageNetPretrained)", in.Depth)
	}
	return fmt.Sprintf("a torchvision ImageNet ResNet-%d", in.Depth)
}

// backgroundFirst moves a Detectron2 predictor (cls_score [K+1, D] with the
// background in the last row, bbox_pred [4K, D]) in s to torchvision's
// layout (background in row 0, bbox_pred [4(K+1), D] with zero background
// rows, which no loss or output reads), in place.
func backgroundFirst(s weights.State, k int, path string) error {
	for _, name := range []string{"weight", "bias"} {
		cn, bn := "roi_heads.box_predictor.cls_score."+name, "roi_heads.box_predictor.bbox_pred."+name
		c, okc := s[cn]
		b, okb := s[bn]
		if !okc || !okb || len(c.Shape) == 0 || c.Shape[0] != k+1 || len(b.Shape) == 0 || b.Shape[0] != 4*k {
			return fmt.Errorf("checkpoint: %s: predictor %s %v and %s %v: want %d and %d rows (background last)", path, cn, c.Shape, bn, b.Shape, k+1, 4*k)
		}
		row := len(c.Data) / c.Shape[0]
		cd := make([]float32, 0, len(c.Data))
		cd = append(cd, c.Data[k*row:]...)
		cd = append(cd, c.Data[:k*row]...)
		s[cn] = weights.Tensor{Shape: slices.Clone(c.Shape), Data: cd}
		bd := make([]float32, 4*row, len(b.Data)+4*row)
		bd = append(bd, b.Data...)
		s[bn] = weights.Tensor{Shape: append([]int{4 * (k + 1)}, b.Shape[1:]...), Data: bd}
	}
	return nil
}

// publishedClasses returns the class names of a published detector with k
// classes (see Init.Classes).
func publishedClasses(k int) []string {
	switch k {
	case 80:
		return datasets.COCOClasses()
	case 90:
		names := make([]string, 90)
		for i := range names {
			names[i] = "N/A"
		}
		ids, cls := datasets.COCOCategoryIDs(), datasets.COCOClasses()
		for i, id := range ids {
			names[id-1] = cls[i]
		}
		return names
	case 20:
		return datasets.VOCClasses()
	}
	return detection.DefaultClassNames(k)
}

func hasPrefix(s weights.State, prefix string) bool {
	for n := range s {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

// archName matches the C4 and DC5 architecture names ("r101-c4", "x101-c4",
// "r50-dc5"), whose depth an initialisation file may set.
var archName = regexp.MustCompile(`^[rx](\d+)-(c4|dc5)$`)

// FitArch returns the architecture a run starting from in trains, given
// arch (the run's, e.g. --arch) and whether it was chosen explicitly. A
// detector's architecture is the file's; a backbone's depth (and groups:
// "x" for ResNeXt) is the file's, with arch's kind (C4 or DC5). When arch
// was chosen and differs, the error names the file and the tensor that
// says so.
func (in *Init) FitArch(arch string, chosen bool) (string, error) {
	want := in.Config.Arch
	if !in.Detector {
		m := archName.FindStringSubmatch(arch)
		letter := "r"
		if in.ResNet.Groups > 1 {
			letter = "x"
		}
		switch {
		case m != nil:
			want = fmt.Sprintf("%s%d-%s", letter, in.Depth, m[2])
		default:
			if d, err := detection.ArchDepth(arch); err == nil && d == in.Depth {
				return arch, nil
			}
			want = fmt.Sprintf("%s%d-c4", letter, in.Depth)
		}
	}
	if arch == want || !chosen {
		return want, nil
	}
	what := "backbone"
	if in.Detector {
		what = "detector"
	}
	d, _ := detection.ArchDepth(arch)
	why := fmt.Sprintf("tensor %s: res4 has the blocks of ResNet-%d", in.DepthTensor, in.Depth)
	switch {
	case d != in.Depth:
	case (arch[0] == 'x') != (in.ResNet.Groups > 1):
		why = fmt.Sprintf("res2's tensor conv2.weight: %d groups", max(in.ResNet.Groups, 1))
	case detection.IsFPN(want):
		why = "it has backbone.fpn tensors (an FPN)"
	case detection.ArchDC5(want):
		why = "it has roi_heads.box_head.fc1.weight (DC5's box head on a dilated res5)"
	default:
		why = "it has no roi_heads.box_head tensors: res5 (backbone.layer4) is its box head (C4)"
	}
	return "", fmt.Errorf("checkpoint: %s: --arch %s, but the file's %s is %s (%s)", in.Path, arch, what, want, why)
}
