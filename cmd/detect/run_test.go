package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"resdet/checkpoint"
	"resdet/datasets"
	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/inference"
	"resdet/inference/inferencetest"
	"resdet/internal/cli"
	"resdet/nn"
	"resdet/train"
)

// libraryResult runs the detector through the library on one image.
func libraryResult(t *testing.T, weights, path string, thresh float32) inference.Result {
	t.Helper()
	m, err := checkpoint.Load(weights, detection.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.RoIHeads.Config.ScoreThresh = thresh
	tr := imageio.Transform{MinSize: m.Config.Transform.MinSize, MaxSize: m.Config.Transform.MaxSize, Norm: imageio.Normalization(m.Config.Transform.Norm)}
	res, _, _, err := inference.DetectFile(m, tr, path, 50)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRunDetect(t *testing.T) {
	dir := t.TempDir()
	weights := inferencetest.TinyDetector(t, dir)
	imgs := filepath.Join(dir, "imgs")
	if err := os.Mkdir(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	inferencetest.WriteImage(t, filepath.Join(imgs, "000000000042.png"), 80, 60, 1)
	inferencetest.WriteImage(t, filepath.Join(imgs, "000000000007.jpg"), 50, 70, 2)
	bad := filepath.Join(dir, "bad")
	if err := os.Mkdir(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(bad, "empty.jpg"), nil, 0o644))
	must(os.WriteFile(filepath.Join(bad, "text.png"), []byte("not an image at all"), 0o644))
	empty := filepath.Join(dir, "nothing")
	must(os.Mkdir(empty, 0o755))
	classes := filepath.Join(dir, "classes.txt")
	must(os.WriteFile(classes, []byte("# my classes\nkitten\n\npuppy\n"), 0o644))
	pngPath := filepath.Join(imgs, "000000000042.png")
	want := libraryResult(t, weights, pngPath, 0.3)
	t.Logf("library: %d detections above 0.3", len(want.Detections))
	if len(want.Detections) == 0 {
		t.Fatal("the test model finds nothing: the output checks would be empty")
	}

	// A threshold between the scores: the median.
	thr := float64(want.Detections[len(want.Detections)/2].Score)

	// A run folder as train-det writes it: detect reads its final model.
	run := filepath.Join(dir, "run")
	must(os.Mkdir(run, 0o755))
	wb, err := os.ReadFile(weights)
	must(err)
	must(os.WriteFile(train.RunDir(run).Final(), wb, 0o644))

	gt := filepath.Join(dir, "gt.json")
	must(datasets.WriteCOCO(gt, &datasets.Set{Classes: []string{"dog", "cat"}, CategoryIDs: []int{18, 17},
		Records: []datasets.Record{{ID: 9, Name: "000000000042.png", Width: 80, Height: 60}, {ID: 5, Name: "000000000007.jpg", Width: 50, Height: 70}}}))

	tests := []struct {
		name    string
		opts    DetectOptions
		wantErr string
		check   func(t *testing.T, stdout, stderr string)
	}{
		{name: "table", opts: DetectOptions{Inputs: []string{pngPath}, ScoreThresh: 0.3},
			check: func(t *testing.T, stdout, stderr string) {
				head := pngPath + " (80x60): "
				if !strings.HasPrefix(stdout, head) || !strings.Contains(stdout, "class  score") {
					t.Errorf("table:\n%s", stdout)
				}
				if got := strings.Count(stdout, "\n"); got != len(want.Detections)+2 {
					t.Errorf("%d lines, want %d", got, len(want.Detections)+2)
				}
				if !strings.Contains(stderr, "detect: 1 of 1 images") || !strings.Contains(stderr, "network") || !strings.Contains(stderr, "precision fp32: asked for)") {
					t.Errorf("summary: %q", stderr)
				}
			}},
		{name: "json", opts: DetectOptions{Inputs: []string{pngPath}, ScoreThresh: 0.3, JSON: true},
			check: func(t *testing.T, stdout, _ string) {
				var got inference.Result
				if err := json.Unmarshal([]byte(stdout), &got); err != nil {
					t.Fatalf("%v: %q", err, stdout)
				}
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(want)
				if !bytes.Equal(gj, wj) {
					t.Errorf("json\n got %s\nwant %s", gj, wj)
				}
				for _, d := range got.Detections {
					if d.Box[0] < 0 || d.Box[1] < 0 || d.Box[2] > 80 || d.Box[3] > 60 || !(d.Score > 0.3) ||
						(d.Label != "cat" && d.Label != "dog") || d.ClassID < 1 || d.ClassID > 2 {
						t.Errorf("detection %+v outside the 80x60 image, below 0.3 or unknown class", d)
					}
				}
			}},
		{name: "run folder", opts: DetectOptions{Inputs: []string{pngPath}, ScoreThresh: 0.3, JSON: true, Weights: run},
			check: func(t *testing.T, stdout, _ string) {
				var got inference.Result
				if err := json.Unmarshal([]byte(stdout), &got); err != nil {
					t.Fatalf("%v: %q", err, stdout)
				}
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(want)
				if !bytes.Equal(gj, wj) {
					t.Errorf("json\n got %s\nwant %s", gj, wj)
				}
			}},
		{name: "class file", opts: DetectOptions{Inputs: []string{pngPath}, ScoreThresh: 0.3, JSON: true, Classes: classes},
			check: func(t *testing.T, stdout, _ string) {
				if !strings.Contains(stdout, `"label":"kitten"`) && !strings.Contains(stdout, `"label":"puppy"`) {
					t.Errorf("class names from the file not used: %s", stdout)
				}
			}},
		{name: "threshold", opts: DetectOptions{Inputs: []string{pngPath}, ScoreThresh: thr, JSON: true},
			check: func(t *testing.T, stdout, _ string) {
				var got inference.Result
				if err := json.Unmarshal([]byte(stdout), &got); err != nil {
					t.Fatal(err)
				}
				for _, d := range got.Detections {
					if !(float64(d.Score) > thr) {
						t.Errorf("score %v kept at %v", d.Score, thr)
					}
				}
				if len(got.Detections) >= len(want.Detections) {
					t.Errorf("%d detections at %v, %d at 0.3", len(got.Detections), thr, len(want.Detections))
				}
			}},
		{name: "folder, draw and coco ids from file names", opts: DetectOptions{Inputs: []string{imgs}, ScoreThresh: 0.3, JSON: true,
			OutDir: filepath.Join(dir, "shown"), COCOResults: filepath.Join(dir, "res.json")},
			check: func(t *testing.T, stdout, _ string) {
				if n := strings.Count(stdout, "\n"); n != 2 {
					t.Errorf("%d JSON lines, want 2", n)
				}
				for _, name := range []string{"000000000042.png", "000000000007.jpg"} {
					im, err := imageio.Read(filepath.Join(dir, "shown", name))
					if err != nil {
						t.Fatal(err)
					}
					if src, _ := imageio.Read(filepath.Join(imgs, name)); im.W != src.W || im.H != src.H {
						t.Errorf("%s drawn %dx%d, want %dx%d", name, im.W, im.H, src.W, src.H)
					}
				}
				s := &datasets.Set{Classes: []string{"cat", "dog"}}
				dets, err := datasets.ReadCOCOResults(filepath.Join(dir, "res.json"), s)
				if err != nil {
					t.Fatal(err)
				}
				n42 := 0
				for _, d := range dets {
					if d.ImageID == 42 {
						n42++
					} else if d.ImageID != 7 {
						t.Errorf("image id %d", d.ImageID)
					}
				}
				if n42 != len(want.Detections) {
					t.Errorf("%d results for image 42, want %d", n42, len(want.Detections))
				}
			}},
		{name: "coco gt", opts: DetectOptions{Inputs: []string{pngPath}, ScoreThresh: 0.3, COCOResults: filepath.Join(dir, "res2.json"), COCOGT: gt},
			check: func(t *testing.T, _, _ string) {
				data, err := os.ReadFile(filepath.Join(dir, "res2.json"))
				if err != nil {
					t.Fatal(err)
				}
				var rs []struct {
					ImageID    int64 `json:"image_id"`
					CategoryID int   `json:"category_id"`
				}
				if err := json.Unmarshal(data, &rs); err != nil {
					t.Fatal(err)
				}
				if len(rs) != len(want.Detections) {
					t.Fatalf("%d results, want %d", len(rs), len(want.Detections))
				}
				for i, r := range rs {
					cat := map[string]int{"cat": 17, "dog": 18}[want.Detections[i].Label]
					if r.ImageID != 9 || r.CategoryID != cat {
						t.Errorf("result %d: image %d category %d, want 9 and %d", i, r.ImageID, r.CategoryID, cat)
					}
				}
			}},
		{name: "bad inputs listed, others run", opts: DetectOptions{Inputs: []string{pngPath, bad, empty, filepath.Join(dir, "missing.jpg"), filepath.Join(dir, "*.gif")}, ScoreThresh: 0.3, JSON: true},
			wantErr: "5 of 6 inputs failed",
			check: func(t *testing.T, stdout, stderr string) {
				if strings.Count(stdout, "\n") != 1 || !strings.Contains(stdout, "000000000042.png") {
					t.Errorf("the good image was not processed: %q", stdout)
				}
				for _, s := range []string{"detect: 5 failed:", "empty.jpg: empty file", "text.png: ", "nothing: no images: folder has no",
					"missing.jpg: ", "*.gif: no images: the pattern matches no file"} {
					if !strings.Contains(stderr, s) {
						t.Errorf("stderr lacks %q:\n%s", s, stderr)
					}
				}
			}},
		{name: "huge image", opts: DetectOptions{Inputs: []string{pngPath}, ScoreThresh: 0.3, MaxPixels: 0.001},
			wantErr: "1 of 1 inputs failed",
			check: func(t *testing.T, _, stderr string) {
				if !strings.Contains(stderr, "image is 80x60 (0.0 megapixels), above the --max-pixels cap of 0.001") {
					t.Errorf("stderr: %s", stderr)
				}
			}},
		{name: "class count", opts: DetectOptions{Inputs: []string{pngPath}, Classes: "voc"},
			wantErr: "--classes voc gives 20 names, the weights have 2 classes"},
		{name: "other arch", opts: DetectOptions{Inputs: []string{pngPath}, Arch: "r101-c4"},
			wantErr: "holds an r18-c4 detector, --arch says r101-c4"},
		{name: "roi pool", opts: DetectOptions{Inputs: []string{pngPath}, RoIOp: "pool", JSON: true, ScoreThresh: 0.3},
			check: func(t *testing.T, stdout, _ string) {
				if stdout == "" {
					t.Error("no output")
				}
			}},
		{name: "coco gt without class", opts: DetectOptions{Inputs: []string{pngPath}, Classes: classes, COCOResults: filepath.Join(dir, "r3.json"), COCOGT: gt},
			wantErr: `class "kitten" (class_id 1) is not one of its categories`},
		{name: "auto precision", opts: DetectOptions{Inputs: []string{pngPath}, ScoreThresh: 0.3, Precision: nn.PrecisionAuto},
			check: func(t *testing.T, _, stderr string) {
				want := "precision fp32: auto: "
				if nn.AMXSupported() && nn.BF16Supported() {
					want = "precision bf16: auto: "
				}
				if !strings.Contains(stderr, want) {
					t.Errorf("summary %q does not say %q", stderr, want)
				}
			}},
		bf16Case(pngPath),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, out, errOut := cli.Test()
			o := tt.opts
			o.IO = ios
			if o.Weights == "" {
				o.Weights = weights
			}
			if o.MaxPixels == 0 {
				o.MaxPixels = 50
			}
			err := runDetect(&o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("%v\nstderr: %s", err, errOut.String())
			}
			if tt.check != nil {
				tt.check(t, out.String(), errOut.String())
			}
		})
	}
}

// bf16Case is the run test of --precision bf16: a summary naming bf16 where
// the CPU has it, else an error naming the flag and the CPU.
func bf16Case(img string) struct {
	name    string
	opts    DetectOptions
	wantErr string
	check   func(t *testing.T, stdout, stderr string)
} {
	c := struct {
		name    string
		opts    DetectOptions
		wantErr string
		check   func(t *testing.T, stdout, stderr string)
	}{name: "bf16 precision", opts: DetectOptions{Inputs: []string{img}, ScoreThresh: 0.3, Precision: nn.PrecisionBF16}}
	if err := nn.BF16Error(); err != nil {
		c.wantErr = "--precision bf16: nn: precision bf16: bf16 convolution needs"
		return c
	}
	c.check = func(t *testing.T, stdout, stderr string) {
		if !strings.Contains(stderr, "precision bf16: asked for") || !strings.Contains(stdout, "class  score") {
			t.Errorf("stdout %q, stderr %q: want a table and bf16 in the summary", stdout, stderr)
		}
	}
	return c
}
