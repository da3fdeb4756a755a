package fpn

import (
	"fmt"
	"strings"

	"resdet/weights"
)

// UpgradeLegacyNames returns s with the FPN names of torchvision before 0.13
// renamed to the current ones, as torchvision's FeaturePyramidNetwork does when
// it loads a state dict of version < 2 (the published fasterrcnn_resnet50_fpn
// COCO weights are such a file):
//
//	backbone.fpn.inner_blocks.{i}.weight -> backbone.fpn.inner_blocks.{i}.0.weight
//	backbone.fpn.inner_blocks.{i}.bias   -> backbone.fpn.inner_blocks.{i}.0.bias
//
// and the same for layer_blocks. Other names are kept; tensors are shared,
// not copied. It is for the checkpoint layer, which converts foreign files
// before FPN.Load. It returns an error naming the tensor if a legacy name and
// its current form are both present.
func UpgradeLegacyNames(s weights.State) (weights.State, error) {
	out := make(weights.State, len(s))
	for name, t := range s {
		out[name] = t
	}
	for name, t := range s {
		current, ok := upgradeName(name)
		if !ok {
			continue
		}
		if _, dup := s[current]; dup {
			return nil, fmt.Errorf("fpn: state has both %q and its current name %q", name, current)
		}
		delete(out, name)
		out[current] = t
	}
	return out, nil
}

// upgradeName maps a legacy FPN name to the current one; ok is false for
// every other name.
func upgradeName(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || (parts[0] != "inner_blocks" && parts[0] != "layer_blocks") ||
		!isIndex(parts[1]) || (parts[2] != "weight" && parts[2] != "bias") {
		return "", false
	}
	return Prefix + parts[0] + "." + parts[1] + ".0." + parts[2], true
}

func isIndex(s string) bool {
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
