package checkpoint

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"resdet/detection"
	"resdet/fpn"
	"resdet/weights"
)

// Detectron2Arch is what the tensors of a Detectron2 model-zoo file say
// about the detector they belong to (InferDetectron2).
type Detectron2Arch struct {
	// Arch is the detection.Config.Arch name: "r50-c4", "x101-c4" (groups
	// > 1), "r101-dc5", "r50-fpn".
	Arch string
	// Depth is the ResNet depth, from the number of res4 blocks (and whether
	// the blocks have a conv3).
	Depth int
	// Kind is "c4" (res5 in roi_heads), "dc5" (res5 in the backbone, fc1/fc2
	// box head) or "fpn" (backbone.bottom_up, fpn_lateral*).
	Kind string
	// ResNet holds the widths and groups read from res2.0's shapes, and
	// StrideIn1x1 for groups 1 (Detectron2's R50/R101 configs; its ResNeXt
	// configs put the stride on the 3x3).
	ResNet detection.ResNetConfig
	// NumClasses is K, cls_score's rows minus one (the background).
	NumClasses int
	// FCDim is the width of the fc1/fc2 box head (DC5, FPN): fc1's rows.
	FCDim int
	// FPNChannels is the FPN's width (FPN): fpn_lateral2's output channels.
	FPNChannels int
}

// d2FPNConv matches a Detectron2 FPN convolution tensor: fpn_lateral{2..5}
// (1x1) or fpn_output{2..5} (3x3), weight or bias.
var d2FPNConv = regexp.MustCompile(`^backbone\.fpn_(lateral|output)([2-5])\.(weight|bias)$`)

// d2FPNName maps a Detectron2 FPN tensor name to ours (package fpn's,
// torchvision's): fpn_lateral{L} -> fpn.inner_blocks.{L-2}.0,
// fpn_output{L} -> fpn.layer_blocks.{L-2}.0; "" if it is not one.
func d2FPNName(name string) string {
	m := d2FPNConv.FindStringSubmatch(name)
	if m == nil {
		return ""
	}
	blocks := map[string]string{"lateral": "inner_blocks", "output": "layer_blocks"}[m[1]]
	level, _ := strconv.Atoi(m[2])
	return fmt.Sprintf("%s%s.%d.0.%s", fpn.Prefix, blocks, level-2, m[3])
}

// d2Block matches a Detectron2 ResNet block tensor after its stage prefix.
var d2Block = regexp.MustCompile(`^res([2-5])\.(\d+)\.(conv[1-3]|shortcut)\.(weight|norm\.(?:weight|bias|running_mean|running_var))$`)

// d2ResNetName maps a Detectron2 ResNet tensor name (without "backbone." or
// "backbone.bottom_up."; roi_heads.res5's with "res5.") to torchvision's
// (stem.conv1 -> conv1 / bn1, resS.B -> layer(S-1).B, convN.norm -> bnN,
// shortcut -> downsample.0 / .1), or "" if it is not one.
func d2ResNetName(name string) string {
	switch {
	case name == "stem.conv1.weight":
		return "conv1.weight"
	case strings.HasPrefix(name, "stem.conv1.norm."):
		n := strings.TrimPrefix(name, "stem.conv1.norm.")
		if n == "weight" || n == "bias" || n == "running_mean" || n == "running_var" {
			return "bn1." + n
		}
		return ""
	}
	m := d2Block.FindStringSubmatch(name)
	if m == nil {
		return ""
	}
	stage, _ := strconv.Atoi(m[1])
	layer, mod, tail := fmt.Sprintf("layer%d.%s.", stage-1, m[2]), m[3], m[4]
	norm, isNorm := strings.CutPrefix(tail, "norm.")
	switch {
	case mod == "shortcut" && isNorm:
		return layer + "downsample.1." + norm
	case mod == "shortcut":
		return layer + "downsample.0.weight"
	case isNorm:
		return layer + "bn" + strings.TrimPrefix(mod, "conv") + "." + norm
	}
	return layer + mod + ".weight"
}

// FromDetectron2 renames a Detectron2 model-zoo state (weights.ReadDetectron2's
// State) to the detector's parameter names: the ResNet (backbone.*,
// backbone.bottom_up.*, roi_heads.res5.* as layer4) to backbone.<torchvision
// name>, the FPN's backbone.fpn_lateral{L} and fpn_output{L} (L = 2..5) to
// backbone.fpn.inner_blocks.{L-2}.0 and layer_blocks.{L-2}.0 (package fpn),
// proposal_generator.rpn_head.{conv, objectness_logits,
// anchor_deltas} to rpn.head.{conv, cls_logits, bbox_pred},
// roi_heads.box_head.fc1/fc2 and roi_heads.box_predictor.* unchanged. The
// extras Detectron2 ignores (weights.Detectron2Extra) are dropped; any
// other name is an error naming the tensor. file names the file in errors.
func FromDetectron2(s weights.State, file string) (weights.State, error) {
	out := make(weights.State, len(s))
	for _, name := range s.Names() {
		if weights.Detectron2Extra(name) {
			continue
		}
		var native string
		switch {
		case strings.HasPrefix(name, "backbone.bottom_up."):
			if n := d2ResNetName(strings.TrimPrefix(name, "backbone.bottom_up.")); n != "" {
				native = "backbone." + n
			}
		case strings.HasPrefix(name, "backbone.fpn_"):
			native = d2FPNName(name)
		case strings.HasPrefix(name, "backbone."):
			if n := d2ResNetName(strings.TrimPrefix(name, "backbone.")); n != "" {
				native = "backbone." + n
			}
		case strings.HasPrefix(name, "roi_heads.res5."):
			if n := d2ResNetName(strings.TrimPrefix(name, "roi_heads.")); n != "" {
				native = "backbone." + n
			}
		case strings.HasPrefix(name, "proposal_generator.rpn_head."):
			rest := strings.TrimPrefix(name, "proposal_generator.rpn_head.")
			mod, tail, _ := strings.Cut(rest, ".")
			if to, ok := map[string]string{"conv": "conv", "objectness_logits": "cls_logits", "anchor_deltas": "bbox_pred"}[mod]; ok &&
				(tail == "weight" || tail == "bias") {
				native = "rpn.head." + to + "." + tail
			}
		case strings.HasPrefix(name, "roi_heads.box_predictor."), strings.HasPrefix(name, "roi_heads.box_head.fc"):
			native = name
		}
		if native == "" {
			return nil, fmt.Errorf("checkpoint: %s: unexpected tensor %s (not a Detectron2 Faster R-CNN)", file, name)
		}
		out[native] = s[name]
	}
	return out, nil
}

// shapeOf returns the shape of tensor name in s, or an error naming the file
// and the tensor when it is missing or has not dims dimensions.
func shapeOf(s weights.State, file, name string, dims int) ([]int, error) {
	t, ok := s[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint: %s: no tensor %s (not a Detectron2 Faster R-CNN?)", file, name)
	}
	if len(t.Shape) != dims {
		return nil, fmt.Errorf("checkpoint: %s: tensor %s has shape %v, want %d dimensions", file, name, t.Shape, dims)
	}
	return t.Shape, nil
}

// InferDetectron2 reads the architecture from the tensor names and shapes of
// a Detectron2 model-zoo state (its own names, before FromDetectron2).
// Errors name the file and the tensor.
func InferDetectron2(s weights.State, file string) (Detectron2Arch, error) {
	var a Detectron2Arch
	prefix := "backbone."
	switch {
	case has(s, "backbone.bottom_up.stem.conv1.weight"):
		a.Kind, prefix = "fpn", "backbone.bottom_up."
	case has(s, "roi_heads.res5.0.conv1.weight"):
		a.Kind = "c4"
	case has(s, "backbone.res5.0.conv1.weight") && has(s, "roi_heads.box_head.fc1.weight"):
		a.Kind = "dc5"
	default:
		if has(s, "conv1_w") || has(s, "res2_0_branch2a_w") {
			return a, fmt.Errorf("checkpoint: %s: Caffe2 tensor names (conv1_w): an ImageNet backbone, not a detector", file)
		}
		return a, fmt.Errorf("checkpoint: %s: no roi_heads.res5.0.conv1.weight, backbone.res5.0.conv1.weight or backbone.bottom_up.stem.conv1.weight: not a Detectron2 Faster R-CNN", file)
	}
	res4 := 0
	for has(s, fmt.Sprintf("%sres4.%d.conv1.weight", prefix, res4)) {
		res4++
	}
	bottleneck := has(s, prefix+"res2.0.conv3.weight")
	depths := map[int]int{2: 18, 6: 34}
	if bottleneck {
		depths = map[int]int{6: 50, 23: 101, 36: 152}
	}
	d, ok := depths[res4]
	if !ok {
		return a, fmt.Errorf("checkpoint: %s: %sres4 has %d blocks (last %sres4.%d.conv1.weight): no ResNet depth has that many",
			file, prefix, res4, prefix, res4-1)
	}
	a.Depth = d
	c1, err := shapeOf(s, file, prefix+"res2.0.conv1.weight", 4)
	if err != nil {
		return a, err
	}
	c2, err := shapeOf(s, file, prefix+"res2.0.conv2.weight", 4)
	if err != nil {
		return a, err
	}
	last := prefix + "res2.0.conv2.weight"
	if bottleneck {
		last = prefix + "res2.0.conv3.weight"
	}
	out, err := shapeOf(s, file, last, 4)
	if err != nil {
		return a, err
	}
	width := c1[0]
	if c2[1] < 1 || width%c2[1] != 0 {
		return a, fmt.Errorf("checkpoint: %s: tensor %sres2.0.conv2.weight has shape %v: %d input channels per group do not divide the width %d",
			file, prefix, c2, c2[1], width)
	}
	groups := width / c2[1]
	if bottleneck {
		a.ResNet = detection.ResNetConfig{StrideIn1x1: groups == 1, WidthPerGroup: width / groups, Res2OutChannels: out[0]}
		if groups > 1 {
			a.ResNet.Groups = groups
		}
		if a.ResNet.WidthPerGroup == 64 && groups == 1 {
			a.ResNet.WidthPerGroup = 0
		}
		if a.ResNet.Res2OutChannels == 256 {
			a.ResNet.Res2OutChannels = 0
		}
	} else {
		a.ResNet = detection.ResNetConfig{StrideIn1x1: true}
	}
	if a.Kind == "dc5" {
		a.ResNet.Res5Dilation = 2
	}
	cls, err := shapeOf(s, file, "roi_heads.box_predictor.cls_score.weight", 2)
	if err != nil {
		return a, err
	}
	if cls[0] < 2 {
		return a, fmt.Errorf("checkpoint: %s: tensor roi_heads.box_predictor.cls_score.weight has shape %v, want at least 2 rows", file, cls)
	}
	a.NumClasses = cls[0] - 1
	if a.Kind != "c4" {
		fc1, err := shapeOf(s, file, "roi_heads.box_head.fc1.weight", 2)
		if err != nil {
			return a, err
		}
		a.FCDim = fc1[0]
	}
	if a.Kind == "fpn" {
		lat, err := shapeOf(s, file, "backbone.fpn_lateral2.weight", 4)
		if err != nil {
			return a, err
		}
		a.FPNChannels = lat[0]
	}
	letter := "r"
	if groups > 1 {
		letter = "x"
	}
	a.Arch = fmt.Sprintf("%s%d-%s", letter, a.Depth, a.Kind)
	return a, nil
}

func has(s weights.State, name string) bool { _, ok := s[name]; return ok }

// Detectron2Model reads a Detectron2 model-zoo .pkl file and returns its
// detector's configuration (detection.Detectron2Config for the inferred
// architecture) and its tensors under our names. arch, if not empty, must
// be the inferred architecture (else an error naming the tensor that
// decides); classes, if not empty, must have NumClasses names (else
// class1..classK are used).
func Detectron2Model(path, arch string, classes []string) (detection.Config, weights.State, error) {
	ck, err := weights.ReadDetectron2(path)
	if err != nil {
		return detection.Config{}, nil, fmt.Errorf("checkpoint: %w", err)
	}
	if ck.Layout != weights.Detectron2ModelZoo {
		return detection.Config{}, nil, fmt.Errorf("checkpoint: %s: a %s file (%s ...): an ImageNet backbone or Detectron v1 file, not a Detectron2 detector",
			path, ck.Layout, strings.Join(ck.Names[:min(len(ck.Names), 1)], ""))
	}
	return FromDetectron2Model(ck.State, path, arch, classes)
}

// FromDetectron2Model is Detectron2Model on a model-zoo state already read
// (Detectron2's names); path names it in errors.
func FromDetectron2Model(d2 weights.State, path, arch string, classes []string) (detection.Config, weights.State, error) {
	a, err := InferDetectron2(d2, path)
	if err != nil {
		return detection.Config{}, nil, err
	}
	if arch != "" && arch != a.Arch {
		why := fmt.Sprintf("its res4 has the blocks of depth %d", a.Depth)
		if !strings.HasSuffix(arch, "-"+a.Kind) {
			why = map[string]string{"c4": "it has roi_heads.res5.0.conv1.weight", "dc5": "it has backbone.res5.0.conv1.weight and roi_heads.box_head.fc1.weight",
				"fpn": "it has backbone.bottom_up.stem.conv1.weight"}[a.Kind]
		} else if arch[0] != a.Arch[0] {
			why = "tensor res2.0.conv2.weight's groups say so"
		}
		return detection.Config{}, nil, fmt.Errorf("checkpoint: %s: --arch %s, but the file holds a %s detector (%s)", path, arch, a.Arch, why)
	}
	s, err := FromDetectron2(d2, path)
	if err != nil {
		return detection.Config{}, nil, err
	}
	var cfg detection.Config
	switch a.Kind {
	case "c4":
		cfg = detection.Detectron2Config(a.Arch, classes)
	case "dc5":
		cfg = detection.Detectron2DC5Config(a.Arch, classes)
		cfg.FCDim = a.FCDim
	case "fpn":
		cfg = detection.Detectron2FPNConfig(a.Arch, classes)
		cfg.FCDim, cfg.FPNChannels = a.FCDim, a.FPNChannels
	}
	cfg.ResNet = a.ResNet
	if cfg, err = withClasses(path, cfg, a.NumClasses); err != nil {
		return detection.Config{}, nil, err
	}
	return cfg, s, nil
}

// LoadDetectron2 builds and loads the detector of a Detectron2 model-zoo
// .pkl file (see Detectron2Model).
func LoadDetectron2(path, arch string, classes []string, o detection.Options) (*detection.FasterRCNN, error) {
	cfg, s, err := Detectron2Model(path, arch, classes)
	if err != nil {
		return nil, err
	}
	return build(path, cfg, s, o)
}

// toDetectron2C4 is FromDetectron2's renaming backwards for a C4 detector's
// backbone: our "backbone.<torchvision name>" to Detectron2's
// (layer4 -> roi_heads.res5), or "" for other names.
func toDetectron2C4(name string) string {
	rest, ok := strings.CutPrefix(name, "backbone.")
	if !ok {
		return ""
	}
	switch {
	case rest == "conv1.weight":
		return "backbone.stem.conv1.weight"
	case strings.HasPrefix(rest, "bn1."):
		return "backbone.stem.conv1.norm." + strings.TrimPrefix(rest, "bn1.")
	}
	parts := strings.SplitN(rest, ".", 4) // layerN, B, module, tail...
	if len(parts) < 4 || !strings.HasPrefix(parts[0], "layer") {
		return ""
	}
	n, err := strconv.Atoi(strings.TrimPrefix(parts[0], "layer"))
	if err != nil {
		return ""
	}
	pre := fmt.Sprintf("backbone.res%d.%s.", n+1, parts[1])
	if n == 4 {
		pre = fmt.Sprintf("roi_heads.res5.%s.", parts[1])
	}
	mod, tail := parts[2], parts[3]
	switch {
	case mod == "downsample" && strings.HasPrefix(tail, "0."):
		return pre + "shortcut." + strings.TrimPrefix(tail, "0.")
	case mod == "downsample" && strings.HasPrefix(tail, "1."):
		return pre + "shortcut.norm." + strings.TrimPrefix(tail, "1.")
	case strings.HasPrefix(mod, "bn"):
		return pre + "conv" + strings.TrimPrefix(mod, "bn") + ".norm." + tail
	}
	return pre + mod + "." + tail
}

// FromCaffe2Backbone maps an MSRA ImageNet file in the Caffe2 layout
// (R-50.pkl, R-101.pkl: weights.ReadDetectron2's State of a Caffe2Flat file)
// onto a Detectron2 C4 detector's ResNet, as Detectron2's loader does
// (weights.AlignCaffe2: Caffe2 names to Detectron2's, then the longest
// suffix match; missing BN statistics filled with mean 0, variance 1).
// model lists our backbone tensors ("backbone.conv1.weight", ... with
// layer4 as res5) and their shapes, e.g. from a detector's State. It
// returns the tensors under our names and the alignment (model keys in
// Detectron2's names, checkpoint keys in Caffe2's; the classifier's
// fc1000_* and the stem's unused conv1_b are Unused). A model
// tensor left without a value or with another shape is an error naming it.
func FromCaffe2Backbone(c2 weights.State, model map[string][]int, file string) (weights.State, weights.Alignment, error) {
	d2 := make(map[string][]int, len(model))
	back := make(map[string]string, len(model))
	for name, shape := range model {
		if n := toDetectron2C4(name); n != "" {
			d2[n], back[n] = shape, name
		}
	}
	got, al, err := weights.AlignCaffe2(c2, d2)
	if err != nil {
		return nil, al, fmt.Errorf("checkpoint: %s: %w", file, err)
	}
	weights.FillFrozenBNStats(got, d2)
	if len(al.Mismatched) > 0 {
		m := al.Mismatched[0]
		return nil, al, fmt.Errorf("checkpoint: %s: tensor %s does not fit %s (%v)", file, m.Checkpoint, back[m.Model], d2[m.Model])
	}
	out := make(weights.State, len(got))
	for n, t := range got {
		out[back[n]] = t
	}
	var missing []string
	for n := range d2 {
		if _, ok := got[n]; !ok {
			missing = append(missing, back[n])
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, al, fmt.Errorf("checkpoint: %s: no Caffe2 tensor for %s (%d missing)", file, missing[0], len(missing))
	}
	return out, al, nil
}
