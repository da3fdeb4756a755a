package checkpoint

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"resdet/detection"
	"resdet/fpn"
	"resdet/weights"
)

// v2Evidence are torchvision names only fasterrcnn_resnet50_fpn_v2 has,
// v1Evidence names only v1 has (after the legacy renaming).
var (
	v2Evidence = []*regexp.Regexp{
		regexp.MustCompile(`^backbone\.fpn\.(inner|layer)_blocks\.\d+\.1\.`),
		regexp.MustCompile(`^rpn\.head\.conv\.1\.0\.`),
		regexp.MustCompile(`^roi_heads\.box_head\.\d+\.0\.weight$`),
	}
	v1Evidence = []*regexp.Regexp{
		regexp.MustCompile(`^backbone\.fpn\.(inner|layer)_blocks\.\d+\.0\.bias$`),
		regexp.MustCompile(`^roi_heads\.box_head\.fc[67]\.`),
	}
	rpnConvV2 = regexp.MustCompile(`^rpn\.head\.conv\.(\d+)\.0\.(weight|bias)$`)
)

// FromTorchvisionFPN renames the state_dict of torchvision's
// fasterrcnn_resnet50_fpn (v1) or fasterrcnn_resnet50_fpn_v2 to the
// detector's parameter names, infers which of the two it is, and returns it
// with the architecture (detection.ArchTVR50FPN or ArchTVR50FPNV2) and the
// number of classes K (cls_score has K+1 rows; 90 for COCO).
//
// Both key generations are accepted: the legacy names of files written
// before torchvision 0.13 (backbone.fpn.{inner,layer}_blocks.{i}.weight,
// rpn.head.conv.weight) and the current ones (....{i}.0.weight,
// rpn.head.conv.0.0.weight). num_batches_tracked entries are dropped. v2 is
// recognised by batch norms in the FPN, a second RPN convolution or the
// convolutional box head (roi_heads.box_head.0.0.weight); v1 by FPN biases
// or fc6/fc7. A file showing both, or an unknown name, is an error naming
// the tensor.
//
// Renaming: backbone.body.X -> backbone.X; rpn.head.conv.0.0.* (v1) ->
// rpn.head.conv.*; rpn.head.conv.{i}.0.* (v2) -> rpn.head.conv.{i}.*;
// backbone.fpn.*, roi_heads.box_head.*, rpn.head.{cls_logits,bbox_pred}.*
// and roi_heads.box_predictor.* keep their names.
func FromTorchvisionFPN(s weights.State) (weights.State, string, int, error) {
	s, err := fpn.UpgradeLegacyNames(s)
	if err != nil {
		return nil, "", 0, fmt.Errorf("checkpoint: torchvision FPN state: %w", err)
	}
	names := make([]string, 0, len(s))
	for name := range s {
		names = append(names, name)
	}
	sort.Strings(names)
	var v1Name, v2Name string
	for _, name := range names {
		for _, re := range v2Evidence {
			if v2Name == "" && re.MatchString(name) {
				v2Name = name
			}
		}
		for _, re := range v1Evidence {
			if v1Name == "" && re.MatchString(name) {
				v1Name = name
			}
		}
	}
	switch {
	case v1Name != "" && v2Name != "":
		return nil, "", 0, fmt.Errorf("checkpoint: torchvision FPN state: %q is fasterrcnn_resnet50_fpn's but %q is _v2's", v1Name, v2Name)
	case v1Name == "" && v2Name == "":
		return nil, "", 0, fmt.Errorf("checkpoint: torchvision FPN state: no backbone.fpn biases, batch norms or box head tensors (not a fasterrcnn_resnet50_fpn?)")
	}
	arch, v2 := detection.ArchTVR50FPN, v2Name != ""
	if v2 {
		arch = detection.ArchTVR50FPNV2
	}
	out := make(weights.State, len(s))
	for _, name := range names {
		if strings.HasSuffix(name, ".num_batches_tracked") {
			continue
		}
		var native string
		switch {
		case strings.HasPrefix(name, "backbone.body."):
			native = "backbone." + strings.TrimPrefix(name, "backbone.body.")
		case strings.HasPrefix(name, fpn.Prefix), strings.HasPrefix(name, "roi_heads.box_head."),
			strings.HasPrefix(name, "rpn.head.cls_logits."), strings.HasPrefix(name, "rpn.head.bbox_pred."),
			strings.HasPrefix(name, "roi_heads.box_predictor."):
			native = name
		case name == "rpn.head.conv.weight" || name == "rpn.head.conv.bias":
			if v2 {
				return nil, "", 0, fmt.Errorf("checkpoint: torchvision FPN state: %q is a v1 RPN head in a _v2 file (%q)", name, v2Name)
			}
			native = name
		case rpnConvV2.MatchString(name):
			m := rpnConvV2.FindStringSubmatch(name)
			if v2 {
				native = "rpn.head.conv." + m[1] + "." + m[2]
			} else if m[1] == "0" {
				native = "rpn.head.conv." + m[2]
			}
		}
		if native == "" {
			return nil, "", 0, fmt.Errorf("checkpoint: torchvision FPN state: unexpected tensor %q (not a %s)", name, arch)
		}
		out[native] = s[name]
	}
	cls, ok := out["roi_heads.box_predictor.cls_score.weight"]
	if !ok || len(cls.Shape) != 2 || cls.Shape[0] < 2 {
		return nil, "", 0, fmt.Errorf("checkpoint: torchvision FPN state: no roi_heads.box_predictor.cls_score.weight [K+1, C] with K >= 1")
	}
	return out, arch, cls.Shape[0] - 1, nil
}

// loadTorchvisionFPN is LoadTorchvision for the FPN archs: the file's
// architecture must be cfg.Arch.
func loadTorchvisionFPN(path string, raw weights.State, cfg detection.Config, o detection.Options) (*detection.FasterRCNN, error) {
	s, arch, k, err := FromTorchvisionFPN(raw)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	if arch != cfg.Arch {
		evidence := "roi_heads.box_head.fc6.weight"
		if arch == detection.ArchTVR50FPNV2 {
			evidence = "roi_heads.box_head.0.0.weight"
		}
		if _, ok := s[evidence]; !ok {
			evidence = "backbone.fpn.inner_blocks.0.*"
		}
		return nil, fmt.Errorf("checkpoint: %s: the weights are %s (tensor %s), not the requested %s", path, arch, evidence, cfg.Arch)
	}
	if cfg, err = withClasses(path, cfg, k); err != nil {
		return nil, err
	}
	return build(path, cfg, s, o)
}
