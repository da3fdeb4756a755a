package train

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"resdet/checkpoint"
	"resdet/datasets"
	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/internal/testutil"
	"resdet/weights"
	"resdet/zoo"
)

// d2Fixture returns a file of the shared Detectron2 fixtures (skipping, or
// failing with RESDET_REQUIRE_SHARED=1, when they are absent).
func d2Fixture(t testing.TB, parts ...string) string {
	return testutil.SharedDir(t, append([]string{"fixtures", "detectron2"}, parts...)...)
}

// initConfig is a run of iters iterations on size-pixel images starting
// from init, through ApplyInit as train-det does (no flag chosen but the
// image size).
func initConfig(t testing.TB, init string, classes []string, size, iters int) (Config, []string) {
	t.Helper()
	c := DefaultConfig("r101-c4", classes)
	c.Init = init
	c.Model.RoIHeads.BatchSizePerImage = 32
	c.Iters, c.Batch, c.BaseLR, c.WarmupIters = iters, 2, 0.01, 5
	c.LogEvery, c.CheckpointEvery = 1, 1000
	sizes := func(m *detection.Config) {
		m.Transform.MinSize, m.Transform.MaxSize = size, size
		m.RPN.PreNMSTopNTrain, m.RPN.PostNMSTopNTrain = 600, 300
		m.RPN.PreNMSTopNTest, m.RPN.PostNMSTopNTest = 300, 100
	}
	sizes(&c.Model)
	c, notes, err := ApplyInit(c, InitChoices{Model: sizes})
	if err != nil {
		t.Fatal(err)
	}
	return c, notes
}

// TestFineTuneDetectron2 fine-tunes the Detectron2-format R50-C4 fixture
// (COCO's 80 classes, narrow widths, random weights) on synthetic VOC data
// with another class list (six shapes): the predictor is re-initialised,
// everything else is the file's, the loss falls, and model_final reloads as
// a detector of the six classes.
func TestFineTuneDetectron2(t *testing.T) {
	if testing.Short() {
		t.Skip("fine-tunes a detector for 24 iterations")
	}
	path := d2Fixture(t, "r50-c4", "model_final.pkl")
	tv, _ := tinySynth(t, 10, 96) // 7 trainval images
	cfg, notes := initConfig(t, path, tv.Classes, 96, 24)
	cfg.FlipProb = 0
	t.Logf("%s", notes)
	if len(notes) != 1 || !strings.Contains(notes[0], "Detectron2 r50-c4 detector (80 classes)") || !strings.Contains(notes[0], "predictor re-initialised") {
		t.Errorf("log %q: want one line naming the Detectron2 detector and the re-initialised predictor", notes)
	}
	if cfg.Model.Arch != "r50-c4" || !cfg.Model.ResNet.StrideIn1x1 || cfg.Model.ResNet.WidthPerGroup != 16 || cfg.Model.RoIHeads.BackgroundLast ||
		cfg.Model.Transform.Preprocess != "detectron2" || cfg.Model.RPN.Anchors.NumAnchors() != 15 || cfg.FreezeAt != 2 || cfg.Norm != "frozen" {
		t.Errorf("config from the file: %+v (freeze %d, norm %s)", cfg.Model, cfg.FreezeAt, cfg.Norm)
	}
	var losses []float64
	dir := t.TempDir()
	res, err := Run(context.Background(), cfg, Data{Train: tv}, Options{Dir: dir, OnStep: func(_ int, l detection.Losses) {
		losses = append(losses, l.Total())
	}})
	if err != nil {
		t.Fatal(err)
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	first, last := mean(losses[:4]), mean(losses[len(losses)-4:])
	t.Logf("mean loss of the first 4 iterations %.4f, last 4 %.4f", first, last)
	if !(last < 0.7*first) {
		t.Errorf("loss fell from %.4f to %.4f, want at least 30%% lower", first, last)
	}
	got, s, err := checkpoint.Read(res.Final)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Classes, tv.Classes) || s["roi_heads.box_predictor.cls_score.weight"].Shape[0] != len(tv.Classes)+1 {
		t.Errorf("model_final: classes %v, cls_score %v; want %v", got.Classes, s["roi_heads.box_predictor.cls_score.weight"].Shape, tv.Classes)
	}
	m, err := checkpoint.Load(res.Final, detection.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.NumClasses() != len(tv.Classes)+1 {
		t.Errorf("reloaded detector has %d classes, want %d", m.NumClasses(), len(tv.Classes)+1)
	}
}

// builtModel builds cfg's detector as Run does for a fresh run and returns
// its state.
func builtModel(t *testing.T, cfg Config) weights.State {
	t.Helper()
	s := &State{Config: cfg}
	if err := s.build(Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	defer s.trainer.Close()
	return s.model.State()
}

// TestFineTuneSubsetKeepsRows starts a VOC run from the Detectron2 fixture
// (COCO classes): the 20 VOC classes are COCO classes (six spelled
// otherwise), so each takes its COCO class's cls_score row and four
// bbox_pred rows, and the background its row, value by value; every other
// tensor is the file's.
func TestFineTuneSubsetKeepsRows(t *testing.T) {
	path := d2Fixture(t, "r50-c4", "model_final.pkl")
	voc := datasets.VOCClasses()
	cfg, notes := initConfig(t, path, voc, 96, 1)
	if !strings.Contains(notes[0], "predictor rows taken by class name for the 20 classes (of the file's 80)") || !strings.Contains(notes[0], "aeroplane<-airplane") {
		t.Errorf("log %q: want the rows taken by name", notes[0])
	}
	got := builtModel(t, cfg)
	ck, err := weights.ReadDetectron2(path)
	if err != nil {
		t.Fatal(err)
	}
	d2 := ck.State
	coco := datasets.COCOClasses()
	// Detectron2's rows: class c of COCO's 80 (category-id order) is row c,
	// the background row 80; deltas rows 4c..4c+3.
	for i, name := range voc {
		c := slices.IndexFunc(coco, func(n string) bool { return datasets.SameClass(n, name) })
		if c < 0 {
			t.Fatalf("VOC %s has no COCO class", name)
		}
		checkRows(t, got, d2, "cls_score", 1+i, c, 1)
		checkRows(t, got, d2, "bbox_pred", 1+i, c, 4)
	}
	checkRows(t, got, d2, "cls_score", 0, 80, 1)
	// Everything else: the file's (renamed as the importer does).
	_, want, err := checkpoint.FromDetectron2Model(d2, path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, w := range want {
		if strings.HasPrefix(name, "roi_heads.box_predictor.") {
			continue
		}
		if !slices.Equal(got[name].Data, w.Data) {
			t.Errorf("%s differs from the file's", name)
		}
		n++
	}
	t.Logf("%d tensors equal to the file's, 20 classes' predictor rows and the background's taken by name", n)
}

// checkRows compares the per rows of class row g of our predictor tensor
// mod with Detectron2's rows of class w (weights and biases).
func checkRows(t *testing.T, got, d2 weights.State, mod string, g, w, per int) {
	t.Helper()
	for _, p := range []string{"weight", "bias"} {
		name := "roi_heads.box_predictor." + mod + "." + p
		a, b := got[name], d2[name]
		row := len(b.Data) / b.Shape[0]
		if !slices.Equal(a.Data[g*per*row:(g+1)*per*row], b.Data[w*per*row:(w+1)*per*row]) {
			t.Errorf("%s: rows of class %d differ from Detectron2's rows of class %d", name, g, w)
		}
	}
}

// TestInitMSRA starts from the MSRA-layout R-50.pkl fixture (Caffe2 names):
// the backbone is ResNet-50 with the stride in the 1x1 and the file's
// widths, the input is Detectron2's (BGR 0..255 minus its mean, std 1, its
// resize), FrozenBN with the stem and res2 frozen; a few tensors are checked
// value by value through Detectron2's own mapping (c2_mapping_R-50.json:
// Caffe2 name -> Detectron2 name).
func TestInitMSRA(t *testing.T) {
	path := d2Fixture(t, "c2", "R-50.pkl")
	cfg, notes := initConfig(t, path, []string{"a", "b"}, 96, 1)
	if len(notes) != 1 || !strings.Contains(notes[0], "MSRA ImageNet ResNet-50") || !strings.Contains(notes[0], "stride in the 1x1") ||
		!strings.Contains(notes[0], "BGR 0..255") {
		t.Errorf("log %q: want one line saying what was chosen", notes)
	}
	tr := cfg.Model.Transform
	if cfg.Model.Arch != "r50-c4" || !cfg.Model.ResNet.StrideIn1x1 || cfg.Model.ResNet.WidthPerGroup != 16 || cfg.Model.ResNet.Res2OutChannels != 64 ||
		tr.Preprocess != "detectron2" || tr.Norm != (detection.Normalization{BGR: true, Range: 1, Mean: [3]float32{103.530, 116.280, 123.675}, Std: [3]float32{1, 1, 1}}) ||
		cfg.Norm != "frozen" || cfg.FreezeAt != 2 {
		t.Errorf("config %+v, transform %+v, norm %s, freeze %d", cfg.Model.ResNet, tr, cfg.Norm, cfg.FreezeAt)
	}
	if got, want := transformOf(cfg.Model), (imageio.Transform{Preprocess: imageio.Detectron2, MinSize: 96, MaxSize: 96, Norm: imageio.Detectron2Norm()}); got != want {
		t.Errorf("training images are loaded with %+v, want Detectron2's %+v", got, want)
	}
	var mapping map[string]*string
	raw, err := os.ReadFile(d2Fixture(t, "c2", "c2_mapping_R-50.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &mapping); err != nil {
		t.Fatal(err)
	}
	ck, err := weights.ReadDetectron2(path)
	if err != nil {
		t.Fatal(err)
	}
	got := builtModel(t, cfg)
	// Detectron2's name -> ours, for the tensors checked.
	ours := map[string]string{
		"backbone.stem.conv1.weight":             "backbone.conv1.weight",
		"backbone.stem.conv1.norm.weight":        "backbone.bn1.weight",
		"backbone.res2.0.conv1.weight":           "backbone.layer1.0.conv1.weight",
		"backbone.res3.0.shortcut.weight":        "backbone.layer2.0.downsample.0.weight",
		"backbone.stem.conv1.norm.running_mean":  "backbone.bn1.running_mean",
		"backbone.res4.2.conv2.norm.running_var": "backbone.layer3.2.bn2.running_var",
		"backbone.res3.0.conv1.weight":           "backbone.layer2.0.conv1.weight",
		"backbone.res4.5.conv3.norm.bias":        "backbone.layer3.5.bn3.bias",
		"roi_heads.res5.2.conv2.weight":          "backbone.layer4.2.conv2.weight",
		"roi_heads.res5.0.shortcut.norm.weight":  "backbone.layer4.0.downsample.1.weight",
		"roi_heads.res5.1.conv1.norm.bias":       "backbone.layer4.1.bn1.bias",
		"backbone.res2.1.conv2.norm.weight":      "backbone.layer1.1.bn2.weight",
		"backbone.res3.3.conv3.weight":           "backbone.layer2.3.conv3.weight",
		"roi_heads.res5.0.conv1.weight":          "backbone.layer4.0.conv1.weight",
		"backbone.res4.0.shortcut.norm.bias":     "backbone.layer3.0.downsample.1.bias",
		"backbone.res2.2.conv3.norm.weight":      "backbone.layer1.2.bn3.weight",
	}
	checked := 0
	for c2, d2 := range mapping {
		if d2 == nil {
			continue
		}
		name, ok := ours[*d2]
		if !ok {
			continue
		}
		w, g := ck.State[c2], got[name]
		if !slices.Equal(w.Shape, g.Shape) || !slices.Equal(w.Data, g.Data) {
			t.Errorf("%s (Detectron2's %s, Caffe2's %s) differs from the file's", name, *d2, c2)
		}
		checked++
	}
	if checked != len(ours) {
		t.Errorf("%d tensors checked through Detectron2's mapping, want %d", checked, len(ours))
	}
	t.Logf("%d backbone tensors equal to the Caffe2 file's through Detectron2's mapping", checked)
}

// TestFineTuneResumeIsExact is TestResumeIsExact for a fine-tuning run from
// the Detectron2 fixture: a run interrupted after 2 iterations and resumed
// has the losses of an uninterrupted one at every iteration
// (checkResumeIsExact).
func TestFineTuneResumeIsExact(t *testing.T) {
	if testing.Short() {
		t.Skip("fine-tunes a detector three times")
	}
	path := d2Fixture(t, "r50-c4", "model_final.pkl")
	tv, _ := tinySynth(t, 8, 96) // 6 trainval images: 3 batches per epoch
	cfg, _ := initConfig(t, path, tv.Classes, 96, 4)
	cfg.CheckpointEvery, cfg.Keep = 1, 2
	checkResumeIsExact(t, cfg, Data{Train: tv})
}

// TestApplyInitBadInput: a bad --init file fails in ApplyInit, before any
// training, with one line naming the file and the mismatch.
func TestApplyInitBadInput(t *testing.T) {
	dir := t.TempDir()
	tv := filepath.Join(dir, "resnet18.pth")
	testutil.RunScript(t, "../checkpoint/testdata/gen_resnet_classifier.py", tv, "--depth", "18")
	raw, err := os.ReadFile(tv)
	if err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(dir, "resnet18-cut.pth")
	if err := os.WriteFile(trunc, raw[:len(raw)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	unknown := filepath.Join(dir, "weights.h5")
	if err := os.WriteFile(unknown, []byte("\x89HDF\r\n\x1a\n not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	d2 := d2Fixture(t, "r50-c4", "model_final.pkl")
	c2 := d2Fixture(t, "c2", "R-50.pkl")
	tests := []struct {
		name, init, arch string
		chosen           bool
		want             []string
	}{
		{name: "classifier of another depth", init: tv, arch: "r50-c4", chosen: true, want: []string{tv, "--arch r50-c4", "backbone is r18-c4", "layer3.1.conv1.weight", "ResNet-18"}},
		{name: "truncated", init: trunc, want: []string{trunc}},
		{name: "unknown format", init: unknown, want: []string{unknown, "unknown format"}},
		{name: "MSRA backbone under torchvision's FPN", init: c2, arch: "tv-r50-fpn", chosen: true, want: []string{c2, "tv-r50-fpn", "torchvision's ResNet-50", "MSRA"}},
		{name: "detector of another depth", init: d2, arch: "r101-c4", chosen: true, want: []string{d2, "detector is r50-c4", "backbone.layer3.5.conv1.weight"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig(tc.arch, []string{"a"})
			if tc.arch == "" {
				c = DefaultConfig("r101-c4", []string{"a"})
			}
			c.Init = tc.init
			_, _, err := ApplyInit(c, InitChoices{Arch: tc.chosen})
			testutil.OneLineError(t, err, tc.want...)
		})
	}
	// The classifier of the right depth is taken, and sets the depth when
	// --arch is not chosen.
	c := DefaultConfig("r101-c4", []string{"a"})
	c.Init = tv
	got, notes, err := ApplyInit(c, InitChoices{})
	if err != nil || got.Model.Arch != "r18-c4" || got.Model.ResNet != (detection.ResNetConfig{}) || got.Model.Transform.Norm != detection.ImageNetNormalization() {
		t.Errorf("ApplyInit(resnet18.pth) = arch %s resnet %+v norm %+v, %v; want r18-c4 with torchvision's ResNet and input", got.Model.Arch, got.Model.ResNet, got.Model.Transform.Norm, err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "torchvision ImageNet ResNet-18") || !strings.Contains(notes[0], "as torchvision trains") {
		t.Errorf("log %q", notes)
	}
	want, err := weights.LoadTorch(tv)
	if err != nil {
		t.Fatal(err)
	}
	built := builtModel(t, got)
	for _, name := range []string{"conv1.weight", "bn1.running_var", "layer2.1.conv2.weight", "layer4.0.downsample.1.bias"} {
		if !slices.Equal(built["backbone."+name].Data, want[name].Data) {
			t.Errorf("backbone.%s differs from the file's %s", name, name)
		}
	}
}

// TestInitFile: --init takes a file as it is, or a published model's name,
// which is downloaded into the cache (here from a local server serving the
// MSRA-layout fixture as d2-r50-imagenet) and then read from it; anything
// else is an error naming it.
func TestInitFile(t *testing.T) {
	fixture := d2Fixture(t, "c2", "R-50.pkl")
	data, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	m, err := zoo.Lookup("d2-r50-imagenet")
	if err != nil {
		t.Fatal(err)
	}
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		if r.URL.Path != "/"+m.Path {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "R-50.pkl", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	cache := &zoo.Cache{Dir: t.TempDir(), BaseURL: srv.URL}
	ctx := context.Background()
	if got, err := InitFile(ctx, fixture, cache, false, nil); err != nil || got != fixture || requests != 0 {
		t.Errorf("InitFile(a file) = %q, %v after %d requests; want the file itself", got, err, requests)
	}
	if _, err := InitFile(ctx, "d2-r50-imagenet", cache, true, nil); err == nil || !strings.Contains(err.Error(), "detect models download d2-r50-imagenet") || requests != 0 {
		t.Errorf("InitFile(cached only) before the download = %v after %d requests, want an error saying how to fetch it", err, requests)
	}
	got, err := InitFile(ctx, "d2-r50-imagenet", cache, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got != cache.Path(m) || requests != 1 {
		t.Errorf("InitFile(d2-r50-imagenet) = %q after %d requests, want %q after 1", got, requests, cache.Path(m))
	}
	in, err := checkpoint.ReadInit(got)
	if err != nil || in.Publisher != checkpoint.PublisherMSRA || in.Depth != 50 {
		t.Errorf("the downloaded file reads as %+v, %v; want the MSRA ResNet-50", in, err)
	}
	if again, err := InitFile(ctx, "d2-r50-imagenet", cache, true, nil); err != nil || again != got || requests != 1 {
		t.Errorf("second InitFile = %q, %v after %d requests; want the cached file, no request", again, err, requests)
	}
	if _, err := InitFile(ctx, "d2-r999-c4", cache, false, nil); err == nil || !strings.Contains(err.Error(), "d2-r999-c4") || !strings.Contains(err.Error(), "no such file") ||
		!strings.Contains(err.Error(), "d2-r101-c4-3x") {
		t.Errorf("InitFile(neither a file nor a model) = %v, want an error naming it and the known models", err)
	}
}

// TestInitFreezeDefaults: --freeze-at and --norm follow the publisher (stem
// and res2 frozen, frozen BN) unless chosen, and the log line says which.
func TestInitFreezeDefaults(t *testing.T) {
	path := d2Fixture(t, "c2", "R-50.pkl")
	tests := []struct {
		name       string
		given      InitChoices
		freeze     int
		norm       string
		wantFreeze int
		wantNorm   string
		log        string
	}{
		{name: "publisher's", freeze: 0, norm: "trainable", wantFreeze: 2, wantNorm: "frozen", log: "frozen BN, stem and res2 frozen (as Detectron2 trains)"},
		{name: "freeze-at chosen", given: InitChoices{FreezeAt: true}, freeze: 1, norm: "trainable", wantFreeze: 1, wantNorm: "frozen", log: "frozen BN, stem frozen (as Detectron2 trains, --freeze-at as chosen)"},
		{name: "both chosen", given: InitChoices{FreezeAt: true, Norm: true}, freeze: 0, norm: "trainable", wantFreeze: 0, wantNorm: "trainable", log: "trainable BN, nothing frozen (as chosen)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig("r50-c4", []string{"a"})
			c.Init, c.FreezeAt, c.Norm = path, tc.freeze, tc.norm
			got, notes, err := ApplyInit(c, tc.given)
			if err != nil {
				t.Fatal(err)
			}
			if got.FreezeAt != tc.wantFreeze || got.Norm != tc.wantNorm {
				t.Errorf("freeze %d norm %s, want %d %s", got.FreezeAt, got.Norm, tc.wantFreeze, tc.wantNorm)
			}
			if len(notes) != 1 || !strings.Contains(notes[0], tc.log) {
				t.Errorf("log %q lacks %q", notes, tc.log)
			}
		})
	}
}
