package checkpoint

import (
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"resdet/datasets"
	"resdet/detection"
	"resdet/internal/testutil"
	"resdet/weights"
)

// resnetClassifier writes a torchvision resnet<depth> classifier .pth with
// random weights into dir (testdata/gen_resnet_classifier.py).
func resnetClassifier(t *testing.T, dir string, depth int) string {
	t.Helper()
	path := filepath.Join(dir, "resnet.pth")
	testutil.RunScript(t, "testdata/gen_resnet_classifier.py", path, "--depth", strconv.Itoa(depth))
	return path
}

// TestReadInitKinds reads each kind of starting point and checks what
// ReadInit says it is.
func TestReadInitKinds(t *testing.T) {
	d2 := d2Fixture(t, "r50-c4", "model_final.pkl")
	c2 := d2Fixture(t, "c2", "R-50.pkl")
	dir := t.TempDir()
	tv18 := resnetClassifier(t, dir, 18)
	native := filepath.Join(dir, "native.safetensors")
	m, err := LoadDetectron2(d2, "", datasets.COCOClasses(), detection.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Save(native, m); err != nil {
		t.Fatal(err)
	}
	noExt := filepath.Join(dir, "r50-noext")
	raw, err := os.ReadFile(c2)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(noExt, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	tvC4, _ := genFasterRCNN(t, "--depth", "50", "--classes", "5", "--image", "128x96", "--min-size", "96", "--max-size", "128")
	tvState, err := weights.LoadTorch(tv18)
	if err != nil {
		t.Fatal(err)
	}
	tvST := filepath.Join(dir, "resnet18.safetensors")
	if err := weights.WriteSafetensors(tvST, tvState, nil); err != nil {
		t.Fatal(err)
	}
	narrow := detection.ResNetConfig{WidthPerGroup: 16, Res2OutChannels: 64}
	msra := narrow
	msra.StrideIn1x1 = true
	tests := []struct {
		name      string
		path      string
		publisher Publisher
		detector  bool
		depth     int
		resnet    detection.ResNetConfig
		arch      string
		classes   []string
		describe  string
	}{
		{name: "detectron2 zoo", path: d2, publisher: PublisherDetectron2, detector: true, depth: 50, resnet: msra, arch: "r50-c4", classes: datasets.COCOClasses(), describe: "a Detectron2 r50-c4 detector (80 classes)"},
		{name: "msra", path: c2, publisher: PublisherMSRA, depth: 50, resnet: msra, describe: "MSRA ImageNet ResNet-50"},
		{name: "msra without extension", path: noExt, publisher: PublisherMSRA, depth: 50, resnet: msra},
		{name: "torchvision classifier", path: tv18, publisher: PublisherTorchvision, depth: 18, describe: "a torchvision ImageNet ResNet-18"},
		{name: "torchvision classifier, safetensors", path: tvST, publisher: PublisherTorchvision, depth: 18, describe: "a torchvision ImageNet ResNet-18"},
		{name: "native", path: native, publisher: PublisherResdet, detector: true, depth: 50, resnet: msra, arch: "r50-c4", classes: datasets.COCOClasses(), describe: "a resdet r50-c4 detector (80 classes)"},
		{name: "torchvision C4 detector", path: filepath.Join(tvC4, "model.pth"), publisher: PublisherTorchvision, detector: true, depth: 50, arch: "r50-c4",
			classes: []string{"class1", "class2", "class3", "class4", "class5"}, describe: "a torchvision r50-c4 detector (5 classes)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := ReadInit(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if in.Publisher != tc.publisher || in.Detector != tc.detector || in.Depth != tc.depth || in.ResNet != tc.resnet {
				t.Errorf("publisher %s detector %v depth %d resnet %+v, want %s %v %d %+v", in.Publisher, in.Detector, in.Depth, in.ResNet, tc.publisher, tc.detector, tc.depth, tc.resnet)
			}
			if tc.detector {
				if in.Config.Arch != tc.arch || in.Config.RoIHeads.BackgroundLast || !slices.Equal(in.Classes, tc.classes) || !slices.Equal(in.Config.Classes, tc.classes) {
					t.Errorf("arch %s background last %v classes %v", in.Config.Arch, in.Config.RoIHeads.BackgroundLast, in.Classes[:3])
				}
				if _, err := detection.New(in.Config, detection.Options{}); err != nil {
					t.Errorf("the file's configuration builds no detector: %v", err)
				}
			}
			if !strings.Contains(in.Describe(), tc.describe) {
				t.Errorf("Describe %q lacks %q", in.Describe(), tc.describe)
			}
		})
	}
}

// TestReadInitDetectron2Predictor: the Detectron2 predictor read for
// training has the background first and each class's rows as in the file.
func TestReadInitDetectron2Predictor(t *testing.T) {
	path := d2Fixture(t, "r50-c4", "model_final.pkl")
	in, err := ReadInit(path)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := weights.ReadDetectron2(path)
	if err != nil {
		t.Fatal(err)
	}
	const k = 80
	for _, mod := range []struct {
		name string
		per  int
	}{{"cls_score", 1}, {"bbox_pred", 4}} {
		for _, p := range []string{"weight", "bias"} {
			name := "roi_heads.box_predictor." + mod.name + "." + p
			got, want := in.State()[name], ck.State[name]
			row := len(want.Data) / want.Shape[0]
			for c := 0; c < k; c++ { // class c: our row 1+c, Detectron2's row c
				for j := 0; j < mod.per; j++ {
					g, w := (1+c)*mod.per+j, c*mod.per+j
					if !slices.Equal(got.Data[g*row:(g+1)*row], want.Data[w*row:(w+1)*row]) {
						t.Fatalf("%s: class %d row %d differs from the file's row %d", name, c, g, w)
					}
				}
			}
			bg := got.Data[:mod.per*row]
			if mod.name == "cls_score" && !slices.Equal(bg, want.Data[k*row:]) {
				t.Errorf("%s: background row is not the file's last", name)
			}
			if mod.name == "bbox_pred" && slices.ContainsFunc(bg, func(v float32) bool { return v != 0 }) {
				t.Errorf("%s: background deltas not zero", name)
			}
		}
	}
}

// TestReadInitBadInput: each bad file is a one-line error naming the file
// and what is wrong.
func TestReadInitBadInput(t *testing.T) {
	c2 := d2Fixture(t, "c2", "R-50.pkl")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	raw, err := os.ReadFile(c2)
	if err != nil {
		t.Fatal(err)
	}
	tv := resnetClassifier(t, dir, 18)
	tvRaw, err := os.ReadFile(tv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       []string
	}{
		{name: "truncated pickle", path: write("R-50.pkl", raw[:len(raw)/3]), want: []string{"R-50.pkl", "truncated"}},
		{name: "truncated pth", path: write("cut.pth", tvRaw[:len(tvRaw)/2]), want: []string{"cut.pth"}},
		{name: "unknown format", path: write("weights.bin", []byte("GIF89a not weights at all")), want: []string{"weights.bin", "unknown format"}},
		{name: "jpeg as pkl", path: write("photo.pkl", []byte("\xff\xd8\xff\xe0 JFIF")), want: []string{"photo.pkl"}},
		{name: "missing", path: filepath.Join(dir, "none.pkl"), want: []string{"none.pkl", "no such file"}},
		{name: "cifar resnet", path: "../backbone/testdata/cifar20/model.pth", want: []string{"cifar20/model.pth", "layer3.2.conv1.weight", "no ResNet depth"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadInit(tc.path)
			testutil.OneLineError(t, err, tc.want...)
		})
	}
}

// TestFitArch: a backbone's depth and a detector's architecture win over an
// arch left at its default, and a chosen arch that differs is an error
// naming the file and the tensor.
func TestFitArch(t *testing.T) {
	d2, err := ReadInit(d2Fixture(t, "r50-c4", "model_final.pkl"))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ReadInit(d2Fixture(t, "c2", "R-50.pkl"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      *Init
		arch    string
		chosen  bool
		want    string
		wantErr []string
	}{
		{name: "backbone, default arch", in: c2, arch: "r101-c4", want: "r50-c4"},
		{name: "backbone, dc5 kept", in: c2, arch: "r101-dc5", want: "r50-dc5"},
		{name: "backbone, chosen", in: c2, arch: "r50-dc5", chosen: true, want: "r50-dc5"},
		{name: "backbone, chosen depth differs", in: c2, arch: "r101-c4", chosen: true, wantErr: []string{"R-50.pkl", "--arch r101-c4", "res4_5_branch2a_w", "ResNet-50"}},
		{name: "detector, default arch", in: d2, arch: "r101-c4", want: "r50-c4"},
		{name: "detector, chosen depth differs", in: d2, arch: "r101-c4", chosen: true, wantErr: []string{"model_final.pkl", "detector is r50-c4", "backbone.layer3.5.conv1.weight"}},
		{name: "detector, chosen kind differs", in: d2, arch: "r50-dc5", chosen: true, wantErr: []string{"model_final.pkl", "--arch r50-dc5", "detector is r50-c4", "backbone.layer4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.FitArch(tc.arch, tc.chosen)
			if tc.wantErr == nil {
				if err != nil || got != tc.want {
					t.Errorf("FitArch = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("FitArch = %q, want an error", got)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestReadInitDetectron2DC5 writes a narrow R50-DC5 detector in
// Detectron2's file format (random weights, Detectron2's names, through
// testdata/safetensors_to_d2pkl.py) and reads it as a starting point: the
// DC5 architecture (dilated res5, fc1/fc2 of the file's width) is the
// file's, the predictor comes background first, the state loads into the
// configuration read, and an --arch of the C4 kind is refused naming the
// box head's tensor.
func TestReadInitDetectron2DC5(t *testing.T) {
	classes := detection.DefaultClassNames(80)
	cfg := detection.Detectron2DC5Config("r50-dc5", classes)
	cfg.ResNet.WidthPerGroup, cfg.ResNet.Res2OutChannels = 16, 64
	cfg.FCDim = 32
	m, err := detection.New(cfg, detection.Options{Rng: rand.New(rand.NewSource(5))})
	if err != nil {
		t.Fatal(err)
	}
	state := m.State()
	m.Close()
	d2 := make(weights.State, len(state))
	for n, tt := range state {
		d2[ourToD2DC5(t, n)] = tt
	}
	dir := t.TempDir()
	st, pkl := filepath.Join(dir, "dc5.safetensors"), filepath.Join(dir, "model_final_dc5.pkl")
	if err := weights.WriteSafetensors(st, d2, nil); err != nil {
		t.Fatal(err)
	}
	testutil.RunScript(t, "testdata/safetensors_to_d2pkl.py", st, pkl)
	in, err := ReadInit(pkl)
	if err != nil {
		t.Fatal(err)
	}
	c := in.Config
	if !in.Detector || in.Publisher != PublisherDetectron2 || c.Arch != "r50-dc5" || c.FCDim != 32 || c.ResNet.Res5Dilation != 2 ||
		in.ResNet != (detection.ResNetConfig{StrideIn1x1: true, WidthPerGroup: 16, Res2OutChannels: 64, Res5Dilation: 2}) || c.RoIHeads.BackgroundLast {
		t.Errorf("read %s: arch %s FCDim %d resnet %+v background last %v", in.Publisher, c.Arch, c.FCDim, in.ResNet, c.RoIHeads.BackgroundLast)
	}
	s := in.State()
	cls, box := s["roi_heads.box_predictor.cls_score.weight"], s["roi_heads.box_predictor.bbox_pred.weight"]
	if !slices.Equal(cls.Shape, []int{81, 32}) || !slices.Equal(box.Shape, []int{324, 32}) ||
		!slices.Equal(cls.Data[:32], state["roi_heads.box_predictor.cls_score.weight"].Data[80*32:]) ||
		!slices.Equal(box.Data[4*32:], state["roi_heads.box_predictor.bbox_pred.weight"].Data) {
		t.Errorf("predictor %v %v: want the background's row first and 4 zero background rows before the file's deltas", cls.Shape, box.Shape)
	}
	m2, err := detection.New(c, detection.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if err := m2.Load(s); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m2.State()["roi_heads.box_head.fc1.weight"].Data, state["roi_heads.box_head.fc1.weight"].Data) {
		t.Error("fc1 differs from the file's")
	}
	_, err = in.FitArch("r50-c4", true)
	if err == nil || !strings.Contains(err.Error(), "detector is r50-dc5") || !strings.Contains(err.Error(), "roi_heads.box_head.fc1.weight") {
		t.Errorf("FitArch(r50-c4) = %v, want an error naming the box head's tensor", err)
	}
}
