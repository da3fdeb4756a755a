package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"resdet/detection"
	"resdet/internal/cli"
	"resdet/internal/cli/clitest"
	"resdet/internal/testutil"
	"resdet/nn"
	"resdet/train"
)

func TestTrainArgv(t *testing.T) {
	tests := []struct {
		name    string
		argv    string
		check   func(t *testing.T, o *TrainOptions, c train.Config)
		wantErr string
	}{
		{name: "issue example", argv: "--data VOCdevkit/VOC2007 --format voc --split trainval --arch r101-c4 --init r101.pth --iters 500 --lr 0.002 --steps 300,400 --batch 2 --out runs/a",
			check: func(t *testing.T, o *TrainOptions, c train.Config) {
				if o.Src.Data != "VOCdevkit/VOC2007" || o.Out != "runs/a" || c.Init != "r101.pth" || c.Model.Arch != "r101-c4" {
					t.Errorf("options %+v", o)
				}
				if c.Iters != 500 || c.BaseLR != 0.002 || !slices.Equal(c.Steps, []int{300, 400}) || c.Batch != 2 {
					t.Errorf("schedule: iters %d lr %g steps %v batch %d", c.Iters, c.BaseLR, c.Steps, c.Batch)
				}
				if c.FreezeAt != 2 || c.Norm != "frozen" || c.WeightDecay != 1e-4 || c.Momentum != 0.9 {
					t.Errorf("freeze %d norm %s wd %g momentum %g, want the paper's with --init", c.FreezeAt, c.Norm, c.WeightDecay, c.Momentum)
				}
			}},
		{name: "voc07 preset", argv: "--data d --preset voc07 --init x.pth --out r",
			check: func(t *testing.T, o *TrainOptions, c train.Config) {
				if c.Iters != 80000 || c.BaseLR != 0.001 || !slices.Equal(c.Steps, []int{60000}) || c.Batch != 1 || c.WeightDecay != 5e-4 {
					t.Errorf("voc07: iters %d lr %g steps %v batch %d wd %g", c.Iters, c.BaseLR, c.Steps, c.Batch, c.WeightDecay)
				}
			}},
		{name: "preset overridden", argv: "--data d --preset voc07 --iters 100 --lr 0.01 --out r",
			check: func(t *testing.T, o *TrainOptions, c train.Config) {
				if c.Iters != 100 || c.BaseLR != 0.01 || !slices.Equal(c.Steps, []int{60000}) {
					t.Errorf("iters %d lr %g steps %v", c.Iters, c.BaseLR, c.Steps)
				}
			}},
		{name: "coco preset", argv: "--data ann.json --format coco --images imgs --preset coco --out r",
			check: func(t *testing.T, o *TrainOptions, c train.Config) {
				if c.Batch != 2 || c.Iters != 720000 || len(c.Model.RPN.Anchors.Sizes) != 4 || o.Src.Images != "imgs" {
					t.Errorf("coco: batch %d iters %d anchors %v images %q", c.Batch, c.Iters, c.Model.RPN.Anchors.Sizes, o.Src.Images)
				}
			}},
		{name: "coco-fpn preset", argv: "--data ann.json --format coco --images imgs --preset coco-fpn --out r",
			check: func(t *testing.T, o *TrainOptions, c train.Config) {
				// Detectron2's Base-RCNN-FPN 1x (lr 0.02 at batch 16, 90k
				// iterations, steps 60k/80k, warm-up 1000) at batch 2.
				checkFPNPreset(t, c, fpnPreset{iters: 720000, steps: []int{480000, 640000}, warmup: 8000, minLo: 640, format: "coco"})
			}},
		{name: "voc07-fpn preset", argv: "--data d --preset voc07-fpn --out r",
			check: func(t *testing.T, o *TrainOptions, c train.Config) {
				// Detectron2's PascalVOC R50-FPN (18k iterations, steps
				// 12k/16k, warm-up 100) at batch 2.
				checkFPNPreset(t, c, fpnPreset{iters: 144000, steps: []int{96000, 128000}, warmup: 800, minLo: 480, format: "voc"})
			}},
		{name: "fpn preset, min size given", argv: "--data d --preset voc07-fpn --min-size 600 --lr 0.01 --out r",
			check: func(t *testing.T, o *TrainOptions, c train.Config) {
				if c.MinSizesTrain != nil || c.Model.Transform.MinSize != 600 || c.BaseLR != 0.01 || c.Iters != 144000 {
					t.Errorf("min sizes %v, min size %d, lr %g, iters %d", c.MinSizesTrain, c.Model.Transform.MinSize, c.BaseLR, c.Iters)
				}
			}},
		{name: "from scratch", argv: "--data d --arch r18-c4 --norm trainable --min-size 256 --max-size 448 --anchor-sizes 32,64,128 --rois-per-image 32 --roi-size 7 --test-proposals 100 --out r --seed 5 --flip 0",
			check: func(t *testing.T, o *TrainOptions, c train.Config) {
				if c.FreezeAt != 0 || c.Norm != "trainable" || c.Model.Transform.MinSize != 256 || c.Model.Transform.MaxSize != 448 ||
					!slices.Equal(c.Model.RPN.Anchors.Sizes, []float32{32, 64, 128}) || c.Model.RoIHeads.BatchSizePerImage != 32 || c.Model.RoIOp.Size != 7 ||
					c.Model.RPN.PostNMSTopNTest != 100 || c.Model.RPN.PreNMSTopNTest != 1000 ||
					c.Seed != 5 || c.FlipProb != 0 {
					t.Errorf("config %+v", c)
				}
			}},
		{name: "precision", argv: "--data d --out r --precision BF16",
			check: func(t *testing.T, o *TrainOptions, c train.Config) {
				if c.Precision != nn.PrecisionBF16 {
					t.Errorf("precision %q, want bf16", c.Precision)
				}
			}},
		{name: "default precision", argv: "--data d --out r",
			check: func(t *testing.T, o *TrainOptions, c train.Config) {
				if c.Precision != "" {
					t.Errorf("precision %q, want none (fp32, as run.json of older runs)", c.Precision)
				}
			}},
		{name: "bad precision", argv: "--data d --out r --precision fp16", wantErr: `--precision must be fp32, bf16 or auto, got "fp16"`},
		{name: "resume changes the precision", argv: "--out r --resume --precision bf16", wantErr: "--precision cannot change"},
		{name: "no out", argv: "--data d", wantErr: `required flag "out" not set`},
		{name: "no data", argv: "--out r", wantErr: `required flag "data" not set`},
		{name: "resume and force", argv: "--out r --resume --force", wantErr: "exclude each other"},
		{name: "resume changes the recipe", argv: "--out r --resume --lr 9 --batch 4 --iters 10", wantErr: "--batch, --lr cannot change"},
		{name: "resume changes the data", argv: "--out r --resume --data elsewhere", wantErr: "--data cannot change"},
		{name: "bad preset", argv: "--data d --out r --preset imagenet", wantErr: "--preset must be voc07, coco, voc07-fpn, coco-fpn"},
		{name: "bad arch", argv: "--data d --out r --arch r200-c4", wantErr: "unknown architecture"},
		{name: "bad format", argv: "--data d --out r --format yolo", wantErr: "--format must be voc or coco"},
		{name: "bad iters", argv: "--data d --out r --iters 0", wantErr: "--iters must be positive"},
		{name: "bad flip", argv: "--data d --out r --flip 2", wantErr: "--flip must be in [0, 1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, _, _ := cli.Test()
			var got *TrainOptions
			if !clitest.Execute(t, newCmdRoot(ios, func(o *TrainOptions) error { got = o; return nil }), ios, strings.Fields(tt.argv), tt.wantErr) {
				return
			}
			c, err := got.config([]string{"a", "b"})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got, c)
		})
	}
}

func TestEvalPlotArgv(t *testing.T) {
	ios, _, _, _ := cli.Test()
	var e *EvalOptions
	cmd := NewCmdEval(ios, func(o *EvalOptions) error { e = o; return nil })
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	cmd.SetArgs(strings.Fields("--data d --split test --weights w.safetensors --voc-results res --coco --proposals 50"))
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if e.Src.Data != "d" || e.Split != "test" || e.Weights != "w.safetensors" || e.VOCResults != "res" || !e.COCO || e.Src.Format != "voc" || e.Proposals != 50 {
		t.Errorf("eval options %+v", e)
	}
	cmd = NewCmdEval(ios, func(o *EvalOptions) error { return nil })
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	cmd.SetArgs(strings.Fields("--data d"))
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `"weights" not set`) {
		t.Errorf("eval without --weights: %v", err)
	}
	cmd = NewCmdEval(ios, func(o *EvalOptions) error { return nil })
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	cmd.SetArgs(strings.Fields("--data d --weights w --proposals -1"))
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--proposals must be >= 0") {
		t.Errorf("eval with --proposals -1: %v", err)
	}
	var p *PlotOptions
	pc := NewCmdPlot(ios, func(o *PlotOptions) error { p = o; return nil })
	pc.SetArgs([]string{"runs/x"})
	if err := pc.Execute(); err != nil || p.Run != "runs/x" {
		t.Errorf("plot: %v %+v", err, p)
	}
}

// TestResumeArgv checks that --resume takes the run's saved configuration
// and applies the flags that may change (the others are refused: see
// TestTrainArgv).
func TestResumeArgv(t *testing.T) {
	dir := t.TempDir()
	saved := train.DefaultConfig("r18-c4", []string{"a", "b"})
	saved.BaseLR, saved.Iters, saved.Data = 0.05, 100, "data/x"
	b, err := json.Marshal(saved)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "run.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	ios, _, _, _ := cli.Test()
	var got *TrainOptions
	cmd := newCmdRoot(ios, func(o *TrainOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--out", dir, "--resume", "--iters", "150", "--keep", "5", "--threads", "1"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	c, err := got.config(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Iters != 150 || c.Keep != 5 || c.BaseLR != 0.05 || c.Data != "data/x" || c.Model.Arch != "r18-c4" {
		t.Errorf("resumed config: iters %d keep %d lr %g data %q arch %s; want 150, 5 and the saved rest", c.Iters, c.Keep, c.BaseLR, c.Data, c.Model.Arch)
	}
}

// TestTrainInit runs train-det --init on a small synthetic dataset: a bad
// file or name fails before anything is written to the run folder, with
// one line naming it; the MSRA fixture is taken with the log line saying
// what was chosen, and run.json records the fitted architecture.
func TestTrainInit(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	sios, _, _, _ := cli.Test()
	if err := runSynth(&SynthOptions{IO: sios, Out: data, Images: 6, Seed: 3, Size: cli.Size{W: 96, H: 96}, TestFraction: 0.34, MaxObjects: 2, Occlus: 0.5}); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(tmp, "weights.bin")
	if err := os.WriteFile(garbage, []byte("GIF89a, not weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := func(init, out string, more ...string) []string {
		return append([]string{"--data", data, "--init", init, "--out", out, "--iters", "1", "--min-size", "96", "--max-size", "96", "--cache", filepath.Join(tmp, "cache")}, more...)
	}
	for _, tc := range []struct {
		name, init string
		want       []string
	}{
		{name: "unknown format", init: garbage, want: []string{garbage, "unknown format"}},
		{name: "neither file nor model", init: "r50-imagenet.pkl", want: []string{"r50-imagenet.pkl", "no such file", "d2-r101-imagenet"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(tmp, "run-"+strings.ReplaceAll(tc.name, " ", "-"))
			ios, _, _, _ := cli.Test()
			cmd := newCmdRoot(ios, nil)
			cmd.SetArgs(args(tc.init, out))
			cmd.SetOut(ios.Out)
			cmd.SetErr(ios.ErrOut)
			err := cmd.Execute()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) || strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q: want one line containing %q", err, w)
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("run folder %s was created (%v): the error must come before training", out, err)
			}
		})
	}
	c2 := testutil.SharedDir(t, "fixtures", "detectron2", "c2", "R-50.pkl")
	out := filepath.Join(tmp, "run-msra")
	ios, _, _, errOut := cli.Test()
	if !clitest.Execute(t, newCmdRoot(ios, nil), ios, args(c2, out, "--rois-per-image", "16"), "") {
		return
	}
	if !strings.Contains(errOut.String(), "init "+c2+": an MSRA ImageNet ResNet-50") || !strings.Contains(errOut.String(), "input BGR 0..255 minus Detectron2's mean") {
		t.Errorf("stderr has no init line:\n%s", errOut.String())
	}
	c, err := train.RunDir(out).ReadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if c.Init != c2 || c.Model.Arch != "r50-c4" || !c.Model.ResNet.StrideIn1x1 || c.Model.Transform.Preprocess != "detectron2" || c.FreezeAt != 2 {
		t.Errorf("run.json: init %s arch %s resnet %+v preprocess %q freeze %d", c.Init, c.Model.Arch, c.Model.ResNet, c.Model.Transform.Preprocess, c.FreezeAt)
	}
}

// fpnPreset is what a Detectron2 FPN preset fixes besides what both share.
type fpnPreset struct {
	iters, warmup, minLo int
	steps                []int
	format               string
}

// checkFPNPreset checks c against want and against what both FPN presets
// share: torchvision's R50-FPN, batch 2, lr 0.02 x 2/16, warm-up factor
// 0.001, weight decay 1e-4, momentum 0.9, shorter sides minLo..800 step 32,
// max 1333, test 800, 2000 proposals per level before NMS and 1000 after it
// in training, 1000/1000 in test, 512 RoIs and 256 anchors per image.
func checkFPNPreset(t *testing.T, c train.Config, want fpnPreset) {
	t.Helper()
	var sizes []int
	for s := want.minLo; s <= 800; s += 32 {
		sizes = append(sizes, s)
	}
	if c.Model.Arch != detection.ArchTVR50FPN || c.Batch != 2 || c.BaseLR != 0.0025 || c.Iters != want.iters ||
		!slices.Equal(c.Steps, want.steps) || c.Gamma != 0.1 || c.WarmupIters != want.warmup || c.WarmupFactor != 0.001 ||
		c.WeightDecay != 1e-4 || c.Momentum != 0.9 || c.Format != want.format {
		t.Errorf("arch %s batch %d lr %g iters %d steps %v gamma %g warmup %d x %g wd %g momentum %g format %s",
			c.Model.Arch, c.Batch, c.BaseLR, c.Iters, c.Steps, c.Gamma, c.WarmupIters, c.WarmupFactor, c.WeightDecay, c.Momentum, c.Format)
	}
	tr, rpn := c.Model.Transform, c.Model.RPN
	if !slices.Equal(c.MinSizesTrain, sizes) || tr.MinSize != 800 || tr.MaxSize != 1333 {
		t.Errorf("train sizes %v (want %v), test %d, max %d", c.MinSizesTrain, sizes, tr.MinSize, tr.MaxSize)
	}
	if rpn.PreNMSTopNTrain != 2000 || rpn.PostNMSTopNTrain != 1000 || rpn.PreNMSTopNTest != 1000 || rpn.PostNMSTopNTest != 1000 ||
		rpn.BatchSizePerImage != 256 || c.Model.RoIHeads.BatchSizePerImage != 512 || len(rpn.Anchors.Sizes) != 5 {
		t.Errorf("RPN %+v, RoIs per image %d", rpn, c.Model.RoIHeads.BatchSizePerImage)
	}
}

// TestFPNPresetNeedsFPNArch: an FPN recipe on a C4 architecture given with
// --arch is refused, naming the preset and the architecture.
func TestFPNPresetNeedsFPNArch(t *testing.T) {
	ios, _, _, _ := cli.Test()
	var got *TrainOptions
	if !clitest.Execute(t, newCmdRoot(ios, func(o *TrainOptions) error { got = o; return nil }), ios,
		strings.Fields("--data d --preset coco-fpn --arch r50-c4 --out r"), "") {
		return
	}
	_, err := got.config([]string{"a"})
	if err == nil || !strings.Contains(err.Error(), `preset "coco-fpn"`) || !strings.Contains(err.Error(), "r50-c4") {
		t.Errorf("coco-fpn on r50-c4: %v", err)
	}
}
