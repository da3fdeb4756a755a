package checkpoint

import (
	"encoding/json"
	"fmt"
	"strings"

	"resdet/detection"
	"resdet/weights"
)

// Native checkpoints are safetensors files (package weights) with the
// detector's tensors under its parameter names (detection.FasterRCNN.State)
// and the metadata FormatKey = Format and ConfigKey = the JSON of the
// detection.Config (architecture, class names, preprocessing, RPN with its
// anchors, RoI heads, RoI op with its level rule). Format names the version
// of that metadata: "fasterrcnn/v2" adds the FPN architectures (per-level
// anchors, the pooler's level rule); files of FormatV1 (C4 only) are read
// too.
const (
	FormatKey = "resdet.format"
	Format    = "fasterrcnn/v2"
	FormatV1  = "fasterrcnn-c4/v1"
	ConfigKey = "resdet.config"
)

// Save writes m's parameters and configuration to a native checkpoint
// (safetensors), atomically.
func Save(path string, m *detection.FasterRCNN) error {
	cfg, err := json.Marshal(m.Config)
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", path, err)
	}
	meta := map[string]string{FormatKey: Format, ConfigKey: string(cfg)}
	if err := weights.WriteSafetensors(path, m.State(), meta); err != nil {
		return fmt.Errorf("checkpoint: save: %w", err)
	}
	return nil
}

// Read reads a native checkpoint: its configuration and tensors. It
// returns an error naming the file if the metadata is missing or not a
// valid detection.Config.
func Read(path string) (detection.Config, weights.State, error) {
	s, meta, err := weights.ReadSafetensors(path)
	if err != nil {
		return detection.Config{}, nil, fmt.Errorf("checkpoint: read: %w", err)
	}
	if f := meta[FormatKey]; f != Format && f != FormatV1 {
		return detection.Config{}, nil, fmt.Errorf("checkpoint: read %s: metadata %s is %q, want %q or %q (not a resdet detector checkpoint?)",
			path, FormatKey, f, Format, FormatV1)
	}
	var cfg detection.Config
	dec := json.NewDecoder(strings.NewReader(meta[ConfigKey]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return detection.Config{}, nil, fmt.Errorf("checkpoint: read %s: metadata %s: %w", path, ConfigKey, err)
	}
	if err := cfg.Validate(); err != nil {
		return detection.Config{}, nil, fmt.Errorf("checkpoint: read %s: %w", path, err)
	}
	return cfg, s, nil
}

// Load builds the detector a native checkpoint describes and loads its
// weights.
func Load(path string, o detection.Options) (*detection.FasterRCNN, error) {
	cfg, s, err := Read(path)
	if err != nil {
		return nil, err
	}
	return build(path, cfg, s, o)
}

// build builds the detector cfg describes and loads s (read from path,
// which errors name) into it.
func build(path string, cfg detection.Config, s weights.State, o detection.Options) (*detection.FasterRCNN, error) {
	m, err := detection.New(cfg, o)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	if err := m.Load(s); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return m, nil
}

// withClasses returns cfg with k class names (k: the rows of the weights'
// roi_heads.box_predictor.cls_score.weight minus the background):
// "class1".."classK" when cfg has none, or an error naming path and that
// tensor when it has another number.
func withClasses(path string, cfg detection.Config, k int) (detection.Config, error) {
	switch {
	case len(cfg.Classes) == 0:
		cfg.Classes = detection.DefaultClassNames(k)
	case len(cfg.Classes) != k:
		return cfg, fmt.Errorf("checkpoint: %s: the weights have %d classes (roi_heads.box_predictor.cls_score.weight), %d class names given",
			path, k, len(cfg.Classes))
	}
	return cfg, nil
}

// FromTorchvision renames the state_dict of a torchvision FasterRCNN built
// as the C4 construction (README: detect) to the detector's parameter names and returns it with the
// number of classes K (cls_score has K+1 rows). Accepted torchvision names:
//
//	backbone.{0,1,4,5,6}.* or backbone.body.{...}   conv1, bn1, layer1..layer3
//	                         (the nn.Sequential of conv1, bn1, relu, maxpool, layer1..3)
//	roi_heads.box_head.0.N.* or roi_heads.box_head.N.*   layer4 (box_head is
//	                         layer4 itself or a module whose first child is it)
//	rpn.head.conv.0.0.* or rpn.head.conv.*                the RPN's 3x3 conv
//	rpn.head.{cls_logits,bbox_pred}.*, roi_heads.box_predictor.{cls_score,bbox_pred}.*
//
// num_batches_tracked entries are dropped; any other name is an error.
func FromTorchvision(s weights.State) (weights.State, int, error) {
	body := map[string]string{"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3"}
	out := make(weights.State, len(s))
	for name, t := range s {
		if strings.HasSuffix(name, ".num_batches_tracked") {
			continue
		}
		var native string
		switch {
		case strings.HasPrefix(name, "backbone."):
			rest := strings.TrimPrefix(strings.TrimPrefix(name, "backbone."), "body.")
			idx, tail, _ := strings.Cut(rest, ".")
			if mod, ok := body[idx]; ok {
				native = "backbone." + mod + "." + tail
			}
		case strings.HasPrefix(name, "roi_heads.box_head."):
			rest := strings.TrimPrefix(name, "roi_heads.box_head.")
			first, tail, _ := strings.Cut(rest, ".")
			second, _, _ := strings.Cut(tail, ".")
			if isDigits(second) && (first == "0" || first == "layer4") {
				rest = tail // a wrapper module around layer4
			}
			native = "backbone.layer4." + rest
		case strings.HasPrefix(name, "rpn.head.conv.0.0."):
			native = "rpn.head.conv." + strings.TrimPrefix(name, "rpn.head.conv.0.0.")
		case strings.HasPrefix(name, "rpn.head."), strings.HasPrefix(name, "roi_heads.box_predictor."):
			native = name
		}
		if native == "" {
			return nil, 0, fmt.Errorf("checkpoint: torchvision state: unexpected tensor %q (not the C4 construction)", name)
		}
		out[native] = t
	}
	cls, ok := out["roi_heads.box_predictor.cls_score.weight"]
	if !ok || len(cls.Shape) != 2 || cls.Shape[0] < 2 {
		return nil, 0, fmt.Errorf("checkpoint: torchvision state: no roi_heads.box_predictor.cls_score.weight [K+1, C] with K >= 1")
	}
	return out, cls.Shape[0] - 1, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// LoadTorchvision reads a torchvision C4 detector's state_dict (.pth, see
// FromTorchvision) or, when cfg.Arch is an FPN arch, that of
// fasterrcnn_resnet50_fpn or _v2 (FromTorchvisionFPN; the file must be the
// arch cfg names), builds cfg's detector with as many classes as the
// weights have (cfg.Classes is replaced by class1..classK if its length
// differs and is empty; a non-empty list of another length is an error) and
// loads it.
func LoadTorchvision(path string, cfg detection.Config, o detection.Options) (*detection.FasterRCNN, error) {
	raw, err := weights.LoadTorch(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if detection.IsFPN(cfg.Arch) {
		return loadTorchvisionFPN(path, raw, cfg, o)
	}
	s, k, err := FromTorchvision(raw)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	if cfg, err = withClasses(path, cfg, k); err != nil {
		return nil, err
	}
	return build(path, cfg, s, o)
}
