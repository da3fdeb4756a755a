package detection

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"resdet/weights"
)

// Native checkpoints are safetensors files (package weights) with the
// detector's tensors under these names:
//
//	backbone.<ResNet name>    the whole ResNet, torchvision's names (conv1,
//	                          bn1, layer1 .. layer4; layer4 is the box head's res5)
//	rpn.head.*                see RPNHead
//	roi_heads.box_predictor.* see RoIHeads
//
// and the metadata CheckpointFormatKey = CheckpointFormat and
// CheckpointConfigKey = the JSON of the Config (architecture, class names,
// preprocessing, RPN, RoI heads, RoI op).
const (
	CheckpointFormatKey = "resdet.format"
	CheckpointFormat    = "fasterrcnn-c4/v1"
	CheckpointConfigKey = "resdet.config"
)

// State returns a copy of the parameters under the native names (see
// SaveCheckpoint).
func (m *FasterRCNN) State() weights.State {
	s := make(weights.State)
	for name, t := range m.Backbone.State() {
		s["backbone."+name] = t
	}
	for _, p := range m.headParams() {
		s[p.name] = weights.Tensor{Shape: append([]int(nil), p.shape...), Data: append([]float32(nil), p.data...)}
	}
	return s
}

func (m *FasterRCNN) headParams() []*param {
	return append(m.RPN.Head.params(), m.RoIHeads.params()...)
}

// Load copies a state under the native names into the parameters. Every
// tensor must be present with its shape and none may be left over; errors
// name the tensor (and say when the class count or the architecture differs).
func (m *FasterRCNN) Load(s weights.State) error {
	bb := make(weights.State)
	for name, t := range s {
		if rest, ok := strings.CutPrefix(name, "backbone."); ok {
			bb[rest] = t
		}
	}
	if t, ok := s["roi_heads.box_predictor.cls_score.weight"]; ok && len(t.Shape) == 2 && t.Shape[0] != m.NumClasses() {
		return fmt.Errorf("detection: load: the weights have %d classes, the detector %d (%d names given)",
			t.Shape[0]-1, m.NumClasses()-1, len(m.Config.Classes))
	}
	if err := m.Backbone.Load(bb); err != nil {
		return fmt.Errorf("detection: load: weights do not fit a %s detector: %w", m.Config.Arch, err)
	}
	known := make(map[string]bool)
	for _, p := range m.headParams() {
		t, err := s.Get(p.name, p.shape...)
		if err != nil {
			return fmt.Errorf("detection: load %s heads: %w", m.Config.Arch, err)
		}
		copy(p.data, t.Data)
		known[p.name] = true
	}
	var extra []string
	for name := range s {
		if !known[name] && !strings.HasPrefix(name, "backbone.") {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("detection: load: unexpected tensors %v", extra[:min(len(extra), 5)])
	}
	return nil
}

// SaveCheckpoint writes m's parameters and configuration to a native
// checkpoint (safetensors), atomically.
func SaveCheckpoint(path string, m *FasterRCNN) error {
	cfg, err := json.Marshal(m.Config)
	if err != nil {
		return fmt.Errorf("detection: save %s: %w", path, err)
	}
	meta := map[string]string{CheckpointFormatKey: CheckpointFormat, CheckpointConfigKey: string(cfg)}
	if err := weights.WriteSafetensors(path, m.State(), meta); err != nil {
		return fmt.Errorf("detection: save: %w", err)
	}
	return nil
}

// ReadCheckpoint reads a native checkpoint: its configuration and tensors.
// It returns an error naming the file if the metadata is missing or not a
// valid Config.
func ReadCheckpoint(path string) (Config, weights.State, error) {
	s, meta, err := weights.ReadSafetensors(path)
	if err != nil {
		return Config{}, nil, fmt.Errorf("detection: read checkpoint: %w", err)
	}
	if f := meta[CheckpointFormatKey]; f != CheckpointFormat {
		return Config{}, nil, fmt.Errorf("detection: read checkpoint %s: metadata %s is %q, want %q (not a resdet detector checkpoint?)",
			path, CheckpointFormatKey, f, CheckpointFormat)
	}
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(meta[CheckpointConfigKey]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, nil, fmt.Errorf("detection: read checkpoint %s: metadata %s: %w", path, CheckpointConfigKey, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, nil, fmt.Errorf("detection: read checkpoint %s: %w", path, err)
	}
	return cfg, s, nil
}

// LoadCheckpoint builds the detector a native checkpoint describes and
// loads its weights.
func LoadCheckpoint(path string, o Options) (*FasterRCNN, error) {
	cfg, s, err := ReadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	m, err := New(cfg, o)
	if err != nil {
		return nil, fmt.Errorf("detection: %s: %w", path, err)
	}
	if err := m.Load(s); err != nil {
		return nil, fmt.Errorf("detection: %s: %w", path, err)
	}
	return m, nil
}

// FromTorchvision renames the state_dict of a torchvision FasterRCNN built
// as issue 6's C4 construction to the native names and returns it with the
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
			return nil, 0, fmt.Errorf("detection: torchvision state: unexpected tensor %q (not the C4 construction of issue 6)", name)
		}
		out[native] = t
	}
	cls, ok := out["roi_heads.box_predictor.cls_score.weight"]
	if !ok || len(cls.Shape) != 2 || cls.Shape[0] < 2 {
		return nil, 0, fmt.Errorf("detection: torchvision state: no roi_heads.box_predictor.cls_score.weight [K+1, C] with K >= 1")
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
// FromTorchvision), builds cfg's detector with as many classes as the
// weights have (cfg.Classes is replaced by class1..classK if its length
// differs and is empty; a non-empty list of another length is an error) and
// loads it.
func LoadTorchvision(path string, cfg Config, o Options) (*FasterRCNN, error) {
	raw, err := weights.LoadTorch(path)
	if err != nil {
		return nil, fmt.Errorf("detection: %w", err)
	}
	s, k, err := FromTorchvision(raw)
	if err != nil {
		return nil, fmt.Errorf("detection: %s: %w", path, err)
	}
	switch {
	case len(cfg.Classes) == 0:
		cfg.Classes = DefaultClassNames(k)
	case len(cfg.Classes) != k:
		return nil, fmt.Errorf("detection: %s: the weights have %d classes, %d class names given", path, k, len(cfg.Classes))
	}
	m, err := New(cfg, o)
	if err != nil {
		return nil, err
	}
	if err := m.Load(s); err != nil {
		return nil, fmt.Errorf("detection: %s: %w", path, err)
	}
	return m, nil
}
