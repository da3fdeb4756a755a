package detection

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gorgonia.org/tensor"

	"resdet/box"
	"resdet/weights"

	"resdet/internal/testutil"
)

// trainRef is ref.json of testdata/gen_train_parity.py.
type trainRef struct {
	Padded  [2]int         `json:"padded"` // W, H
	Sizes   [][2]int       `json:"sizes"`  // W, H of each image
	Boxes   [][][4]float32 `json:"boxes"`
	Labels  [][]int        `json:"labels"`
	Losses  Losses         `json:"losses"`
	RoIs    []int          `json:"rois"`
	FG      []int          `json:"fg"`
	Classes int            `json:"classes"`
	PreNMS  int            `json:"pre_nms"`
	PostNMS int            `json:"post_nms"`
}

// readTrainBatch reads input.f32, the padded batch [N, 3, PH, PW], and cuts
// each image back to its size, with its ground truth.
func readTrainBatch(t *testing.T, dir string, ref trainRef) []TrainImage {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "input.f32"))
	if err != nil {
		t.Fatal(err)
	}
	n, pw, ph := len(ref.Sizes), ref.Padded[0], ref.Padded[1]
	if len(raw) != 4*n*3*ph*pw {
		t.Fatalf("input.f32 has %d bytes, want %d", len(raw), 4*n*3*ph*pw)
	}
	at := func(i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])) }
	batch := make([]TrainImage, n)
	for i, sz := range ref.Sizes {
		w, h := sz[0], sz[1]
		im := TrainImage{Data: make([]float32, 3*w*h), W: w, H: h, Boxes: toBoxes(ref.Boxes[i]), Labels: ref.Labels[i]}
		for c := range 3 {
			for y := range h {
				for x := range w {
					im.Data[(c*h+y)*w+x] = at(((i*3+c)*ph+y)*pw + x)
				}
			}
		}
		batch[i] = im
	}
	return batch
}

// relMax returns max|got-want| / max|want|.
func relMax(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = max(m, math.Abs(float64(want[i])))
	}
	return d / m
}

// TestTrainingStepMatchesTorchvision runs one training step of torchvision's
// FasterRCNN (R50-C4 construction of gen_fasterrcnn.py, frozen BN with
// random statistics, conv1 and layer1 frozen, train mode; seeded random
// weights made by testdata/gen_train_parity.py at test time) and of our
// detector with the same weights (NewTrainable, FrozenBN, FreezeAt 2) on the
// same padded batch of two images of different sizes. Both samplers take
// every candidate (torchvision's replaced by a take-all sampler; ours given
// room for all), so the steps are deterministic, and our second stage pads
// each image's RoIs to BatchSizePerImage rows, which must not count. The
// four losses must agree within 1e-4 relative and the gradient of every
// learnable parameter within 1e-3 relative (max|go - torch| / max|torch|).
// The script's BN biases keep most ReLU inputs away from zero (its --shift
// says why: at half negative, float32 rounding alone moves these gradients
// by ~1%).
func TestTrainingStepMatchesTorchvision(t *testing.T) {
	testutil.Python(t)
	dir := t.TempDir()
	start := time.Now()
	out, err := exec.Command("/usr/bin/python3", "testdata/gen_train_parity.py", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("gen_train_parity.py: %v\n%s", err, out)
	}
	t.Logf("reference (%v): %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(out)))
	data, err := os.ReadFile(filepath.Join(dir, "ref.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref trainRef
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	batch := readTrainBatch(t, dir, ref)

	start = time.Now()
	state, err := weights.LoadTorch(filepath.Join(dir, "model.pth"))
	if err != nil {
		t.Fatal(err)
	}
	cls, err := state.Get("roi_heads.box_predictor.cls_score.weight", ref.Classes+1, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k := cls.Shape[0] - 1
	grads, err := weights.LoadTorch(filepath.Join(dir, "grads.pth"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig("r50-c4", DefaultClassNames(k))
	cfg.RPN.PreNMSTopNTrain, cfg.RPN.PostNMSTopNTrain = ref.PreNMS, ref.PostNMS
	cfg.RPN.BatchSizePerImage = 1_000_000 // every anchor that is not ignored
	// Room for every sampled RoI (the proposals and the ground truth), so
	// that our sampler takes them all; the rest of the rows is padding.
	cfg.RoIHeads.BatchSizePerImage = ref.PostNMS + 16
	cfg.RoIHeads.PositiveFraction = 1
	tr := loadedTrainer(t, cfg, state)
	t.Logf("load and build: %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	got, err := tr.Step(batch, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("step: %v", time.Since(start).Round(time.Millisecond))

	var wantRoIs, wantFG int
	for i := range ref.RoIs {
		wantRoIs += ref.RoIs[i]
		wantFG += ref.FG[i]
	}
	if tr.LastRoIs() != wantRoIs || tr.LastForeground() != wantFG {
		t.Errorf("sampled %d RoIs (%d foreground), torchvision %d (%d)", tr.LastRoIs(), tr.LastForeground(), wantRoIs, wantFG)
	}
	if wantRoIs >= len(batch)*cfg.RoIHeads.BatchSizePerImage {
		t.Errorf("%d RoIs in %d rows: no padding row, the test does not exercise padding", wantRoIs, len(batch)*cfg.RoIHeads.BatchSizePerImage)
	}
	for _, l := range []struct {
		name      string
		got, want float64
	}{
		{"loss_objectness", got.Objectness, ref.Losses.Objectness},
		{"loss_rpn_box_reg", got.RPNBoxReg, ref.Losses.RPNBoxReg},
		{"loss_classifier", got.Classifier, ref.Losses.Classifier},
		{"loss_box_reg", got.BoxReg, ref.Losses.BoxReg},
	} {
		expectLossScalar(t, l.name, l.got, l.want, 1e-4)
	}

	// Every learnable parameter's gradient; these four are logged (a layer2
	// and a layer3 weight, res5, the RPN conv).
	named := []string{"layer2.1.conv2.weight", "layer3.5.conv3.weight", "layer4.0.conv1.weight", "rpn.head.conv.weight"}
	var worst float64
	var worstName string
	seen := 0
	for _, p := range tr.Params() {
		name := p.(interface{ Name() string }).Name()
		want, ok := grads["backbone."+name]
		if !ok {
			want, ok = grads[name]
		}
		if !ok {
			t.Errorf("%s: learnable here, no gradient in torchvision", name)
			continue
		}
		seen++
		g, err := p.Grad()
		if err != nil {
			t.Fatal(err)
		}
		gd, ok := g.(tensor.Tensor)
		if !ok || !slices.Equal(gd.Shape(), tensor.Shape(want.Shape)) {
			t.Errorf("%s: gradient %v, torchvision shape %v", name, g.Shape(), want.Shape)
			continue
		}
		rel := relMax(gd.Data().([]float32), want.Data)
		if rel > worst {
			worst, worstName = rel, name
		}
		if slices.Contains(named, name) {
			t.Logf("gradient %s: max|torch| %.3g, relative diff %.3g", name, maxAbs(want.Data), rel)
		}
		if !(rel <= 1e-3) {
			t.Errorf("gradient %s: relative diff %.3g (max|torch| %.3g), want <= 1e-3", name, rel, maxAbs(want.Data))
		}
	}
	if seen != len(grads) {
		t.Errorf("%d gradients compared, torchvision has %d", seen, len(grads))
	}
	for _, n := range named {
		if _, ok := grads["backbone."+n]; !ok {
			if _, ok := grads[n]; !ok {
				t.Errorf("no torchvision gradient for %s", n)
			}
		}
	}
	t.Logf("%d gradients, worst relative diff %.3g (%s; bound 1e-3)", seen, worst, worstName)
}

func maxAbs(v []float32) float64 {
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}

func toBoxes(b [][4]float32) []box.Box {
	out := make([]box.Box, len(b))
	for i, v := range b {
		out[i] = box.Box{X1: v[0], Y1: v[1], X2: v[2], Y2: v[3]}
	}
	return out
}
