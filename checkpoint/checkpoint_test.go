package checkpoint

import (
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"resdet/detection"
	"resdet/weights"
)

// newSmall is a ResNet-18 C4 detector for small images with seeded weights,
// its class logits spread so that some scores pass the threshold.
func newSmall(t *testing.T, seed int64) *detection.FasterRCNN {
	t.Helper()
	cfg := detection.DefaultConfig("r18-c4", []string{"a", "b", "c"})
	cfg.Transform.MinSize, cfg.Transform.MaxSize = 64, 96
	cfg.RPN.Anchors.Sizes = []float32{16, 32, 64}
	cfg.RPN.PostNMSTopNTest = 30
	cfg.RoIHeads.ScoreThresh = 0.2
	m, err := detection.New(cfg, detection.Options{Rng: rand.New(rand.NewSource(seed))})
	if err != nil {
		t.Fatal(err)
	}
	s := m.State()
	for i := range s["roi_heads.box_predictor.cls_score.weight"].Data {
		s["roi_heads.box_predictor.cls_score.weight"].Data[i] *= 5
	}
	if err := m.Load(s); err != nil {
		t.Fatal(err)
	}
	return m
}

func randImage(seed int64, w, h int) detection.Image {
	r := rand.New(rand.NewSource(seed))
	d := make([]float32, 3*w*h)
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
	return detection.Image{Data: d, W: w, H: h, OrigW: w * 2, OrigH: h * 2}
}

func TestCheckpointRoundTrip(t *testing.T) {
	m := newSmall(t, 3)
	defer m.Close()
	m.Config.Transform.Norm = detection.CaffeNormalization()
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := Save(path, m); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(path, detection.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if !reflect.DeepEqual(m.Config, m2.Config) {
		t.Errorf("config\n got %+v\nwant %+v", m2.Config, m.Config)
	}
	if !reflect.DeepEqual(m.State(), m2.State()) {
		t.Error("states differ")
	}
	img := randImage(4, 70, 64)
	d1, err := m.Predict(img)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := m2.Predict(img)
	if err != nil {
		t.Fatal(err)
	}
	if d1.Len() == 0 || !reflect.DeepEqual(d1, d2) {
		t.Errorf("detections differ (%d, %d)", d1.Len(), d2.Len())
	}
}

// TestReadErrors: files that are not detector checkpoints give errors
// naming the problem.
func TestReadErrors(t *testing.T) {
	m := newSmall(t, 1)
	defer m.Close()
	good := m.State()
	dir := t.TempDir()
	// Files that are not detector checkpoints.
	plain := filepath.Join(dir, "plain.safetensors")
	if err := weights.WriteSafetensors(plain, good, nil); err != nil {
		t.Fatal(err)
	}
	badCfg := filepath.Join(dir, "badcfg.safetensors")
	if err := weights.WriteSafetensors(badCfg, good, map[string]string{FormatKey: Format,
		ConfigKey: `{"Arch": "r7-c4", "Classes": ["a"]}`}); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.safetensors")
	if err := os.WriteFile(garbage, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, path, wantErr string }{
		{"no metadata", plain, `metadata resdet.format is "", want "fasterrcnn/v2" or "fasterrcnn-c4/v1"`},
		{"bad config", badCfg, `unknown architecture "r7-c4"`},
		{"not safetensors", garbage, "garbage.safetensors"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Load(c.path, detection.Options{}); err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("error %v, want one containing %q", err, c.wantErr)
			}
		})
	}
}

func TestFromTorchvision(t *testing.T) {
	ten := weights.Tensor{Shape: []int{1}, Data: []float32{1}}
	cls := weights.Tensor{Shape: []int{21, 2048}, Data: make([]float32, 21*2048)}
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr string
	}{
		{name: "C4 construction",
			in: []string{"backbone.0.weight", "backbone.1.running_var", "backbone.4.0.conv1.weight", "backbone.6.5.bn3.bias",
				"roi_heads.box_head.0.0.downsample.0.weight", "roi_heads.box_head.0.2.conv3.weight",
				"rpn.head.conv.0.0.weight", "rpn.head.cls_logits.bias"},
			want: []string{"backbone.conv1.weight", "backbone.bn1.running_var", "backbone.layer1.0.conv1.weight", "backbone.layer3.5.bn3.bias",
				"backbone.layer4.0.downsample.0.weight", "backbone.layer4.2.conv3.weight",
				"rpn.head.conv.weight", "rpn.head.cls_logits.bias"}},
		{name: "body wrapper, bare layer4, old rpn names",
			in:   []string{"backbone.body.5.1.conv2.weight", "roi_heads.box_head.0.conv1.weight", "roi_heads.box_head.0.downsample.1.weight", "rpn.head.conv.weight", "backbone.body.1.num_batches_tracked"},
			want: []string{"backbone.layer2.1.conv2.weight", "backbone.layer4.0.conv1.weight", "backbone.layer4.0.downsample.1.weight", "rpn.head.conv.weight"}},
		{name: "named layer4", in: []string{"roi_heads.box_head.layer4.1.bn1.weight"}, want: []string{"backbone.layer4.1.bn1.weight"}},
		{name: "fpn model", in: []string{"backbone.fpn.inner_blocks.0.weight"}, wantErr: `unexpected tensor "backbone.fpn.inner_blocks.0.weight"`},
		{name: "maxpool index", in: []string{"backbone.3.weight"}, wantErr: `unexpected tensor "backbone.3.weight"`},
		{name: "mask head", in: []string{"roi_heads.mask_head.0.weight"}, wantErr: `unexpected tensor "roi_heads.mask_head.0.weight"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := weights.State{"roi_heads.box_predictor.cls_score.weight": cls}
			for _, n := range tt.in {
				s[n] = ten
			}
			got, k, err := FromTorchvision(s)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k != 20 {
				t.Errorf("K = %d, want 20", k)
			}
			want := append([]string{"roi_heads.box_predictor.cls_score.weight"}, tt.want...)
			gotNames := got.Names()
			wantNames := weights.State{}
			for _, n := range want {
				wantNames[n] = ten
			}
			if !reflect.DeepEqual(gotNames, wantNames.Names()) {
				t.Errorf("names\n got %v\nwant %v", gotNames, wantNames.Names())
			}
		})
	}
}
