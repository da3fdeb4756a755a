package checkpoint

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"resdet/detection"
	"resdet/internal/testutil"
	"resdet/weights"
)

// ourFPNBlock matches our names of the FPN's convolutions (package fpn).
var ourFPNBlock = regexp.MustCompile(`^backbone\.fpn\.(inner|layer)_blocks\.(\d+)\.0\.(weight|bias)$`)

// ourToD2FPN names one of our tensors of a Detectron2 FPN detector as
// Detectron2's file does: the ResNet under backbone.bottom_up, the FPN's
// convolutions as fpn_lateral{L} and fpn_output{L}, the RPN head under
// proposal_generator.
func ourToD2FPN(t *testing.T, name string) string {
	t.Helper()
	if m := ourFPNBlock.FindStringSubmatch(name); m != nil {
		i, _ := strconv.Atoi(m[2])
		kind := map[string]string{"inner": "lateral", "layer": "output"}[m[1]]
		return fmt.Sprintf("backbone.fpn_%s%d.%s", kind, i+2, m[3])
	}
	n := ourToD2DC5(t, name) // the ResNet (res5 in the backbone), RPN head, RoI heads
	if rest, ok := strings.CutPrefix(n, "backbone."); ok {
		return "backbone.bottom_up." + rest
	}
	return n
}

// TestDetectron2FPNByConstruction builds narrow R101-FPN and
// X101-32x8d-FPN detectors (ResNeXt: 32 groups, stride in the 3x3) in
// Detectron2's construction with random weights and checks them by
// construction: the tensor shapes of every part (trunk, FPN, RPN head,
// fc1/fc2, background-last predictor) as Detectron2's file has them; the
// state written as a model-zoo .pkl in Detectron2's names
// (testdata/write_d2_pkl.py, with the extras old zoo files carry) is
// recognised as the same architecture, widths, groups, FPN width, FC dim
// and class count, and the imported detector predicts the same detections.
// (R50-FPN is tested against Detectron2's own outputs: TestDetectron2Parity.)
func TestDetectron2FPNByConstruction(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: builds and runs four ResNet-101 detectors")
	}
	tests := []struct {
		arch   string
		resnet detection.ResNetConfig
		conv2  []int // backbone.layer1.0.conv2.weight: [width, width/groups, 3, 3]
		std    float32
	}{
		{arch: "r101-fpn", resnet: detection.ResNetConfig{StrideIn1x1: true, WidthPerGroup: 16, Res2OutChannels: 64},
			conv2: []int{16, 16, 3, 3}, std: 1},
		{arch: "x101-fpn", resnet: detection.ResNetConfig{Groups: 32, WidthPerGroup: 2, Res2OutChannels: 64},
			conv2: []int{64, 2, 3, 3}, std: 57.375},
	}
	for _, tc := range tests {
		t.Run(tc.arch, func(t *testing.T) {
			classes := detection.DefaultClassNames(80)
			cfg := detection.Detectron2FPNConfig(tc.arch, classes)
			cfg.ResNet = tc.resnet
			cfg.FPNChannels, cfg.FCDim = 32, 24
			cfg.Transform.MinSize, cfg.Transform.MaxSize = 64, 96
			cfg.RoIHeads.ScoreThresh = 0 // random weights: every class near 1/81
			m, err := detection.New(cfg, detection.Options{Rng: rand.New(rand.NewSource(5))})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			// Damp each block's residual branch (its last batch norm's
			// scale), so that 33 random blocks do not blow the activations
			// up to where every proposal is clipped away.
			state := m.State()
			for n, tt := range state {
				if strings.HasSuffix(n, ".bn3.weight") {
					for i := range tt.Data {
						tt.Data[i] *= 0.2
					}
				}
			}
			if err := m.Load(state); err != nil {
				t.Fatal(err)
			}
			res5 := 64 * 8 // Res2OutChannels doubled three times
			shapes := []struct {
				name  string
				shape []int
			}{
				{"backbone.layer1.0.conv2.weight", tc.conv2},
				{"backbone.layer3.22.conv3.weight", []int{256, tc.conv2[0] * 4, 1, 1}},
				{"backbone.layer4.2.conv3.weight", []int{res5, tc.conv2[0] * 8, 1, 1}},
				{"backbone.fpn.inner_blocks.0.0.weight", []int{32, 64, 1, 1}},
				{"backbone.fpn.inner_blocks.3.0.weight", []int{32, res5, 1, 1}},
				{"backbone.fpn.inner_blocks.3.0.bias", []int{32}},
				{"backbone.fpn.layer_blocks.0.0.weight", []int{32, 32, 3, 3}},
				{"backbone.fpn.layer_blocks.3.0.bias", []int{32}},
				{"rpn.head.conv.weight", []int{32, 32, 3, 3}},
				{"rpn.head.cls_logits.weight", []int{3, 32, 1, 1}},
				{"rpn.head.bbox_pred.weight", []int{12, 32, 1, 1}},
				{"roi_heads.box_head.fc1.weight", []int{24, 32 * 7 * 7}},
				{"roi_heads.box_head.fc2.weight", []int{24, 24}},
				{"roi_heads.box_predictor.cls_score.weight", []int{81, 24}},
				{"roi_heads.box_predictor.bbox_pred.weight", []int{320, 24}},
			}
			for _, s := range shapes {
				if got, ok := state[s.name]; !ok || !sameInts(got.Shape, s.shape) {
					t.Errorf("%s: shape %v, want %v", s.name, got.Shape, s.shape)
				}
			}
			if _, ok := state["backbone.layer3.23.conv1.weight"]; ok {
				t.Errorf("res4 has more than 23 blocks")
			}
			// Detectron2's names, as its file has them, with the extras
			// Detectron2 ignores; written as a model-zoo pickle.
			d2 := make(weights.State, len(state)+2)
			for n, tt := range state {
				d2[ourToD2FPN(t, n)] = tt
			}
			if len(d2) != len(state) {
				t.Fatalf("%d tensors renamed to %d names", len(state), len(d2))
			}
			d2["pixel_mean"] = weights.Tensor{Shape: []int{3, 1, 1}, Data: []float32{103.53, 116.28, 123.675}}
			d2["proposal_generator.anchor_generator.cell_anchors.0"] = weights.Tensor{Shape: []int{3, 4}, Data: make([]float32, 12)}
			dir := t.TempDir()
			st, pkl := filepath.Join(dir, "model.safetensors"), filepath.Join(dir, "model_final.pkl")
			if err := weights.WriteSafetensors(st, d2, nil); err != nil {
				t.Fatal(err)
			}
			testutil.RunScript(t, "testdata/write_d2_pkl.py", st, pkl)
			cfg2, s2, err := Detectron2Model(pkl, "", classes)
			if err != nil {
				t.Fatal(err)
			}
			if cfg2.Arch != tc.arch || cfg2.ResNet != tc.resnet || cfg2.FPNChannels != 32 || cfg2.FCDim != 24 ||
				cfg2.Transform.SizeDivisible != 32 || cfg2.Transform.Norm.Std[0] != tc.std || !cfg2.RPN.Anchors.PerLevel ||
				!cfg2.RPN.Anchors.Detectron2 || !cfg2.RoIOp.Aligned || !cfg2.RoIOp.LevelEpsInLog || !cfg2.RoIHeads.BackgroundLast {
				t.Errorf("inferred config %+v", cfg2)
			}
			if len(s2) != len(state) {
				t.Errorf("imported %d tensors, the detector has %d", len(s2), len(state))
			}
			cfg2.Transform, cfg2.RoIHeads.ScoreThresh = cfg.Transform, 0
			m2, err := build(pkl, cfg2, s2, detection.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m2.Close()
			// A 96x64 input: P2..P6 of 24x16 .. 2x1 cells.
			img := detection.Image{W: 96, H: 64, OrigW: 96, OrigH: 64, Data: make([]float32, 3*96*64)}
			rng := rand.New(rand.NewSource(6))
			for i := range img.Data {
				img.Data[i] = float32(rng.NormFloat64())
			}
			props, _, err := m.PredictProposals(img)
			if err != nil {
				t.Fatal(err)
			}
			if n := 3 * (24*16 + 12*8 + 6*4 + 3*2 + 2*1); len(props) == 0 || len(props) > n {
				t.Errorf("%d proposals from %d anchors", len(props), n)
			}
			d1 := sameDetections(t, m, m2, img)
			t.Logf("%s (narrow): %d tensors, %d proposals, %d detections, identical after the import", tc.arch, len(state), len(props), d1.Len())
		})
	}
}
