package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"resdet/box"
	"resdet/checkpoint"
	"resdet/datasets"
	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/internal/cli"
	"resdet/optim"
	"resdet/weights"
)

// Run folder layout (Dir):
//
//	run.json                       the Config (identifies the run)
//	metrics.jsonl                  one JSON object per logged iteration (Metrics) or evaluation
//	checkpoints/iter_NNNNNNNN/     model.safetensors (a native detector checkpoint, detect reads it)
//	                               + trainer.safetensors (momentum, iteration)
//	model_final.safetensors        the detector after the last iteration
//	eval/iter_NNNNNNNN.json        evaluation reports
const (
	runFile     = "run.json"
	metricsFile = "metrics.jsonl"
	ckptDir     = "checkpoints"
	finalFile   = "model_final.safetensors"
	evalDir     = "eval"
	iterKey     = "resdet.train.iter"
	seedKey     = "resdet.train.seed"
	optimPrefix = "optim."
)

// ErrDiverged is wrapped by the error Run returns when the loss is not
// finite or above Config.MaxLoss (or a gradient is not finite).
var ErrDiverged = errors.New("training diverged")

// Data are the sets a run reads. Train's classes must be Config.Model's.
type Data struct {
	Train *datasets.Set
	Eval  *datasets.Set // may be nil: no evaluation
}

// Options are how a run behaves, not what it computes.
type Options struct {
	Dir string // run folder
	// Resume continues the run in Dir from its latest checkpoint (from
	// iteration 0 if there is none); Force starts over in a folder that
	// holds a run. Without either, such a folder is refused.
	Resume, Force bool
	// Log receives the progress bar (Terminal) or plain lines.
	Log      io.Writer
	Terminal bool
	// SkipBad drops training images that fail to load (reported on Log)
	// instead of stopping the run.
	SkipBad bool
	// OnStep, if set, is called after every iteration (tests interrupt
	// runs with it).
	OnStep func(iter int, l detection.Losses)
}

// Metrics is one line of metrics.jsonl for a logged iteration.
type Metrics struct {
	Iter int     `json:"iter"` // iterations done (1-based)
	LR   float64 `json:"lr"`
	Loss float64 `json:"loss"`
	// LossMean is the mean total loss of the iterations since the
	// previous line (of this process: a resumed run starts a new window).
	LossMean float64 `json:"loss_mean"`
	detection.Losses
	FGRoIs       int     `json:"fg_rois"`
	ImagesPerSec float64 `json:"images_per_s"`
	Epoch        int     `json:"epoch"`
}

// Result summarises a run.
type Result struct {
	Iter        int    // iterations done
	Interrupted bool   // the context was cancelled; a checkpoint was written
	Checkpoint  string // the latest checkpoint folder
	Final       string // model_final.safetensors, when the run completed
	Eval        *EvalReport
}

// Run trains cfg's detector on data.Train in o.Dir: SGD with momentum and
// weight decay, the warm-up multi-step schedule, batches grouped by aspect
// ratio with horizontal flips, approximate joint training
// (detection.Trainer). Everything random is a function of Config.Seed and
// the iteration (epoch order, flips, anchor and RoI sampling), so a run
// resumed from a checkpoint continues exactly as if it had not stopped.
// When ctx is cancelled (Ctrl-C) it finishes the iteration, writes a
// checkpoint and returns a Result with Interrupted set. A diverging loss
// stops it with an error wrapping ErrDiverged, keeping the checkpoints.
func Run(ctx context.Context, cfg Config, data Data, o Options) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if data.Train == nil || data.Train.Len() == 0 {
		return nil, fmt.Errorf("train: no training images")
	}
	if strings.Join(data.Train.Classes, "\x00") != strings.Join(cfg.Model.Classes, "\x00") {
		return nil, fmt.Errorf("train: the training set's classes %v differ from the model's %v", data.Train.Classes, cfg.Model.Classes)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	start, ckpt, err := prepareDir(cfg, o)
	if err != nil {
		return nil, err
	}
	norm, _ := cfg.norm()
	m, err := detection.NewTrainable(cfg.Model, detection.TrainBuild{Rng: mrand.New(mrand.NewSource(int64(cfg.Seed))), Norm: norm, FreezeAt: cfg.FreezeAt})
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if cfg.Init != "" && ckpt == "" {
		if err := loadBackbone(m, cfg.Init); err != nil {
			return nil, err
		}
	}
	tr := detection.NewTrainer(m, detection.TrainerConfig{Targets: cfg.Targets, PadMultiple: cfg.PadMultiple, MaxGraphs: cfg.MaxGraphs})
	defer tr.Close()
	sgd, err := optim.NewSGD(tr.Params(), cfg.sgd())
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if ckpt != "" {
		if err := loadCheckpoint(ckpt, m, sgd, start); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "resuming from %s (iteration %d)\n", ckpt, start)
	}
	if err := truncateMetrics(filepath.Join(o.Dir, metricsFile), start); err != nil {
		return nil, err
	}
	mf, err := os.OpenFile(filepath.Join(o.Dir, metricsFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer mf.Close()
	enc := json.NewEncoder(mf)

	ts := transformOf(cfg.Model)
	set := data.Train
	perEpoch := len(datasets.TrainingBatches(set, cfg.Batch, rand.New(rand.NewPCG(cfg.Seed, 0))))
	if perEpoch == 0 {
		return nil, fmt.Errorf("train: %d training images are fewer than a batch of %d", set.Len(), cfg.Batch)
	}
	loader := func(epoch int) *datasets.Loader[imageio.Example] {
		base := ts.LoadFunc(set, cfg.FlipProb)
		return datasets.NewLoader(func(i int, _ *rand.Rand) (imageio.Example, error) {
			// The sample's generator depends on the epoch and the image,
			// not on where the loader started: resumed runs flip alike.
			return base(i, rand.New(rand.NewPCG(cfg.Seed^0x9e3779b97f4a7c15, uint64(epoch)<<32|uint64(i))))
		}, datasets.LoaderConfig{Workers: cfg.Workers})
	}
	sched := cfg.schedule()
	res := &Result{Iter: start, Checkpoint: ckpt}
	prog := cli.NewProgressWith(o.Log, "train", cfg.Iters-start, progressOptions(o.Terminal, "iterations"))
	t0, imgs := time.Now(), 0
	var winSum float64
	var winN int
	it := start
	save := func() error {
		if err := tr.Sync(); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		p, err := saveCheckpoint(o.Dir, m, sgd, it, cfg)
		if err != nil {
			return err
		}
		res.Checkpoint = p
		return nil
	}
	for it < cfg.Iters {
		epoch := it / perEpoch
		batches := datasets.TrainingBatches(set, cfg.Batch, rand.New(rand.NewPCG(cfg.Seed, uint64(epoch))))
		first := it % perEpoch
		for b, err := range loader(epoch).Epoch(batches[first:], cfg.Seed) {
			if err != nil {
				if !o.SkipBad {
					return res, fmt.Errorf("train: iteration %d: %w", it, err)
				}
				fmt.Fprintf(o.Log, "\nskipping a batch at iteration %d: %v\n", it, err)
				it++
				continue
			}
			batch := toTrainImages(b.Items)
			l, err := tr.Step(batch, mrand.New(mrand.NewSource(stepSeed(cfg.Seed, it))))
			lr := sched.LR(it)
			if err != nil && !errors.Is(err, detection.ErrNonFiniteLoss) {
				return res, fmt.Errorf("train: iteration %d: %w", it, err)
			}
			if err == nil && !(l.Total() <= cfg.MaxLoss) {
				err = fmt.Errorf("total loss %.4g above the limit %g (%+v)", l.Total(), cfg.MaxLoss, l)
			}
			if err == nil {
				if err = sgd.Step(lr); err != nil && !errors.Is(err, optim.ErrNonFinite) {
					return res, fmt.Errorf("train: iteration %d: %w", it, err)
				}
			}
			if err != nil {
				last := res.Checkpoint
				if last == "" {
					last = "none written yet"
				}
				return res, fmt.Errorf("train: iteration %d: %w: %v; the last good checkpoint is kept: %s", it, ErrDiverged, err, last)
			}
			it++
			res.Iter = it
			imgs += len(batch)
			winSum, winN = winSum+l.Total(), winN+1
			prog.Add(1)
			if o.OnStep != nil {
				o.OnStep(it, l)
			}
			if it%cfg.LogEvery == 0 || it == cfg.Iters {
				rate := float64(imgs) / time.Since(t0).Seconds()
				mt := Metrics{Iter: it, LR: lr, Loss: l.Total(), LossMean: winSum / float64(winN), Losses: l, FGRoIs: tr.LastForeground(), ImagesPerSec: rate, Epoch: epoch}
				winSum, winN = 0, 0
				if err := enc.Encode(mt); err != nil {
					return res, fmt.Errorf("train: %s: %w", metricsFile, err)
				}
				line := fmt.Sprintf("iter %d/%d  loss %.4f (obj %.4f rpn_box %.4f cls %.4f box %.4f; mean %.4f)  lr %.3g  %.2f img/s",
					it, cfg.Iters, l.Total(), l.Objectness, l.RPNBoxReg, l.Classifier, l.BoxReg, mt.LossMean, lr, rate)
				if o.Terminal {
					fmt.Fprintf(o.Log, "\r\x1b[K%s\n", line)
				} else {
					fmt.Fprintln(o.Log, line)
				}
			}
			stop := ctx.Err() != nil
			if it%cfg.CheckpointEvery == 0 || it == cfg.Iters || stop {
				if err := save(); err != nil {
					return res, err
				}
			}
			if stop {
				prog.Done()
				res.Interrupted = true
				fmt.Fprintf(o.Log, "interrupted at iteration %d; checkpoint %s (continue with --resume)\n", it, res.Checkpoint)
				return res, nil
			}
			if data.Eval != nil && cfg.EvalEvery > 0 && it%cfg.EvalEvery == 0 && it < cfg.Iters {
				if err := tr.Sync(); err != nil {
					return res, fmt.Errorf("train: %w", err)
				}
				if _, err := evalAndRecord(ctx, m, data.Eval, cfg, o, it, enc); err != nil {
					return res, err
				}
			}
			if it == cfg.Iters || it%perEpoch == 0 {
				break
			}
		}
	}
	prog.Done()
	if err := tr.Sync(); err != nil {
		return res, fmt.Errorf("train: %w", err)
	}
	final := filepath.Join(o.Dir, finalFile)
	if err := checkpoint.Save(final, m); err != nil {
		return res, fmt.Errorf("train: %w", err)
	}
	res.Final = final
	if data.Eval != nil {
		r, err := evalAndRecord(ctx, m, data.Eval, cfg, o, it, enc)
		if err != nil {
			return res, err
		}
		res.Eval = r
	}
	return res, nil
}

// stepSeed is the seed of iteration it's anchor and RoI sampling.
func stepSeed(seed uint64, it int) int64 {
	x := seed*0x9e3779b97f4a7c15 + uint64(it)*0xbf58476d1ce4e5b9
	x ^= x >> 31
	return int64(x & math.MaxInt64)
}

// transformOf returns the image transform of a detector configuration.
func transformOf(c detection.Config) imageio.Transform {
	return imageio.Transform{MinSize: c.Transform.MinSize, MaxSize: c.Transform.MaxSize, Norm: imageio.Normalization(c.Transform.Norm)}
}

// toTrainImages converts loaded examples: labels become 1..K, difficult
// objects and boxes without area (after resizing) are left out, as in the
// original code (use_diff False) and Detectron2.
func toTrainImages(items []imageio.Example) []detection.TrainImage {
	out := make([]detection.TrainImage, len(items))
	for i, ex := range items {
		ti := detection.TrainImage{Data: ex.Image.Data, W: ex.Image.W, H: ex.Image.H}
		for j, b := range ex.Boxes {
			if ex.Difficult[j] || !(b.Width() > 0 && b.Height() > 0) {
				continue
			}
			ti.Boxes = append(ti.Boxes, b)
			ti.Labels = append(ti.Labels, ex.Labels[j]+1)
		}
		if ti.Boxes == nil {
			ti.Boxes = []box.Box{}
		}
		out[i] = ti
	}
	return out
}

// loadBackbone loads ImageNet weights (torchvision names; .pth or
// safetensors) into m's backbone.
func loadBackbone(m *detection.FasterRCNN, path string) error {
	var s weights.State
	var err error
	if strings.HasSuffix(path, ".safetensors") {
		s, _, err = weights.ReadSafetensors(path)
	} else {
		s, err = weights.LoadTorch(path)
	}
	if err != nil {
		return fmt.Errorf("train: init %s: %w", path, err)
	}
	if err := m.Backbone.Load(s); err != nil {
		return fmt.Errorf("train: init %s: %w", path, err)
	}
	return nil
}

// progressOptions: a bar on a terminal; otherwise a plain line every 10% or
// minute (the loss lines carry the rest).
func progressOptions(terminal bool, unit string) cli.ProgressOptions {
	o := cli.ProgressOptions{Terminal: terminal, Unit: unit}
	if !terminal {
		o.Interval = time.Minute
	}
	return o
}
