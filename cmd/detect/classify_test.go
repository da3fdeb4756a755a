package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"resdet/internal/testutil"
)

func TestNewCmdClassifyArgs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		argv    string
		want    ClassifyOptions
		wantErr string
	}{
		{name: "defaults", argv: "--weights w.pth --arch resnet101 a.jpg",
			want: ClassifyOptions{Weights: "w.pth", Arch: "resnet101", TopK: 5, Images: []string{"a.jpg"}}},
		{name: "all flags", argv: "--weights w.safetensors --arch resnet18 --size 320x240 --topk 3 --json a.jpg b.png",
			want: ClassifyOptions{Weights: "w.safetensors", Arch: "resnet18", Size: "320x240", H: 320, W: 240, TopK: 3, JSON: true, Images: []string{"a.jpg", "b.png"}}},
		{name: "no image", argv: "--weights w.pth --arch resnet50", wantErr: "requires at least 1 arg"},
		{name: "no weights", argv: "--arch resnet50 a.jpg", wantErr: `"weights" not set`},
		{name: "bad arch", argv: "--weights w.pth --arch resnet42 a.jpg", wantErr: `--arch "resnet42"`},
		{name: "bad size", argv: "--weights w.pth --arch resnet50 --size 224 a.jpg", wantErr: `--size "224"`},
		{name: "zero size", argv: "--weights w.pth --arch resnet50 --size 0x224 a.jpg", wantErr: `--size "0x224"`},
		{name: "bad topk", argv: "--weights w.pth --arch resnet50 --topk 0 a.jpg", wantErr: "--topk 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got *ClassifyOptions
			cmd := newCmdClassify(func(o *ClassifyOptions) error { got = o; return nil })
			cmd.SetArgs(strings.Fields(tc.argv))
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			err := cmd.Execute()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.Out = nil
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("options\n got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestResizeCrop(t *testing.T) {
	// torchvision 0.14: Resize(256) makes the shorter side 256 and the longer
	// int(256*long/short); CenterCrop(224) starts at int(round((size-224)/2)).
	for _, tc := range []struct {
		name                  string
		w, h                  int
		newW, newH, left, top int
	}{
		{name: "landscape 500x375", w: 500, h: 375, newW: 341, newH: 256, left: 58, top: 16}, // round(58.5) = 58
		{name: "portrait 375x500", w: 375, h: 500, newW: 256, newH: 341, left: 16, top: 58},
		{name: "square", w: 224, h: 224, newW: 256, newH: 256, left: 16, top: 16},
		{name: "wide 640x427", w: 640, h: 427, newW: 383, newH: 256, left: 80, top: 16}, // int(383.7), round(79.5) = 80
	} {
		t.Run(tc.name, func(t *testing.T) {
			nw, nh, l, tp := classifyResizeCrop(tc.w, tc.h, 256, 224)
			if nw != tc.newW || nh != tc.newH || l != tc.left || tp != tc.top {
				t.Errorf("got %dx%d at (%d,%d), want %dx%d at (%d,%d)", nw, nh, l, tp, tc.newW, tc.newH, tc.left, tc.top)
			}
		})
	}
}

func classifyWritePNG(t *testing.T, path string, w, h int, rng *rand.Rand) {
	t.Helper()
	im := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			im.Set(x, y, color.RGBA{uint8(rng.Intn(256)), uint8(x * 255 / w), uint8(rng.Intn(256)), 255})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, im); err != nil {
		t.Fatal(err)
	}
}

// TestRunClassify runs the command on random-weight resnet18 checkpoints written by
// torch and compares the logits with torchvision on the same image.
func TestRunClassify(t *testing.T) {
	testutil.Python(t, "PIL")
	dir := t.TempDir()
	testutil.RunScript(t, "../../backbone/testdata/gen_fixtures.py", dir, "resnet18")
	model := filepath.Join(dir, "model.pth")
	rng := rand.New(rand.NewSource(3))
	imgs := []string{filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")}
	for _, p := range imgs {
		classifyWritePNG(t, p, 56, 40, rng)
	}
	var want [][]float64
	for _, p := range imgs {
		var l []float64
		testutil.ScriptJSON(t, &l, "../../backbone/testdata/classify_ref.py", model, "resnet18", p)
		want = append(want, l)
	}
	var out bytes.Buffer
	o := &ClassifyOptions{Weights: model, Arch: "resnet18", Size: "40x56", H: 40, W: 56, TopK: 5, JSON: true, Images: imgs, Out: &out}
	if err := runClassify(o); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	var worst float64
	for i, p := range imgs {
		var res struct {
			Image string `json:"image"`
			TopK  []struct {
				ClassID int     `json:"class_id"`
				Logit   float64 `json:"logit"`
				Prob    float64 `json:"prob"`
			} `json:"topk"`
		}
		if err := dec.Decode(&res); err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		if res.Image != p || len(res.TopK) != 5 {
			t.Fatalf("got %+v", res)
		}
		var mx float64
		for _, v := range want[i] {
			mx = math.Max(mx, math.Abs(v))
		}
		for k, c := range res.TopK {
			d := math.Abs(c.Logit-want[i][c.ClassID]) / mx
			worst = max(worst, d)
			if !(d <= 1e-4) {
				t.Errorf("%s: class %d logit %v, torch %v", p, c.ClassID, c.Logit, want[i][c.ClassID])
			}
			// Every class torch ranks above it must be in the list before it.
			for id, v := range want[i] {
				if v > c.Logit+1e-4*mx && !classifyRanked(res.TopK[:k], id) {
					t.Errorf("%s: torch ranks class %d (%v) above %d (%v)", p, id, v, c.ClassID, c.Logit)
				}
			}
			if k > 0 && c.Prob > res.TopK[k-1].Prob {
				t.Errorf("%s: probabilities not descending: %+v", p, res.TopK)
			}
		}
	}
	t.Logf("top-5 logits: worst difference relative to max|torch logit| %.2e (bound 1e-4)", worst)
	t.Run("default transform and text output", func(t *testing.T) {
		big := filepath.Join(dir, "big.png")
		classifyWritePNG(t, big, 300, 260, rng)
		var out bytes.Buffer
		o := &ClassifyOptions{Weights: model, Arch: "resnet18", TopK: 3, Images: []string{big}, Out: &out}
		if err := runClassify(o); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 4 || lines[0] != big || !strings.Contains(lines[1], "1. class") {
			t.Errorf("output:\n%s", out.String())
		}
	})
	t.Run("errors name the file", func(t *testing.T) {
		for _, tc := range []struct{ name, weights, image, arch, want string }{
			{name: "missing image", weights: model, image: filepath.Join(dir, "nope.png"), arch: "resnet18", want: "nope.png"},
			{name: "wrong arch", weights: model, image: imgs[0], arch: "resnet34", want: "layer1.2.conv1.weight"},
			{name: "bad weights", weights: imgs[0], image: imgs[0], arch: "resnet18", want: "a.png"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				o := &ClassifyOptions{Weights: tc.weights, Arch: tc.arch, TopK: 1, Images: []string{tc.image}, Out: &bytes.Buffer{}}
				err := runClassify(o)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %v, want one mentioning %q", err, tc.want)
				}
			})
		}
	})
}

func classifyRanked(top []struct {
	ClassID int     `json:"class_id"`
	Logit   float64 `json:"logit"`
	Prob    float64 `json:"prob"`
}, id int) bool {
	for _, c := range top {
		if c.ClassID == id {
			return true
		}
	}
	return false
}
