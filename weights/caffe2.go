package weights

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Caffe2 names (Detectron v1 and the MSRA ImageNet files) and their Detectron2
// equivalents, after Detectron2's checkpoint/c2_model_loading.py.

// c2Rule is one renaming step: re (a regexp) or, when re is nil, the literal old is
// replaced by new everywhere in the name.
type c2Rule struct {
	re       *regexp.Regexp
	old, new string
}

func c2Re(expr, new string) c2Rule { return c2Rule{re: regexp.MustCompile(expr), new: new} }
func c2Lit(old, new string) c2Rule { return c2Rule{old: old, new: new} }

// c2Rules are applied in order to every name after "_" has become "." (the fpn_*
// names are then rewritten by c2FPNName, and the mask and keypoint rules follow:
// c2HeadRules). Patterns are Python regexps in Detectron2, so "." in "running.mean"
// matches any character there too.
var c2Rules = []c2Rule{
	c2Re(`\.b$`, ".bias"),
	c2Re(`\.w$`, ".weight"),
	// batch and group norm parameters become "norm"
	c2Re(`bn\.s$`, "norm.weight"),
	c2Re(`bn\.bias$`, "norm.bias"),
	c2Re(`bn\.rm`, "norm.running_mean"),
	c2Re(`bn\.running.mean$`, "norm.running_mean"),
	c2Re(`bn\.riv$`, "norm.running_var"),
	c2Re(`bn\.running.var$`, "norm.running_var"),
	c2Re(`bn\.gamma$`, "norm.weight"),
	c2Re(`bn\.beta$`, "norm.bias"),
	c2Re(`gn\.s$`, "norm.weight"),
	c2Re(`gn\.bias$`, "norm.bias"),
	// stem
	c2Re(`^res\.conv1\.norm\.`, "conv1.norm."),
	c2Re(`^conv1\.`, "stem.conv1."),
	// bottleneck blocks
	c2Lit(".branch1.", ".shortcut."),
	c2Lit(".branch2a.", ".conv1."),
	c2Lit(".branch2b.", ".conv2."),
	c2Lit(".branch2c.", ".conv3."),
	// DensePose heads
	c2Re(`^body.conv.fcn`, "body_conv_fcn"),
	c2Lit("AnnIndex.lowres", "ann_index_lowres"),
	c2Lit("Index.UV.lowres", "index_uv_lowres"),
	c2Lit("U.lowres", "u_lowres"),
	c2Lit("V.lowres", "v_lowres"),
	// RPN (FPN: the level-2 head is shared by every level)
	c2Lit("conv.rpn.fpn2", "proposal_generator.rpn_head.conv"),
	c2Lit("conv.rpn", "proposal_generator.rpn_head.conv"),
	c2Lit("rpn.bbox.pred.fpn2", "proposal_generator.rpn_head.anchor_deltas"),
	c2Lit("rpn.cls.logits.fpn2", "proposal_generator.rpn_head.objectness_logits"),
	c2Lit("rpn.bbox.pred", "proposal_generator.rpn_head.anchor_deltas"),
	c2Lit("rpn.cls.logits", "proposal_generator.rpn_head.objectness_logits"),
	// Fast R-CNN box head
	c2Re(`^bbox\.pred`, "bbox_pred"),
	c2Re(`^cls\.score`, "cls_score"),
	c2Re(`^fc6\.`, "box_head.fc1."),
	c2Re(`^fc7\.`, "box_head.fc2."),
	c2Re(`^head\.conv`, "box_head.conv"),
}

// c2HeadRules follow the FPN renaming: mask and keypoint heads.
var c2HeadRules = []c2Rule{
	c2Lit(".[mask].fcn", "mask_head.mask_fcn"),
	c2Re(`^\.mask\.fcn`, "mask_head.mask_fcn"),
	c2Lit("mask.fcn.logits", "mask_head.predictor"),
	c2Lit("conv5.mask", "mask_head.deconv"),
	c2Lit("conv.fcn", "roi_heads.keypoint_head.conv_fcn"),
	c2Lit("kps.score.lowres", "roi_heads.keypoint_head.score_lowres"),
	c2Lit("kps.score.", "roi_heads.keypoint_head.score."),
}

func applyC2Rules(name string, rules []c2Rule) string {
	for _, r := range rules {
		if r.re != nil {
			name = r.re.ReplaceAllLiteralString(name, r.new)
		} else {
			name = strings.ReplaceAll(name, r.old, r.new)
		}
	}
	return name
}

// c2FPNName renames FPN convolutions: fpn.inner.resS.* (lateral 1x1) becomes
// fpn_lateralS[.norm].LAST and fpn.resS.* (output 3x3) fpn_outputS[.norm].LAST,
// where LAST is the name's last component.
func c2FPNName(name string) (string, error) {
	parts := strings.Split(name, ".")
	norm := ""
	for _, p := range parts {
		if p == "norm" {
			norm = ".norm"
		}
	}
	var kind, res string
	switch {
	case strings.HasPrefix(name, "fpn.inner."):
		kind, res = "fpn_lateral", parts[2]
	case strings.HasPrefix(name, "fpn.res"):
		kind, res = "fpn_output", parts[1]
	default:
		return name, nil
	}
	stage, err := strconv.Atoi(strings.TrimPrefix(res, "res"))
	if err != nil || !strings.HasPrefix(res, "res") {
		return "", fmt.Errorf("FPN blob %q: %q is not resN", name, res)
	}
	return fmt.Sprintf("%s%d%s.%s", kind, stage, norm, parts[len(parts)-1]), nil
}

// Caffe2ToDetectron2 returns the Detectron2 name of each Caffe2 blob name, in the
// same order, following Detectron2's convert_c2_detectron_names: pred_w/pred_b become
// linear_w/linear_b; every "_" becomes "."; the suffixes .w and .b become .weight and
// .bias; bn.s / bn.gamma, bn.bias / bn.beta, bn.rm / bn.running_mean and bn.riv /
// bn.running_var become norm.weight, norm.bias, norm.running_mean and
// norm.running_var (gn.* likewise); res.conv1.norm.* becomes conv1.norm.*, then a
// leading conv1. becomes stem.conv1.; .branch1. becomes .shortcut. and
// .branch2a/b/c. become .conv1/2/3.; the RPN, box head (fc6/fc7 -> box_head.fc1/fc2),
// FPN (fpn_lateralS, fpn_outputS), mask and keypoint blobs get their Detectron2
// module paths. For example res_conv1_bn_s -> stem.conv1.norm.weight,
// res2_0_branch2a_w -> res2.0.conv1.weight, res3_0_branch1_bn_riv ->
// res3.0.shortcut.norm.running_var.
//
// It returns an error when a name cannot be converted or two names convert to the
// same one.
func Caffe2ToDetectron2(names []string) ([]string, error) {
	out := make([]string, len(names))
	seen := make(map[string]string, len(names))
	for i, orig := range names {
		n := orig
		switch n {
		case "pred_b":
			n = "linear_b"
		case "pred_w":
			n = "linear_w"
		}
		n = applyC2Rules(strings.ReplaceAll(n, "_", "."), c2Rules)
		n, err := c2FPNName(n)
		if err != nil {
			return nil, err
		}
		n = applyC2Rules(n, c2HeadRules)
		if prev, dup := seen[n]; dup {
			return nil, fmt.Errorf("Caffe2 blobs %q and %q both convert to %q", prev, orig, n)
		}
		seen[n] = orig
		out[i] = n
	}
	return out, nil
}

// ConvertCaffe2 renames a Caffe2 checkpoint with Caffe2ToDetectron2 and converts the
// class-specific outputs of Detectron (v1) detection heads to Detectron2's layout:
// bbox_pred.* loses its first 4 rows (the background box) and mask_head.predictor.*
// its first row; cls_score.* moves its first row (background) to the end. Rows are
// the first dimension. It returns the converted state and, for each new name, the
// Caffe2 name it came from. Tensors not changed are shared with s.
func ConvertCaffe2(s State) (State, map[string]string, error) {
	orig := s.Names()
	names, err := Caffe2ToDetectron2(orig)
	if err != nil {
		return nil, nil, fmt.Errorf("weights: %w", err)
	}
	out := make(State, len(s))
	from := make(map[string]string, len(s))
	for i, n := range names {
		t := s[orig[i]]
		from[n] = orig[i]
		var err error
		switch {
		case strings.HasPrefix(n, "bbox_pred."):
			t, err = dropRows(t, 4)
		case strings.HasPrefix(n, "mask_head.predictor."):
			t, err = dropRows(t, 1)
		case strings.HasPrefix(n, "cls_score."):
			t, err = rotateFirstRow(t)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("weights: Caffe2 blob %q (%s): %w", orig[i], n, err)
		}
		out[n] = t
	}
	return out, from, nil
}

func rowSize(t Tensor, min int) (int, error) {
	if len(t.Shape) == 0 || t.Shape[0] < min {
		return 0, fmt.Errorf("shape %v has fewer than %d rows", t.Shape, min)
	}
	if t.Shape[0] == 0 {
		return 0, nil
	}
	return len(t.Data) / t.Shape[0], nil
}

func dropRows(t Tensor, k int) (Tensor, error) {
	rs, err := rowSize(t, k)
	if err != nil {
		return Tensor{}, err
	}
	shape := append([]int{t.Shape[0] - k}, t.Shape[1:]...)
	return Tensor{Shape: shape, Data: append([]float32(nil), t.Data[k*rs:]...)}, nil
}

func rotateFirstRow(t Tensor) (Tensor, error) {
	rs, err := rowSize(t, 1)
	if err != nil {
		return Tensor{}, err
	}
	data := append(append(make([]float32, 0, len(t.Data)), t.Data[rs:]...), t.Data[:rs]...)
	return Tensor{Shape: append([]int(nil), t.Shape...), Data: data}, nil
}

// Shapes returns the shape of every tensor in s.
func (s State) Shapes() map[string][]int {
	m := make(map[string][]int, len(s))
	for k, t := range s {
		m[k] = t.Shape
	}
	return m
}

// Alignment is how a checkpoint's keys were matched to a model's (AlignBySuffix).
type Alignment struct {
	// Matched maps each model key that takes a checkpoint tensor to that tensor's key.
	Matched map[string]string
	// Missing lists the model keys that take nothing, sorted.
	Missing []string
	// Unused lists the checkpoint keys that no model key takes, sorted.
	Unused []string
	// Mismatched lists the matches skipped because the shapes differ; their keys are
	// in Missing and Unused.
	Mismatched []ShapeMismatch
}

// ShapeMismatch is a model key and the checkpoint key it matched by name, with
// different shapes.
type ShapeMismatch struct {
	Model, Checkpoint           string
	ModelShape, CheckpointShape []int
}

// AlignBySuffix matches checkpoint keys to model keys as Detectron2's
// align_and_update_state_dicts does: each model key takes the longest checkpoint key
// that equals it or is a suffix of it starting after a "." (so res2.0.conv1.weight
// matches backbone.res2.0.conv1.weight, and conv1.weight does not match
// res2.0.xconv1.weight); a match whose shapes differ is skipped. model and ckpt map
// names to shapes. It is an error for one checkpoint key to be taken by two model
// keys.
func AlignBySuffix(model, ckpt map[string][]int) (Alignment, error) {
	a := Alignment{Matched: map[string]string{}}
	modelKeys := sortedKeys(model)
	takenBy := map[string]string{}
	for _, mk := range modelKeys {
		ck, ok := longestSuffix(mk, ckpt)
		if !ok {
			a.Missing = append(a.Missing, mk)
			continue
		}
		if !sameShape(model[mk], ckpt[ck]) {
			a.Missing = append(a.Missing, mk)
			a.Mismatched = append(a.Mismatched, ShapeMismatch{Model: mk, Checkpoint: ck, ModelShape: model[mk], CheckpointShape: ckpt[ck]})
			continue
		}
		if prev, dup := takenBy[ck]; dup {
			return Alignment{}, fmt.Errorf("weights: checkpoint key %q matches two model keys, %q and %q", ck, prev, mk)
		}
		takenBy[ck] = mk
		a.Matched[mk] = ck
	}
	for _, ck := range sortedKeys(ckpt) {
		if _, ok := takenBy[ck]; !ok {
			a.Unused = append(a.Unused, ck)
		}
	}
	return a, nil
}

// longestSuffix returns the longest key of ckpt that is name or a suffix of name
// following a ".".
func longestSuffix(name string, ckpt map[string][]int) (string, bool) {
	if _, ok := ckpt[name]; ok {
		return name, true
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			if _, ok := ckpt[name[i+1:]]; ok {
				return name[i+1:], true
			}
		}
	}
	return "", false
}

func sortedKeys(m map[string][]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// AlignCaffe2 loads a Caffe2 checkpoint (a Caffe2Flat or Caffe2Blobs file's State)
// into a model whose parameter names and shapes are given: ConvertCaffe2, then
// AlignBySuffix. It returns the matched tensors under the model's names and the
// alignment, whose checkpoint keys (Matched values, Unused, Mismatched) are the
// original Caffe2 names. For a Detectron2 ResNet, conv1_b and fc1000_* are unused;
// files without running statistics leave the norm.running_mean / running_var keys
// missing (see FillFrozenBNStats).
func AlignCaffe2(c2 State, model map[string][]int) (State, Alignment, error) {
	conv, from, err := ConvertCaffe2(c2)
	if err != nil {
		return nil, Alignment{}, err
	}
	a, err := AlignBySuffix(model, conv.Shapes())
	if err != nil {
		return nil, Alignment{}, err
	}
	out := make(State, len(a.Matched))
	for mk, ck := range a.Matched {
		out[mk] = conv[ck]
		a.Matched[mk] = from[ck]
	}
	for i, ck := range a.Unused {
		a.Unused[i] = from[ck]
	}
	sort.Strings(a.Unused)
	for i := range a.Mismatched {
		a.Mismatched[i].Checkpoint = from[a.Mismatched[i].Checkpoint]
	}
	return out, a, nil
}

// FillFrozenBNStats adds the running statistics that Detectron2's FrozenBatchNorm2d
// assumes when a checkpoint lacks them (Caffe2 files that store only bn_s and bn_b):
// for every model key ending in ".running_mean" that s lacks, zeros, and for every one
// ending in ".running_var", ones, in the model's shape. Such a layer then computes
// x*weight/sqrt(1+eps) + bias. It returns the names added, sorted.
func FillFrozenBNStats(s State, model map[string][]int) []string {
	var added []string
	for _, k := range sortedKeys(model) {
		fill := float32(0)
		switch {
		case strings.HasSuffix(k, ".running_mean"):
		case strings.HasSuffix(k, ".running_var"):
			fill = 1
		default:
			continue
		}
		if _, ok := s[k]; ok {
			continue
		}
		t := Tensor{Shape: append([]int(nil), model[k]...), Data: make([]float32, NumElements(model[k]))}
		for i := range t.Data {
			t.Data[i] = fill
		}
		s[k] = t
		added = append(added, k)
	}
	return added
}
