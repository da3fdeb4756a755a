package weights

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"resdet/internal/testutil"
)

// TestCaffe2ToDetectron2 checks the renaming rules one name at a time; the expected
// names follow the rules of Detectron2's c2_model_loading.py by hand.
func TestCaffe2ToDetectron2(t *testing.T) {
	for _, tc := range []struct{ c2, want string }{
		{c2: "conv1_w", want: "stem.conv1.weight"},
		{c2: "conv1_b", want: "stem.conv1.bias"},
		{c2: "res_conv1_bn_s", want: "stem.conv1.norm.weight"},
		{c2: "res_conv1_bn_b", want: "stem.conv1.norm.bias"},
		{c2: "res_conv1_bn_gamma", want: "stem.conv1.norm.weight"},
		{c2: "res_conv1_bn_beta", want: "stem.conv1.norm.bias"},
		{c2: "res_conv1_bn_running_mean", want: "stem.conv1.norm.running_mean"},
		{c2: "res_conv1_bn_running_var", want: "stem.conv1.norm.running_var"},
		{c2: "res2_0_branch2a_w", want: "res2.0.conv1.weight"},
		{c2: "res2_0_branch2b_bn_rm", want: "res2.0.conv2.norm.running_mean"},
		{c2: "res4_5_branch2c_bn_b", want: "res4.5.conv3.norm.bias"},
		{c2: "res3_0_branch1_bn_riv", want: "res3.0.shortcut.norm.running_var"},
		{c2: "res3_0_branch1_w", want: "res3.0.shortcut.weight"},
		{c2: "res5_2_branch2c_gn_s", want: "res5.2.conv3.norm.weight"},
		{c2: "res5_2_branch2c_gn_bias", want: "res5.2.conv3.norm.bias"},
		{c2: "fc1000_w", want: "fc1000.weight"},
		{c2: "pred_w", want: "linear.weight"},
		{c2: "conv_rpn_w", want: "proposal_generator.rpn_head.conv.weight"},
		{c2: "conv_rpn_fpn2_b", want: "proposal_generator.rpn_head.conv.bias"},
		{c2: "rpn_cls_logits_fpn2_b", want: "proposal_generator.rpn_head.objectness_logits.bias"},
		{c2: "rpn_bbox_pred_w", want: "proposal_generator.rpn_head.anchor_deltas.weight"},
		{c2: "bbox_pred_w", want: "bbox_pred.weight"},
		{c2: "cls_score_b", want: "cls_score.bias"},
		{c2: "fc6_w", want: "box_head.fc1.weight"},
		{c2: "fc7_b", want: "box_head.fc2.bias"},
		{c2: "head_conv1_w", want: "box_head.conv1.weight"},
		{c2: "fpn_inner_res4_5_sum_lateral_w", want: "fpn_lateral4.weight"},
		{c2: "fpn_inner_res2_2_sum_lateral_gn_s", want: "fpn_lateral2.norm.weight"},
		{c2: "fpn_res3_3_sum_b", want: "fpn_output3.bias"},
		{c2: "mask_fcn_logits_w", want: "mask_head.predictor.weight"},
		{c2: "conv5_mask_w", want: "mask_head.deconv.weight"},
		{c2: "kps_score_lowres_w", want: "roi_heads.keypoint_head.score_lowres.weight"},
		{c2: "conv_fcn1_w", want: "roi_heads.keypoint_head.conv_fcn1.weight"},
	} {
		t.Run(tc.c2, func(t *testing.T) {
			got, err := Caffe2ToDetectron2([]string{tc.c2})
			if err != nil {
				t.Fatal(err)
			}
			if got[0] != tc.want {
				t.Errorf("%s -> %s, want %s", tc.c2, got[0], tc.want)
			}
		})
	}
}

func TestCaffe2ToDetectron2Errors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		names []string
		want  []string
	}{
		{name: "collision", names: []string{"conv1_w", "conv1.w"}, want: []string{`"conv1_w"`, `"conv1.w"`, "stem.conv1.weight"}},
		{name: "bad FPN stage", names: []string{"fpn_resX_0_sum_w"}, want: []string{"resX"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Caffe2ToDetectron2(tc.names)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

func ExampleCaffe2ToDetectron2() {
	names, err := Caffe2ToDetectron2([]string{"conv1_w", "res_conv1_bn_s", "res2_0_branch1_w", "res2_0_branch2b_bn_riv"})
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.Join(names, "\n"))
	// Output:
	// stem.conv1.weight
	// stem.conv1.norm.weight
	// res2.0.shortcut.weight
	// res2.0.conv2.norm.running_var
}

func TestAlignBySuffix(t *testing.T) {
	model := map[string][]int{
		"backbone.res2.0.conv1.weight":  {2},
		"backbone.stem.conv1.weight":    {3},
		"head.xconv1.weight":            {3},
		"roi_heads.res5.0.conv1.weight": {4},
		"x.y":                           {1},
	}
	ckpt := map[string][]int{
		"res2.0.conv1.weight": {2},
		"conv1.weight":        {3},
		"stem.conv1.weight":   {3},
		"res5.0.conv1.weight": {5},
		"x.y":                 {1},
		"unused.w":            {1},
	}
	a, err := AlignBySuffix(model, ckpt)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{name: "matched", got: a.Matched, want: map[string]string{
			"backbone.res2.0.conv1.weight": "res2.0.conv1.weight",
			"backbone.stem.conv1.weight":   "stem.conv1.weight", // the longest suffix
			"x.y":                          "x.y",
		}},
		// xconv1.weight does not end in ".conv1.weight"; res5 differs in shape.
		{name: "missing", got: a.Missing, want: []string{"head.xconv1.weight", "roi_heads.res5.0.conv1.weight"}},
		{name: "unused", got: a.Unused, want: []string{"conv1.weight", "res5.0.conv1.weight", "unused.w"}},
		{name: "mismatched", got: a.Mismatched, want: []ShapeMismatch{{
			Model: "roi_heads.res5.0.conv1.weight", Checkpoint: "res5.0.conv1.weight",
			ModelShape: []int{4}, CheckpointShape: []int{5},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
	t.Run("ambiguous", func(t *testing.T) {
		_, err := AlignBySuffix(map[string][]int{"a.conv1.weight": {1}, "b.conv1.weight": {1}},
			map[string][]int{"conv1.weight": {1}})
		if err == nil || !strings.Contains(err.Error(), `"a.conv1.weight"`) || !strings.Contains(err.Error(), `"b.conv1.weight"`) {
			t.Errorf("error %v should name both model keys", err)
		}
	})
}

func TestConvertCaffe2Heads(t *testing.T) {
	seq := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i)
		}
		return v
	}
	s := State{
		"bbox_pred_w":       {Shape: []int{12, 2}, Data: seq(24)},
		"cls_score_w":       {Shape: []int{3, 2}, Data: seq(6)},
		"mask_fcn_logits_b": {Shape: []int{3}, Data: seq(3)},
		"fc6_w":             {Shape: []int{2}, Data: seq(2)},
	}
	got, from, err := ConvertCaffe2(s)
	if err != nil {
		t.Fatal(err)
	}
	want := State{
		"bbox_pred.weight":         {Shape: []int{8, 2}, Data: seq(24)[8:]},
		"cls_score.weight":         {Shape: []int{3, 2}, Data: []float32{2, 3, 4, 5, 0, 1}},
		"mask_head.predictor.bias": {Shape: []int{2}, Data: []float32{1, 2}},
		"box_head.fc1.weight":      {Shape: []int{2}, Data: seq(2)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if from["cls_score.weight"] != "cls_score_w" || len(from) != 4 {
		t.Errorf("origins %v", from)
	}
	_, _, err = ConvertCaffe2(State{"bbox_pred_b": {Shape: []int{2}, Data: seq(2)}})
	if err == nil || !strings.Contains(err.Error(), `"bbox_pred_b"`) {
		t.Errorf("error %v should name bbox_pred_b", err)
	}
}

func TestFillFrozenBNStats(t *testing.T) {
	model := map[string][]int{
		"s.norm.weight": {2}, "s.norm.running_mean": {2}, "s.norm.running_var": {2},
		"t.norm.running_var": {3},
	}
	s := State{
		"s.norm.weight":      {Shape: []int{2}, Data: []float32{3, 4}},
		"t.norm.running_var": {Shape: []int{3}, Data: []float32{5, 6, 7}},
	}
	added := FillFrozenBNStats(s, model)
	if !reflect.DeepEqual(added, []string{"s.norm.running_mean", "s.norm.running_var"}) {
		t.Errorf("added %v", added)
	}
	want := State{
		"s.norm.weight":       {Shape: []int{2}, Data: []float32{3, 4}},
		"s.norm.running_mean": {Shape: []int{2}, Data: []float32{0, 0}},
		"s.norm.running_var":  {Shape: []int{2}, Data: []float32{1, 1}},
		"t.norm.running_var":  {Shape: []int{3}, Data: []float32{5, 6, 7}},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %v, want %v", s, want)
	}
}

// TestAlignCaffe2Fixture loads the Caffe2 R-50 fixture into the parameter names of the
// R50-C4 and R50-FPN fixtures and compares the mapping with the one Detectron2's own
// loader produced (testdata/c2_mapping_R-50.json, for C4; the FPN trunk is the same
// under backbone.bottom_up).
func TestAlignCaffe2Fixture(t *testing.T) {
	b, err := os.ReadFile("testdata/c2_mapping_R-50.json")
	if err != nil {
		t.Fatal(err)
	}
	var c4Map map[string]*string
	if err := json.Unmarshal(b, &c4Map); err != nil {
		t.Fatal(err)
	}
	c2, err := ReadDetectron2(testutil.SharedDir(t, "fixtures", "detectron2", "c2", "R-50.pkl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c2.State) != len(c4Map) {
		t.Fatalf("%d Caffe2 tensors, the mapping has %d", len(c2.State), len(c4Map))
	}
	fpnName := func(n string) string {
		if r, ok := strings.CutPrefix(n, "roi_heads."); ok {
			return "backbone.bottom_up." + r
		}
		return "backbone.bottom_up." + strings.TrimPrefix(n, "backbone.")
	}
	for _, tc := range []struct {
		model  string
		rename func(string) string
	}{
		{model: "r50-c4/model_final.pkl", rename: func(n string) string { return n }},
		{model: "r50-fpn/model_final.pkl", rename: fpnName},
	} {
		t.Run(tc.model, func(t *testing.T) {
			zoo, err := ReadDetectron2(testutil.SharedDir(t, "fixtures", "detectron2", tc.model))
			if err != nil {
				t.Fatal(err)
			}
			model := map[string][]int{}
			for k, v := range zoo.State {
				if !Detectron2Extra(k) {
					model[k] = v.Shape
				}
			}
			got, a, err := AlignCaffe2(c2.State, model)
			if err != nil {
				t.Fatal(err)
			}
			wantMatched := map[string]string{}
			var wantUnused []string
			for c2Name, d2 := range c4Map {
				if d2 == nil {
					wantUnused = append(wantUnused, c2Name)
				} else {
					wantMatched[tc.rename(*d2)] = c2Name
				}
			}
			sort.Strings(wantUnused)
			var wantMissing []string
			for k := range model {
				if _, ok := wantMatched[k]; !ok {
					wantMissing = append(wantMissing, k)
				}
			}
			sort.Strings(wantMissing)
			if !reflect.DeepEqual(a.Matched, wantMatched) {
				for k, v := range wantMatched {
					if a.Matched[k] != v {
						t.Errorf("%s takes %q, want %q", k, a.Matched[k], v)
					}
				}
				t.Errorf("%d matches, want %d", len(a.Matched), len(wantMatched))
			}
			if !reflect.DeepEqual(a.Unused, wantUnused) {
				t.Errorf("unused %v, want %v", a.Unused, wantUnused)
			}
			if !reflect.DeepEqual(a.Missing, wantMissing) {
				t.Errorf("missing %v, want %v", a.Missing, wantMissing)
			}
			if len(a.Mismatched) != 0 {
				t.Errorf("shape mismatches %v", a.Mismatched)
			}
			for mk, ck := range a.Matched {
				if !reflect.DeepEqual(got[mk], c2.State[ck]) {
					t.Errorf("%s is not the tensor of %s", mk, ck)
				}
			}
			if added := FillFrozenBNStats(got, model); len(added) != 0 {
				t.Errorf("the file has running statistics, yet %v were added", added)
			}
			t.Logf("%d of %d Caffe2 tensors matched, unused %v, %d model keys missing", len(a.Matched), len(c2.State), a.Unused, len(a.Missing))
		})
	}
}
