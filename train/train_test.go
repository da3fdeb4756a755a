package train

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"resdet/datasets"
	"resdet/datasets/synth"
	"resdet/detection"
)

// tinySynth generates a tiny synthetic dataset (n images of size x size,
// a few large objects each) and returns its trainval and test sets.
func tinySynth(t testing.TB, n, size int) (trainval, test *datasets.Set) {
	t.Helper()
	dir := t.TempDir()
	c := synth.DefaultConfig()
	c.Images, c.Width, c.Height, c.SizeJitter = n, size, size, 0
	c.MaxObjects, c.MinSize, c.TinyFraction, c.TruncatedFraction = 2, 24, 0, 0
	c.TestFraction = 0.25
	if _, err := synth.Generate(dir, c, rand.New(rand.NewPCG(7, 7)), nil); err != nil {
		t.Fatal(err)
	}
	read := func(split string) *datasets.Set {
		s, err := datasets.ReadVOC(filepath.Join(dir, "VOC2007"), split, datasets.VOCOptions{Classes: synth.Classes(), KeepDifficult: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return read("trainval"), read("test")
}

// tinyConfig is a small ResNet-18 C4 detector for size-pixel images,
// trained from scratch with trainable BN.
func tinyConfig(classes []string, size, iters int) Config {
	c := DefaultConfig("r18-c4", classes)
	c.Model.Transform.MinSize, c.Model.Transform.MaxSize = size, size
	c.Model.RPN.Anchors = detection.AnchorGenerator{Sizes: []float32{24, 48, 96}, AspectRatios: []float32{0.5, 1, 2}}
	c.Model.RPN.PreNMSTopNTrain, c.Model.RPN.PostNMSTopNTrain = 600, 300
	c.Model.RPN.PreNMSTopNTest, c.Model.RPN.PostNMSTopNTest = 300, 100
	c.Model.RoIHeads.BatchSizePerImage = 32
	c.Model.RoIOp.Size = 7
	c.Norm, c.FreezeAt = "trainable", 0
	c.Iters, c.Batch, c.BaseLR, c.WarmupIters = iters, 2, 0.02, 20
	c.LogEvery, c.CheckpointEvery = 1, 1000
	return c
}

func TestSmoke(t *testing.T) {
	tv, _ := tinySynth(t, 8, 96)
	cfg := tinyConfig(tv.Classes, 96, 6)
	res, err := Run(context.Background(), cfg, Data{Train: tv}, Options{Dir: t.TempDir(), OnStep: func(it int, l detection.Losses) {
		t.Logf("%s iter %d: %+v total %.4f", time.Now().Format("15:04:05.000"), it, l, l.Total())
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
}

// TestOverfitTinySynthetic trains a small detector from scratch on a few
// synthetic images and checks that it learns them: the loss falls by a
// large factor and the VOC07 mAP on the training images passes a high bar.
func TestOverfitTinySynthetic(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a detector for about a minute")
	}
	tv, _ := tinySynth(t, 8, 96)
	cfg := tinyConfig(tv.Classes, 96, 80)
	cfg.FlipProb = 0
	cfg.Steps = []int{60}
	cfg.LogEvery = 10
	var first, last []float64
	res, err := Run(context.Background(), cfg, Data{Train: tv, Eval: tv}, Options{Dir: t.TempDir(), OnStep: func(it int, l detection.Losses) {
		if it <= 5 {
			first = append(first, l.Total())
		}
		if it > cfg.Iters-5 {
			last = append(last, l.Total())
		}
		t.Logf("%s iter %d: total %.4f %+v", time.Now().Format("15:04:05"), it, l.Total(), l)
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
	f, l := mean(first), mean(last)
	t.Logf("mean loss of the first 5 iterations %.4f, last 5 %.4f; VOC07 mAP on the training images %.4f", f, l, res.Eval.VOC07MAP)
	if !(l < f/5) {
		t.Errorf("loss fell from %.4f to %.4f, want at least 5x lower", f, l)
	}
	if !(res.Eval.VOC07MAP >= 0.9) {
		t.Errorf("VOC07 mAP on the training images %.4f, want >= 0.9", res.Eval.VOC07MAP)
	}
}
