package checkpoint

import (
	"math/rand"
	"strings"
	"testing"

	"resdet/detection"
	"resdet/weights"
)

// ourToD2DC5 names one of our DC5 tensors as Detectron2's file does.
func ourToD2DC5(t *testing.T, name string) string {
	t.Helper()
	if n := toDetectron2C4(name); n != "" {
		return strings.Replace(n, "roi_heads.res5.", "backbone.res5.", 1)
	}
	for ours, d2 := range map[string]string{"rpn.head.conv.": "proposal_generator.rpn_head.conv.",
		"rpn.head.cls_logits.": "proposal_generator.rpn_head.objectness_logits.",
		"rpn.head.bbox_pred.":  "proposal_generator.rpn_head.anchor_deltas."} {
		if rest, ok := strings.CutPrefix(name, ours); ok {
			return d2 + rest
		}
	}
	if strings.HasPrefix(name, "roi_heads.") {
		return name
	}
	t.Fatalf("no Detectron2 name for %s", name)
	return ""
}

// TestDetectron2DC5 builds a narrow R50-DC5 detector in Detectron2's
// construction with random weights and checks it by construction: res5
// dilated at stride 16 feeding the RPN and a 7x7 RoIAlignV2, fc1/fc2 and a
// background-last predictor with the shapes of Detectron2's file; its state
// renamed to Detectron2's names is recognised as r50-dc5 and imported into
// a second detector that predicts the same detections.
func TestDetectron2DC5(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: builds and runs two detectors")
	}
	classes := detection.DefaultClassNames(80)
	cfg := detection.Detectron2DC5Config("r50-dc5", classes)
	cfg.ResNet.WidthPerGroup, cfg.ResNet.Res2OutChannels = 16, 64
	cfg.FCDim = 32
	cfg.Transform.MinSize, cfg.Transform.MaxSize = 64, 96
	cfg.RoIHeads.ScoreThresh = 0 // random weights: every class near 1/81
	m, err := detection.New(cfg, detection.Options{Rng: rand.New(rand.NewSource(3))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if spec := m.Backbone.OutputShapes()["res5"]; spec.Stride != 16 || spec.Channels != 512 {
		t.Errorf("res5 = %+v, want stride 16 and 512 channels (64*8)", spec)
	}
	state := m.State()
	shapes := []struct {
		name  string
		shape []int
	}{
		{"rpn.head.conv.weight", []int{512, 512, 3, 3}},
		{"rpn.head.cls_logits.weight", []int{15, 512, 1, 1}},
		{"rpn.head.bbox_pred.weight", []int{60, 512, 1, 1}},
		{"roi_heads.box_head.fc1.weight", []int{32, 512 * 7 * 7}},
		{"roi_heads.box_head.fc2.weight", []int{32, 32}},
		{"roi_heads.box_predictor.cls_score.weight", []int{81, 32}},
		{"roi_heads.box_predictor.bbox_pred.weight", []int{320, 32}},
		{"backbone.layer4.0.conv2.weight", []int{128, 128, 3, 3}},
		{"backbone.layer4.0.downsample.0.weight", []int{512, 256, 1, 1}},
	}
	for _, s := range shapes {
		if got, ok := state[s.name]; !ok || !sameInts(got.Shape, s.shape) {
			t.Errorf("%s: shape %v, want %v", s.name, got.Shape, s.shape)
		}
	}
	// Rename to Detectron2's names, as its file has them, and import.
	d2 := make(weights.State, len(state))
	for n, tt := range state {
		d2[ourToD2DC5(t, n)] = tt
	}
	d2["pixel_mean"] = weights.Tensor{Shape: []int{3, 1, 1}, Data: []float32{103.53, 116.28, 123.675}}
	cfg2, s2, err := FromDetectron2Model(d2, "dc5.pkl", "r50-dc5", classes)
	if err != nil {
		t.Fatal(err)
	}
	if cfg2.FCDim != 32 || cfg2.ResNet.Res5Dilation != 2 || cfg2.ResNet.WidthPerGroup != 16 || cfg2.RoIOp.Size != 7 || !cfg2.RoIOp.Aligned {
		t.Errorf("inferred config %+v", cfg2)
	}
	cfg2.Transform, cfg2.RoIHeads.ScoreThresh = cfg.Transform, 0
	m2, err := detection.New(cfg2, detection.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if err := m2.Load(s2); err != nil {
		t.Fatal(err)
	}
	// A 96x64 input: the trunk gives a 6x4 map at stride 16.
	img := detection.Image{W: 96, H: 64, OrigW: 96, OrigH: 64, Data: make([]float32, 3*96*64)}
	rng := rand.New(rand.NewSource(4))
	for i := range img.Data {
		img.Data[i] = float32(rng.NormFloat64() * 0.1)
	}
	props, _, err := m.PredictProposals(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(props) == 0 || len(props) > 6*4*15 {
		t.Errorf("%d proposals from a 6x4 map with 15 anchors", len(props))
	}
	d1 := sameDetections(t, m, m2, img)
	t.Logf("r50-dc5 (narrow): %d proposals, %d detections, identical after the import", len(props), d1.Len())
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sameDetections runs img through m and its imported copy m2 and fails the
// test unless both give the same non-empty detections, bit for bit, with
// labels of COCO's 80 classes. It returns m's detections.
func sameDetections(t *testing.T, m, m2 *detection.FasterRCNN, img detection.Image) detection.Detections {
	t.Helper()
	d1, err := m.Predict(img)
	if err != nil {
		t.Fatal(err)
	}
	d2det, err := m2.Predict(img)
	if err != nil {
		t.Fatal(err)
	}
	if d1.Len() == 0 {
		t.Fatal("no detections")
	}
	if d1.Len() != d2det.Len() {
		t.Fatalf("%d detections, imported detector %d", d1.Len(), d2det.Len())
	}
	for i := range d1.Boxes {
		if d1.Boxes[i] != d2det.Boxes[i] || d1.Scores[i] != d2det.Scores[i] || d1.Labels[i] != d2det.Labels[i] {
			t.Errorf("detection %d: %v %v %v, imported %v %v %v", i, d1.Boxes[i], d1.Scores[i], d1.Labels[i], d2det.Boxes[i], d2det.Scores[i], d2det.Labels[i])
		}
		if l := d1.Labels[i]; l < 1 || l > 80 {
			t.Errorf("label %d outside 1..80", l)
		}
	}
	return d1
}
