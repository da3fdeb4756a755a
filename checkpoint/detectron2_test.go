package checkpoint

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"resdet/box"
	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/internal/testutil"
	"resdet/weights"
)

// d2Fixture returns the path of a file of the shared Detectron2 fixtures
// (skipping when they are absent, see testutil.SharedDir).
func d2Fixture(t *testing.T, parts ...string) string {
	return testutil.SharedDir(t, append([]string{"fixtures", "detectron2"}, parts...)...)
}

// d2Expected is the part of a fixture's expected.json the tests read.
type d2Expected struct {
	Images []struct {
		Name          string       `json:"name"`
		Source        string       `json:"source"`
		ResizedSize   [2]int       `json:"resized_size"`
		NumProposals  int          `json:"num_proposals"`
		Proposals     [][4]float32 `json:"proposals_top10"`
		ProposalLogit []float32    `json:"proposal_logits_top10"`
		Detections    []struct {
			Box        [4]float32 `json:"box"`
			Score      float32    `json:"score"`
			Class      int        `json:"class"`
			CategoryID int        `json:"category_id"`
			Label      string     `json:"label"`
		} `json:"detections"`
	} `json:"images"`
}

// shapeState returns a state of zero tensors with the given shapes.
func shapeState(shapes map[string][]int) weights.State {
	s := make(weights.State, len(shapes))
	for n, sh := range shapes {
		s[n] = weights.Tensor{Shape: sh, Data: make([]float32, weights.NumElements(sh))}
	}
	return s
}

// d2Shapes returns the tensor shapes of a Detectron2 C4, DC5 or FPN file
// with the given res4 block count, width, groups and classes (bottleneck
// blocks; only the tensors InferDetectron2 reads; DC5 and FPN with fc1 of
// 1024, FPN 256 wide).
func d2Shapes(kind string, res4, width, groups, res2Out, classes int) map[string][]int {
	pre := "backbone."
	if kind == "fpn" {
		pre = "backbone.bottom_up."
	}
	m := map[string][]int{
		pre + "stem.conv1.weight":                  {64, 3, 7, 7},
		pre + "res2.0.conv1.weight":                {width, 64, 1, 1},
		pre + "res2.0.conv2.weight":                {width, width / groups, 3, 3},
		pre + "res2.0.conv3.weight":                {res2Out, width, 1, 1},
		"roi_heads.box_predictor.cls_score.weight": {classes + 1, 8},
	}
	for b := range res4 {
		m[fmt.Sprintf("%sres4.%d.conv1.weight", pre, b)] = []int{8, 8, 1, 1}
	}
	switch kind {
	case "c4":
		m["roi_heads.res5.0.conv1.weight"] = []int{8, 8, 1, 1}
	case "dc5":
		m["backbone.res5.0.conv1.weight"] = []int{8, 8, 1, 1}
		m["roi_heads.box_head.fc1.weight"] = []int{1024, 8}
	case "fpn":
		m["backbone.fpn_lateral2.weight"] = []int{256, res2Out, 1, 1}
		m["roi_heads.box_head.fc1.weight"] = []int{1024, 256 * 7 * 7}
	}
	return m
}

func TestInferDetectron2(t *testing.T) {
	tests := []struct {
		name    string
		shapes  map[string][]int
		want    Detectron2Arch
		wantErr string
	}{
		{name: "r50-c4", shapes: d2Shapes("c4", 6, 64, 1, 256, 80),
			want: Detectron2Arch{Arch: "r50-c4", Depth: 50, Kind: "c4", ResNet: detection.ResNetConfig{StrideIn1x1: true}, NumClasses: 80}},
		{name: "r101-c4 narrow", shapes: d2Shapes("c4", 23, 16, 1, 64, 80),
			want: Detectron2Arch{Arch: "r101-c4", Depth: 101, Kind: "c4",
				ResNet: detection.ResNetConfig{StrideIn1x1: true, WidthPerGroup: 16, Res2OutChannels: 64}, NumClasses: 80}},
		{name: "x101-32x8d c4", shapes: d2Shapes("c4", 23, 256, 32, 256, 80),
			want: Detectron2Arch{Arch: "x101-c4", Depth: 101, Kind: "c4",
				ResNet: detection.ResNetConfig{Groups: 32, WidthPerGroup: 8}, NumClasses: 80}},
		{name: "r50-dc5 voc", shapes: d2Shapes("dc5", 6, 64, 1, 256, 20),
			want: Detectron2Arch{Arch: "r50-dc5", Depth: 50, Kind: "dc5",
				ResNet: detection.ResNetConfig{StrideIn1x1: true, Res5Dilation: 2}, NumClasses: 20, FCDim: 1024}},
		{name: "r50-fpn", shapes: d2Shapes("fpn", 6, 64, 1, 256, 80),
			want: Detectron2Arch{Arch: "r50-fpn", Depth: 50, Kind: "fpn", ResNet: detection.ResNetConfig{StrideIn1x1: true},
				NumClasses: 80, FCDim: 1024, FPNChannels: 256}},
		{name: "r101-fpn", shapes: d2Shapes("fpn", 23, 64, 1, 256, 80),
			want: Detectron2Arch{Arch: "r101-fpn", Depth: 101, Kind: "fpn", ResNet: detection.ResNetConfig{StrideIn1x1: true},
				NumClasses: 80, FCDim: 1024, FPNChannels: 256}},
		{name: "x101-32x8d-fpn", shapes: d2Shapes("fpn", 23, 256, 32, 256, 80),
			want: Detectron2Arch{Arch: "x101-fpn", Depth: 101, Kind: "fpn", ResNet: detection.ResNetConfig{Groups: 32, WidthPerGroup: 8},
				NumClasses: 80, FCDim: 1024, FPNChannels: 256}},
		{name: "fpn without lateral", shapes: without(d2Shapes("fpn", 6, 64, 1, 256, 80), "backbone.fpn_lateral2.weight"),
			wantErr: "backbone.fpn_lateral2.weight"},
		{name: "fpn without fc1", shapes: without(d2Shapes("fpn", 6, 64, 1, 256, 80), "roi_heads.box_head.fc1.weight"),
			wantErr: "roi_heads.box_head.fc1.weight"},
		{name: "fpn odd block count", shapes: d2Shapes("fpn", 22, 64, 1, 256, 80), wantErr: "backbone.bottom_up.res4.21.conv1.weight"},
		{name: "odd block count", shapes: d2Shapes("c4", 7, 64, 1, 256, 80), wantErr: "backbone.res4.6.conv1.weight"},
		{name: "no head", shapes: d2Shapes("none", 6, 64, 1, 256, 80), wantErr: "not a Detectron2 Faster R-CNN"},
		{name: "caffe2 names", shapes: map[string][]int{"conv1_w": {64, 3, 7, 7}}, wantErr: "conv1_w"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := InferDetectron2(shapeState(tc.shapes), "f.pkl")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "f.pkl") {
					t.Fatalf("err = %v, want one naming f.pkl and %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// without returns m without the named entry.
func without(m map[string][]int, name string) map[string][]int {
	delete(m, name)
	return m
}

func TestDetectron2NameMap(t *testing.T) {
	tests := []struct{ d2, ours string }{
		{"backbone.stem.conv1.weight", "backbone.conv1.weight"},
		{"backbone.stem.conv1.norm.running_var", "backbone.bn1.running_var"},
		{"backbone.res2.0.shortcut.weight", "backbone.layer1.0.downsample.0.weight"},
		{"backbone.res3.1.conv2.norm.bias", "backbone.layer2.1.bn2.bias"},
		{"backbone.res4.22.conv3.weight", "backbone.layer3.22.conv3.weight"},
		{"roi_heads.res5.0.shortcut.norm.running_mean", "backbone.layer4.0.downsample.1.running_mean"},
		{"proposal_generator.rpn_head.objectness_logits.bias", "rpn.head.cls_logits.bias"},
		{"proposal_generator.rpn_head.anchor_deltas.weight", "rpn.head.bbox_pred.weight"},
		{"proposal_generator.rpn_head.conv.weight", "rpn.head.conv.weight"},
		{"roi_heads.box_predictor.bbox_pred.weight", "roi_heads.box_predictor.bbox_pred.weight"},
		{"backbone.bottom_up.res5.2.conv3.norm.weight", "backbone.layer4.2.bn3.weight"},
		{"backbone.fpn_lateral2.weight", "backbone.fpn.inner_blocks.0.0.weight"},
		{"backbone.fpn_lateral5.bias", "backbone.fpn.inner_blocks.3.0.bias"},
		{"backbone.fpn_output3.weight", "backbone.fpn.layer_blocks.1.0.weight"},
		{"backbone.fpn_output5.bias", "backbone.fpn.layer_blocks.3.0.bias"},
		{"roi_heads.box_head.fc2.bias", "roi_heads.box_head.fc2.bias"},
	}
	for _, tc := range tests {
		t.Run(tc.d2, func(t *testing.T) {
			got, err := FromDetectron2(shapeState(map[string][]int{tc.d2: {1}, "pixel_mean": {3, 1, 1}}), "f.pkl")
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := got[tc.ours]; !ok || len(got) != 1 {
				t.Errorf("got %v, want only %s", got.Names(), tc.ours)
			}
			c4 := strings.HasPrefix(tc.ours, "backbone.") && !strings.HasPrefix(tc.d2, "backbone.bottom_up.") && !strings.HasPrefix(tc.d2, "backbone.fpn_")
			if n := toDetectron2C4(tc.ours); c4 && n != tc.d2 {
				t.Errorf("toDetectron2C4(%s) = %s, want %s", tc.ours, n, tc.d2)
			}
		})
	}
	for _, bad := range []string{"roi_heads.mask_head.x.weight", "backbone.fpn_lateral6.weight", "backbone.fpn_output2.norm.weight",
		"backbone.fpn_top.weight"} {
		if _, err := FromDetectron2(shapeState(map[string][]int{bad: {1}}), "f.pkl"); err == nil ||
			!strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "f.pkl") {
			t.Errorf("unknown tensor %s: err = %v, want one naming the file and the tensor", bad, err)
		}
	}
}

func TestLoadDetectron2Errors(t *testing.T) {
	r50 := d2Fixture(t, "r50-c4", "model_final.pkl")
	dir := t.TempDir()
	data, err := os.ReadFile(r50)
	if err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(dir, "trunc.pkl")
	if err := os.WriteFile(trunc, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "photo.pkl")
	if err := os.WriteFile(foreign, []byte("\x89PNG\r\n\x1a\n not a pickle"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, arch string
		classes          []string
		want             []string
	}{
		{name: "foreign", path: foreign, want: []string{foreign}},
		{name: "wrong depth", path: r50, arch: "r101-c4", want: []string{r50, "r50-c4", "depth 50"}},
		{name: "wrong kind", path: r50, arch: "r50-dc5", want: []string{r50, "roi_heads.res5.0.conv1.weight"}},
		{name: "class names", path: r50, classes: []string{"a", "b"}, want: []string{r50, "80 classes", "cls_score"}},
		{name: "truncated", path: trunc, want: []string{trunc}},
		{name: "caffe2 backbone", path: d2Fixture(t, "c2", "R-50.pkl"), want: []string{"R-50.pkl", "not a Detectron2 detector"}},
		{name: "fpn as c4", path: d2Fixture(t, "r50-fpn", "model_final.pkl"), arch: "r50-c4",
			want: []string{"r50-fpn", "backbone.bottom_up.stem.conv1.weight"}},
		{name: "fpn depth", path: d2Fixture(t, "r50-fpn", "model_final.pkl"), arch: "r101-fpn", want: []string{"r50-fpn", "depth 50"}},
		{name: "fpn groups", path: d2Fixture(t, "r50-fpn", "model_final.pkl"), arch: "x101-fpn", want: []string{"r50-fpn", "res2.0.conv2.weight"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadDetectron2(tc.path, tc.arch, tc.classes, detection.Options{})
			testutil.OneLineError(t, err, tc.want...)
		})
	}
}

// TestFromCaffe2Backbone maps the MSRA-layout R-50.pkl fixture (the r50-c4
// model's trunk in Caffe2 names) onto the r50-c4 detector's backbone: every
// tensor must equal the model file's, and exactly conv1_b and fc1000_* are
// unused, as Detectron2's own loader reports (c2_mapping_R-50.json).
func TestFromCaffe2Backbone(t *testing.T) {
	_, model, err := Detectron2Model(d2Fixture(t, "r50-c4", "model_final.pkl"), "r50-c4", nil)
	if err != nil {
		t.Fatal(err)
	}
	c2path := d2Fixture(t, "c2", "R-50.pkl")
	ck, err := weights.ReadDetectron2(c2path)
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][]int{}
	for n, tt := range model {
		if strings.HasPrefix(n, "backbone.") {
			shapes[n] = tt.Shape
		}
	}
	got, al, err := FromCaffe2Backbone(ck.State, shapes, c2path)
	if err != nil {
		t.Fatal(err)
	}
	var mapping map[string]*string
	raw, err := os.ReadFile(d2Fixture(t, "c2", "c2_mapping_R-50.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &mapping); err != nil {
		t.Fatal(err)
	}
	var wantUnused []string
	for c2, d2 := range mapping {
		if d2 == nil {
			wantUnused = append(wantUnused, c2)
		}
	}
	if fmt.Sprint(sorted(wantUnused)) != fmt.Sprint(al.Unused) {
		t.Errorf("unused %v, Detectron2 leaves %v", al.Unused, sorted(wantUnused))
	}
	for d2name, c2 := range al.Matched {
		if d2 := mapping[c2]; d2 == nil || d2name != *d2 {
			t.Errorf("%s took %s; Detectron2 maps that to %v", d2name, c2, mapping[c2])
		}
	}
	if len(al.Matched)+len(wantUnused) != len(mapping) {
		t.Errorf("%d matched + %d unused, Detectron2 maps %d keys", len(al.Matched), len(wantUnused), len(mapping))
	}
	if len(got) != len(shapes) {
		t.Errorf("%d tensors, want %d", len(got), len(shapes))
	}
	worst := 0.0
	for n := range shapes {
		d := testutil.MaxRelErr(got[n].Data, model[n].Data)
		worst = max(worst, d)
		if d != 0 {
			t.Errorf("%s differs from the r50-c4 trunk (max rel err %g)", n, d)
		}
	}
	t.Logf("%d trunk tensors from %d Caffe2 blobs, worst relative difference %g", len(got), len(ck.State), worst)
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
}

// TestDetectron2NativeRoundTrip converts the r50-c4 and r50-fpn fixtures to
// native checkpoints and reads them back: same configuration (with
// Detectron2's settings, the FPN's width 64 and FC dim 256), same tensors.
func TestDetectron2NativeRoundTrip(t *testing.T) {
	for _, arch := range []string{"r50-c4", "r50-fpn"} {
		t.Run(arch, func(t *testing.T) { testDetectron2NativeRoundTrip(t, arch) })
	}
}

func testDetectron2NativeRoundTrip(t *testing.T, arch string) {
	m, err := LoadDetectron2(d2Fixture(t, arch, "model_final.pkl"), "", nil, detection.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	path := filepath.Join(t.TempDir(), "r50.safetensors")
	if err := Save(path, m); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(path, detection.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	a, b := m.Config, m2.Config
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("config changed:\n%s\n%s", ja, jb)
	}
	if a.Arch != arch || !a.RPN.Anchors.Detectron2 || !a.RoIHeads.BackgroundLast || !a.ResNet.StrideIn1x1 || a.ResNet.WidthPerGroup != 16 {
		t.Errorf("config lost Detectron2's settings: %s", ja)
	}
	if fpn := arch == "r50-fpn"; fpn && (a.FPNChannels != 64 || a.FCDim != 256 || a.Transform.SizeDivisible != 32 || !a.RoIOp.LevelEpsInLog) ||
		!fpn && a.Transform.SizeDivisible != 1 {
		t.Errorf("config lost the %s settings: %s", arch, ja)
	}
	s1, s2 := m.State(), m2.State()
	if len(s1) != len(s2) {
		t.Fatalf("%d tensors, read back %d", len(s1), len(s2))
	}
	worst := 0.0
	for n, t1 := range s1 {
		worst = max(worst, testutil.MaxRelErr(s2[n].Data, t1.Data))
	}
	if worst > 1e-6 {
		t.Errorf("tensors differ after the round trip: worst relative %g", worst)
	}
}

// TestDetectron2Parity runs the r50-c4 and r50-fpn fixture models on the
// nine fixture photos with Detectron2's preprocessing and compares with
// what Detectron2 computed (expected.json): the proposal count, the first
// ten proposals and their logits, and the detections (at least 98 %
// matched one to one: same class, every coordinate within 0.5 px, score
// within 3e-3).
func TestDetectron2Parity(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: runs detectors on nine photos")
	}
	for _, arch := range []string{"r50-c4", "r50-fpn"} {
		t.Run(arch, func(t *testing.T) { testDetectron2Parity(t, arch) })
	}
}

// testDetectron2Parity is TestDetectron2Parity on the fixture folder named
// as its architecture.
func testDetectron2Parity(t *testing.T, arch string) {
	dir := d2Fixture(t, arch)
	imgDir := d2Fixture(t, "images")
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp d2Expected
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	m, err := LoadDetectron2(filepath.Join(dir, "model_final.pkl"), arch, nil, detection.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tc := m.Config.Transform
	tr := imageio.Transform{Preprocess: imageio.Preprocess(tc.Preprocess), MinSize: tc.MinSize, MaxSize: tc.MaxSize, Norm: imageio.Normalization(tc.Norm)}
	var total, matched int
	var worstProp, worstLogit, worstBox, worstScore float64
	for _, im := range exp.Images {
		s, err := tr.Load(filepath.Join(imgDir, im.Source), nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if s.Image.W != im.ResizedSize[0] || s.Image.H != im.ResizedSize[1] {
			t.Fatalf("%s: resized to %dx%d, want %v", im.Name, s.Image.W, s.Image.H, im.ResizedSize)
		}
		img := detection.Image{Data: s.Image.Data, W: s.Image.W, H: s.Image.H, OrigW: s.OrigW, OrigH: s.OrigH}
		props, logits, err := m.PredictProposals(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(props) != im.NumProposals {
			t.Errorf("%s: %d proposals, want %d", im.Name, len(props), im.NumProposals)
		}
		for i := range min(len(im.Proposals), len(props)) {
			p, w := props[i], im.Proposals[i]
			for k, v := range [4]float32{p.X1, p.Y1, p.X2, p.Y2} {
				worstProp = max(worstProp, math.Abs(float64(v-w[k])))
			}
			worstLogit = max(worstLogit, math.Abs(float64(logits[i]-im.ProposalLogit[i])))
		}
		det, err := m.Predict(img)
		if err != nil {
			t.Fatal(err)
		}
		used := make([]bool, det.Len())
		n := 0
		for _, e := range im.Detections {
			best, bestD := -1, math.Inf(1)
			for j := range det.Len() {
				if used[j] || det.Labels[j] != e.Class+1 {
					continue
				}
				d := boxDist(det.Boxes[j], e.Box)
				if d <= 0.5 && math.Abs(float64(det.Scores[j]-e.Score)) <= 3e-3 && d < bestD {
					best, bestD = j, d
				}
			}
			if best >= 0 {
				used[best] = true
				n++
				worstBox = max(worstBox, bestD)
				worstScore = max(worstScore, math.Abs(float64(det.Scores[best]-e.Score)))
			} else {
				t.Logf("%s: Detectron2's %s %.4f %v unmatched", im.Name, e.Label, e.Score, e.Box)
			}
		}
		for j, u := range used {
			if !u {
				t.Logf("%s: our class %d %.4f %v unmatched", im.Name, det.Labels[j]-1, det.Scores[j], det.Boxes[j])
			}
		}
		total += max(len(im.Detections), det.Len())
		matched += n
		t.Logf("%s: %dx%d, %d proposals, %d/%d detections matched (%d found)", im.Name, s.Image.W, s.Image.H, len(props), n, len(im.Detections), det.Len())
	}
	t.Logf("proposals top 10: worst coordinate diff %.3g px, worst logit diff %.3g; detections: %d/%d matched (%.2f %%), worst box diff %.3g px, worst score diff %.3g",
		worstProp, worstLogit, matched, total, 100*float64(matched)/float64(total), worstBox, worstScore)
	if worstProp > 0.5 || worstLogit > 1e-3 {
		t.Errorf("first ten proposals differ: %.3g px, logits %.3g", worstProp, worstLogit)
	}
	if float64(matched) < 0.98*float64(total) {
		t.Errorf("%d of %d detections matched, want >= 98 %%", matched, total)
	}
}

// boxDist is the largest coordinate difference of two boxes.
func boxDist(b box.Box, w [4]float32) float64 {
	d := 0.0
	for k, v := range [4]float32{b.X1, b.Y1, b.X2, b.Y2} {
		d = max(d, math.Abs(float64(v-w[k])))
	}
	return d
}

// TestClassifierAsDetector: a classifier's state_dict (.pth) given as a
// detector is a one-line error naming the file and a tensor.
func TestClassifierAsDetector(t *testing.T) {
	path := "../backbone/testdata/cifar20/model.pth"
	_, err := LoadTorchvision(path, detection.DefaultConfig("r50-c4", nil), detection.Options{})
	if err == nil {
		t.Fatal("no error")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, path) || !strings.Contains(msg, "unexpected tensor") {
		t.Errorf("error %q: want one line naming %s and the tensor", msg, path)
	}
}
