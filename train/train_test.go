package train

import (
	"context"
	"errors"
	mrand "math/rand"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"resdet/backbone"
	"resdet/box"
	"resdet/datasets"
	"resdet/datasets/imageio"
	"resdet/datasets/synth"
	"resdet/detection"
	"resdet/nn"
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

// TestOverfitTinySynthetic trains a small detector from scratch on a few
// synthetic images (random colours: only the shape tells the class) and
// checks that it learns them: the loss falls at least 8x and the VOC07 mAP
// on the training images is at least 0.95.
func TestOverfitTinySynthetic(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a detector for about a minute")
	}
	tv, _ := tinySynth(t, 6, 96) // 4 trainval images
	cfg := tinyConfig(tv.Classes, 96, 200)
	cfg.Model.RoIHeads.BatchSizePerImage = 16
	cfg.Model.RoIOp.Size = 4
	cfg.FlipProb = 0
	cfg.Steps = []int{160}
	cfg.LogEvery = 10
	var first, last []float64
	res, err := Run(context.Background(), cfg, Data{Train: tv, Eval: tv}, Options{Dir: t.TempDir(), OnStep: func(it int, l detection.Losses) {
		if it <= 5 {
			first = append(first, l.Total())
		}
		if it > cfg.Iters-5 {
			last = append(last, l.Total())
		}
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
	// The mean over the classes that have objects in these images (a class
	// without any counts as AP 0 in VOC07MAP).
	sum, n := 0.0, 0
	for _, c := range res.Eval.PerClass {
		t.Logf("  %-8s %d objects, AP %.4f", c.Class, c.NPos, c.AP07)
		if c.NPos > 0 {
			sum += float64(c.AP07)
			n++
		}
	}
	mAP := sum / float64(max(n, 1))
	t.Logf("mean loss of the first 5 iterations %.4f, last 5 %.4f (%.1fx lower); VOC07 mAP on the training images over the %d classes present %.4f",
		f, l, f/l, n, mAP)
	if !(l < f/8) {
		t.Errorf("loss fell from %.4f to %.4f, want at least 8x lower", f, l)
	}
	if n < 4 || !(mAP >= 0.95) {
		t.Errorf("VOC07 mAP on the training images %.4f over %d classes, want >= 0.95 over at least 4", mAP, n)
	}
}

// tinyFPNConfig is tinyConfig's detector as torchvision's R50-FPN
// (tv-r50-fpn: FPN P2..P6, RPN on every level, MultiScaleRoIAlign 7x7,
// TwoMLPHead) made narrow for size-pixel images: res2's bottlenecks 16
// channels wide with 64 out (the stages double from there), FPN outputs 32
// channels wide, one anchor size per level (16..256). As the FPN presets
// do, it draws each training image's shorter side (64 or 96: batches of
// different shapes, so the trainer keeps a step graph per shape).
func tinyFPNConfig(classes []string, size, iters int) Config {
	c := tinyConfig(classes, size, iters)
	m := detection.DefaultConfig(detection.ArchTVR50FPN, classes)
	m.Transform, m.RoIHeads = c.Model.Transform, c.Model.RoIHeads
	m.RPN.Anchors.Sizes = []float32{16, 32, 64, 128, 256}
	m.RPN.PreNMSTopNTrain, m.RPN.PostNMSTopNTrain = c.Model.RPN.PreNMSTopNTrain, c.Model.RPN.PostNMSTopNTrain
	m.RPN.PreNMSTopNTest, m.RPN.PostNMSTopNTest = c.Model.RPN.PreNMSTopNTest, c.Model.RPN.PostNMSTopNTest
	m.ResNet = detection.ResNetConfig{WidthPerGroup: 16, Res2OutChannels: 64}
	m.FPNChannels = 32
	c.Model = m
	c.MinSizesTrain = []int{64, size}
	return c
}

// TestResumeIsExact interrupts a run (as Ctrl-C does: the context is
// cancelled), resumes it from its checkpoint and checks that every
// iteration's losses equal those of an uninterrupted run, across an epoch
// boundary, and that metrics.jsonl holds each iteration once: for a C4
// detector (tinyConfig) in fp32 and in bf16 (where the CPU has bf16
// instructions: skipped otherwise, failed with RESDET_REQUIRE_BF16=1), and
// an FPN one (tinyFPNConfig: per-level proposals, multi-scale RoI pooling).
func TestResumeIsExact(t *testing.T) {
	tv, _ := tinySynth(t, 8, 96) // 6 trainval images: 3 batches per epoch
	tests := []struct {
		name string
		cfg  Config
		prec nn.Precision
	}{
		{name: "C4", cfg: tinyConfig(tv.Classes, 96, 5), prec: nn.PrecisionFP32},
		{name: "C4-bf16", cfg: tinyConfig(tv.Classes, 96, 5), prec: nn.PrecisionBF16},
		{name: "FPN", cfg: tinyFPNConfig(tv.Classes, 96, 5), prec: nn.PrecisionFP32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prec == nn.PrecisionBF16 {
				skipWithoutBF16Training(t)
			}
			cfg := tc.cfg
			cfg.CheckpointEvery, cfg.Keep = 1, 2
			cfg.Precision = tc.prec
			checkResumeIsExact(t, cfg, Data{Train: tv})
		})
	}
}

// checkResumeIsExact runs cfg (3 iterations or more, a checkpoint every
// iteration, 2 kept, a metrics line every iteration) uninterrupted, then
// interrupted after iteration 2 and resumed, and checks the resumed run
// against the uninterrupted one: the losses of every iteration and
// metrics.jsonl (one line per iteration); on the way, that the last 2
// checkpoints are kept and that a second run in the same folder without
// Resume, or resumed with another lr or the other precision, is refused.
func checkResumeIsExact(t *testing.T, cfg Config, data Data) {
	t.Helper()
	record := func(into map[int]detection.Losses) func(int, detection.Losses) {
		return func(it int, l detection.Losses) { into[it] = l }
	}
	want := map[int]detection.Losses{}
	dirA := t.TempDir()
	if _, err := Run(context.Background(), cfg, data, Options{Dir: dirA, OnStep: record(want)}); err != nil {
		t.Fatal(err)
	}
	ck, err := RunDir(dirA).Checkpoints()
	if err != nil || len(ck) != 2 || ck[0].Iter != cfg.Iters-1 || ck[1].Iter != cfg.Iters {
		t.Errorf("checkpoints kept %+v (%v), want iterations %d and %d", ck, err, cfg.Iters-1, cfg.Iters)
	}

	got := map[int]detection.Losses{}
	dirB := t.TempDir()
	runInterrupted(t, cfg, data, dirB, 2, got)
	if _, err := Run(context.Background(), cfg, data, Options{Dir: dirB}); err == nil || !strings.Contains(err.Error(), "already holds a run") {
		t.Errorf("second run without --resume: %v, want a refusal", err)
	}
	other := cfg
	other.BaseLR *= 2
	if _, err := Run(context.Background(), other, data, Options{Dir: dirB, Resume: true}); err == nil || !strings.Contains(err.Error(), "different run") {
		t.Errorf("resume with another lr: %v, want a refusal", err)
	}
	other = cfg
	other.Precision = nn.PrecisionBF16
	if cfg.Precision == nn.PrecisionBF16 {
		other.Precision = nn.PrecisionFP32
	}
	if _, err := Run(context.Background(), other, data, Options{Dir: dirB, Resume: true}); err == nil ||
		!(strings.Contains(err.Error(), `"precision"`) || strings.Contains(err.Error(), "Precision")) {
		t.Errorf("resume with precision %s: %v, want a refusal naming the precision", other.Precision, err)
	}
	if _, err := Run(context.Background(), cfg, data, Options{Dir: dirB, Resume: true, OnStep: record(got)}); err != nil {
		t.Fatal(err)
	}
	for it := 1; it <= cfg.Iters; it++ {
		if got[it] != want[it] {
			t.Errorf("iteration %d: resumed run %+v, uninterrupted %+v", it, got[it], want[it])
		}
	}
	ms, err := ReadMetrics(RunDir(dirB).Metrics())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != cfg.Iters {
		t.Fatalf("metrics.jsonl has %d iteration lines, want %d", len(ms), cfg.Iters)
	}
	for i, m := range ms {
		if m.Iter != i+1 || m.Losses != want[i+1] {
			t.Errorf("metrics line %d: iter %d %+v, want iter %d %+v", i, m.Iter, m.Losses, i+1, want[i+1])
		}
	}
	if !t.Failed() {
		t.Logf("losses of %d iterations equal (last %+v)", cfg.Iters, want[cfg.Iters])
	}
}

// TestDivergedRunStops checks that a loss above MaxLoss stops the run with
// ErrDiverged and writes no checkpoint over the last good one.
func TestDivergedRunStops(t *testing.T) {
	tv, _ := tinySynth(t, 8, 96)
	cfg := tinyConfig(tv.Classes, 96, 3)
	cfg.MaxLoss = 0.5 // the first losses are about 3
	dir := t.TempDir()
	_, err := Run(context.Background(), cfg, Data{Train: tv}, Options{Dir: dir})
	if !errors.Is(err, ErrDiverged) || !strings.Contains(err.Error(), "iteration 0") {
		t.Fatalf("error %v, want ErrDiverged at iteration 0", err)
	}
	if ck, _ := RunDir(dir).Checkpoints(); len(ck) != 0 {
		t.Errorf("checkpoints %+v written by a diverged run", ck)
	}
}

// recorder is an Observer that keeps what it is told.
type recorder struct {
	begun, ended bool
	steps        int
	skipped      []error
	logged       []Metrics
	res          *Result
}

func (r *recorder) Begin(int, int, string) { r.begun = true }
func (r *recorder) Step(_ int, _ detection.Losses, _ int, skipped []error) {
	r.steps++
	r.skipped = append(r.skipped, skipped...)
}
func (r *recorder) Logged(m Metrics)             { r.logged = append(r.logged, m) }
func (r *recorder) Evaluation(int, int) Progress { return nil }
func (r *recorder) Evaluated(*EvalReport)        {}
func (r *recorder) End(res *Result, _ error)     { r.ended, r.res = true, res }

// TestSkipBad truncates one training image to its first 16 bytes (the
// JPEG signature and a partial header: it cannot be decoded). With SkipBad
// the run trains its epoch, leaving the image out: the Observer is told
// once, with an error naming the file, and metrics.jsonl and the Result
// count it. Without SkipBad the run stops with an error naming the file.
func TestSkipBad(t *testing.T) {
	tv, _ := tinySynth(t, 8, 96) // 6 trainval images: 3 batches per epoch
	bad := tv.Records[2].ImagePath
	b, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, b[:16], 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig(tv.Classes, 96, 3) // one epoch: the image is met once
	tests := []struct {
		name    string
		skipBad bool
		wantErr bool
	}{
		{name: "skip", skipBad: true},
		{name: "stop", skipBad: false, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			rec := &recorder{}
			res, err := Run(context.Background(), cfg, Data{Train: tv}, Options{Dir: dir, SkipBad: tt.skipBad, Observer: rec})
			if !rec.begun || !rec.ended {
				t.Errorf("observer: begun %v, ended %v; want both", rec.begun, rec.ended)
			}
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), bad) {
					t.Fatalf("error %v, want one naming %s", err, bad)
				}
				if ck, _ := RunDir(dir).Checkpoints(); len(ck) != 0 {
					t.Errorf("checkpoints %+v written by a run that stopped", ck)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Iter != cfg.Iters || res.Skipped != 1 || rec.steps != cfg.Iters {
				t.Errorf("result %+v after %d observed steps, want %d iterations with 1 image skipped", res, rec.steps, cfg.Iters)
			}
			if len(rec.skipped) != 1 || !strings.Contains(rec.skipped[0].Error(), bad) {
				t.Errorf("observer told of skipped images %v, want one naming %s", rec.skipped, bad)
			}
			ms, err := ReadMetrics(RunDir(dir).Metrics())
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != cfg.Iters || len(rec.logged) != cfg.Iters {
				t.Fatalf("%d metrics lines, %d observed, want %d", len(ms), len(rec.logged), cfg.Iters)
			}
			// The count is cumulative: 0 before the batch holding the
			// image, 1 from it on.
			batches := datasets.TrainingBatches(tv, cfg.Batch, rand.New(rand.NewPCG(cfg.Seed, 0)))
			for i, m := range ms {
				want := 0
				for _, bb := range batches[:i+1] {
					if slices.Contains(bb, 2) {
						want = 1
					}
				}
				if m.Skipped != want || rec.logged[i].Skipped != want {
					t.Errorf("iteration %d: skipped %d in metrics.jsonl, %d observed; want %d", m.Iter, m.Skipped, rec.logged[i].Skipped, want)
				}
			}
		})
	}
}

// TestStepErrorNamesImage checks that the trainer's per-image errors name
// the image by its file when TrainImage.Name is set (as Run sets it), by
// its position otherwise.
func TestStepErrorNamesImage(t *testing.T) {
	cfg := tinyConfig([]string{"a", "b"}, 64, 1)
	m, err := detection.NewTrainable(cfg.Model, detection.TrainBuild{Rng: mrand.New(mrand.NewSource(1)), Norm: backbone.TrainableBN})
	if err != nil {
		t.Fatal(err)
	}
	tr := detection.NewTrainer(m, detection.TrainerConfig{})
	defer tr.Close()
	good := detection.TrainImage{Data: make([]float32, 3*64*64), W: 64, H: 64, Boxes: []box.Box{{X1: 4, Y1: 4, X2: 40, Y2: 40}}, Labels: []int{1}}
	tests := []struct {
		name string
		bad  func(im *detection.TrainImage)
		want string
	}{
		{name: "size, named", bad: func(im *detection.TrainImage) { im.W, im.Name = 63, "imgs/0042.jpg" }, want: "imgs/0042.jpg is 63x64"},
		{name: "labels, named", bad: func(im *detection.TrainImage) { im.Labels, im.Name = nil, "imgs/0042.jpg" }, want: "imgs/0042.jpg has 1 boxes and 0 labels"},
		{name: "label, named", bad: func(im *detection.TrainImage) { im.Labels, im.Name = []int{3}, "imgs/0042.jpg" }, want: "imgs/0042.jpg box 0 has label 3"},
		{name: "label, unnamed", bad: func(im *detection.TrainImage) { im.Labels = []int{3} }, want: "image 1 box 0 has label 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := good
			tt.bad(&b)
			_, err := tr.Step([]detection.TrainImage{good, b}, mrand.New(mrand.NewSource(1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestMinSizesTrain checks multi-scale training input (MinSizesTrain): each
// image's shorter side is one of the sizes, drawn per image and epoch, the
// same on every load (a resumed run resizes alike), more than one size
// occurs, and the flips are those of a single-size run.
func TestMinSizesTrain(t *testing.T) {
	set, _ := tinySynth(t, 12, 96)
	cfg := tinyConfig(set.Classes, 96, 1)
	cfg.Model.Transform.MaxSize = 1000
	cfg.FlipProb = 0.5
	single := &State{Config: cfg}
	cfg.MinSizesTrain = []int{64, 80, 96, 112}
	multi := &State{Config: cfg}
	idx := make([][]int, set.Len())
	for i := range idx {
		idx[i] = []int{i}
	}
	load := func(s *State, epoch int) []imageio.Example {
		var out []imageio.Example
		for b, err := range s.loader(set, epoch, false).Epoch(idx, cfg.Seed) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b.Items[0].ex)
		}
		return out
	}
	one, a, again, next := load(single, 0), load(multi, 0), load(multi, 0), load(multi, 1)
	seen := map[int]bool{}
	changed := 0
	for i := range a {
		short := min(a[i].Image.H, a[i].Image.W)
		if !slices.Contains(cfg.MinSizesTrain, short) {
			t.Errorf("image %d: shorter side %d, want one of %v", i, short, cfg.MinSizesTrain)
		}
		seen[short] = true
		if again[i].Image.H != a[i].Image.H || again[i].Image.W != a[i].Image.W {
			t.Errorf("image %d: %dx%d, then %dx%d on the same epoch", i, a[i].Image.W, a[i].Image.H, again[i].Image.W, again[i].Image.H)
		}
		if next[i].Image.H != a[i].Image.H {
			changed++
		}
		// The flip shows in the boxes: x scaled by the size ratio.
		r := float32(a[i].Image.W) / float32(one[i].Image.W)
		for j, b := range a[i].Boxes {
			if d := b.X1 - one[i].Boxes[j].X1*r; d > 0.01 || d < -0.01 {
				t.Errorf("image %d box %d: x1 %v, single-size run %v x %v: not flipped alike", i, j, b.X1, one[i].Boxes[j].X1, r)
			}
		}
	}
	if len(seen) < 2 || changed == 0 {
		t.Errorf("sizes %v over %d images, %d changed in the next epoch: not drawn per image and epoch", seen, len(a), changed)
	}
}

// runInterrupted runs cfg on data in dir, recording each iteration's
// losses in got, and cancels it after iteration stop: the run must end
// interrupted there.
func runInterrupted(t *testing.T, cfg Config, data Data, dir string, stop int, got map[int]detection.Losses) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := Run(ctx, cfg, data, Options{Dir: dir, OnStep: func(it int, l detection.Losses) {
		got[it] = l
		if it == stop {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Iter != stop {
		t.Fatalf("interrupted run: %+v, want interrupted after %d iterations", res, stop)
	}
}

// TestAutoPrecisionRecorded checks that a run asked for precision auto
// records the precision it resolved to on this CPU in run.json (so that a
// resume on a CPU where auto resolves otherwise is refused instead of
// switching precision), and that a resume asking for auto again on the same
// CPU is accepted.
func TestAutoPrecisionRecorded(t *testing.T) {
	tv, _ := tinySynth(t, 8, 96)
	cfg := tinyConfig(tv.Classes, 96, 1)
	cfg.Precision = nn.PrecisionAuto
	dir := t.TempDir()
	if _, err := Run(context.Background(), cfg, Data{Train: tv}, Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	saved, err := RunDir(dir).ReadConfig()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := nn.PrecisionAuto.ResolveTraining()
	if err != nil {
		t.Fatal(err)
	}
	if want := nn.Precision(ch.String()); saved.Precision != want {
		t.Errorf("run.json precision %q, want %q (auto resolved on this CPU: %s)", saved.Precision, want, ch.Reason)
	}
	cfg.Iters = 2
	if _, err := Run(context.Background(), cfg, Data{Train: tv}, Options{Dir: dir, Resume: true}); err != nil {
		t.Errorf("resume asking for auto again on the same CPU: %v", err)
	}
}
