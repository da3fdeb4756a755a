package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	mrand "math/rand"
	"math/rand/v2"
	"resdet/nn"
	"slices"
	"strings"

	"resdet/box"
	"resdet/datasets"
	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/optim"
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
	Dir string // run folder (see RunDir)
	// Resume continues the run in Dir from its latest checkpoint (from
	// iteration 0 if there is none); Force starts over in a folder that
	// holds a run. Without either, such a folder is refused.
	Resume, Force bool
	// SkipBad leaves out training images that fail to load (reported to
	// the Observer and counted in metrics.jsonl) instead of stopping the
	// run; a batch whose images all fail is an iteration without a step.
	SkipBad bool
	// Observer shows the progress (nil: nothing is shown).
	Observer Observer
	// OnStep, if set, is called after every iteration that trained, with
	// the iterations done and the losses, before the checkpoint hook (so a
	// context cancelled in it stops the run at this iteration).
	OnStep func(iter int, l detection.Losses)
	// Hooks run after the built-in ones (see Hook).
	Hooks []Hook
	// Dist, if set, makes this process one of a data-parallel run (see
	// Dist); nil trains in this process alone.
	Dist Dist
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
	// StepSeconds is the mean wall time of the iterations since the
	// previous line, all of the loop (data, step, update, hooks);
	// AllReduceSeconds the part of it spent in the gradient all-reduce of
	// a data-parallel run (omitted in a single-process run).
	StepSeconds      float64 `json:"step_s"`
	AllReduceSeconds float64 `json:"allreduce_s,omitempty"`
	Epoch            int     `json:"epoch"`
	// Skipped counts the images left out since iteration 0 because they
	// failed to load (Options.SkipBad).
	Skipped int `json:"skipped"`
}

// Result summarises a run.
type Result struct {
	Iter        int    // iterations done
	Interrupted bool   // the context was cancelled; a checkpoint was written
	Checkpoint  string // the latest checkpoint folder
	Final       string // model_final.safetensors, when the run completed
	Eval        *EvalReport
	Skipped     int // images left out since iteration 0 (Options.SkipBad)
}

// Run trains cfg's detector on data.Train in the run folder o.Dir: SGD
// with momentum and weight decay, the warm-up multi-step schedule, batches
// grouped by aspect ratio with horizontal flips, approximate joint
// training (detection.Trainer). Everything random is a function of
// Config.Seed and the iteration (epoch order, flips, anchor and RoI
// sampling), so a run resumed from a checkpoint continues exactly as if it
// had not stopped.
//
// The loop reads a batch, steps and updates the optimiser; hooks do the
// rest (see Hook): the Observer's progress, metrics.jsonl, checkpoints
// (every Config.CheckpointEvery iterations, at the end and when
// interrupted; the last Config.Keep kept), evaluation on data.Eval (every
// Config.EvalEvery iterations and at the end) and model_final.safetensors.
// When ctx is cancelled (Ctrl-C) it finishes the iteration, writes a
// checkpoint and returns a Result with Interrupted set. A diverging loss
// stops it with an error wrapping ErrDiverged, keeping the checkpoints.
// With Options.Dist, Run is one process of a data-parallel run (see Dist).
func Run(ctx context.Context, cfg Config, data Data, o Options) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	prec, err := cfg.ResolvePrecision()
	if err != nil {
		return nil, err
	}
	if cfg.Precision == nn.PrecisionAuto {
		// run.json records the precision the run trains in, so that a
		// resume on another CPU cannot switch it silently (auto is bf16
		// only with AMX): there it is refused as a different run.
		cfg.Precision = nn.Precision(prec.String())
	}
	if data.Train == nil || data.Train.Len() == 0 {
		return nil, fmt.Errorf("train: no training images")
	}
	if !slices.Equal(data.Train.Classes, cfg.Model.Classes) {
		return nil, fmt.Errorf("train: the training set's classes %v differ from the model's %v", data.Train.Classes, cfg.Model.Classes)
	}
	perEpoch := len(datasets.TrainingBatches(data.Train, cfg.Batch, rand.New(rand.NewPCG(cfg.Seed, 0))))
	if perEpoch == 0 {
		return nil, fmt.Errorf("train: %d training images are fewer than a batch of %d", data.Train.Len(), cfg.Batch)
	}
	if o.Dist != nil {
		if err := checkDist(o.Dist, cfg); err != nil {
			return nil, err
		}
		if o.Dist.Rank() != 0 {
			o.Observer = nil
		}
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	dir := RunDir(o.Dir)
	var ck Checkpoint
	if o.Dist == nil || o.Dist.Rank() == 0 {
		ck, err = dir.prepare(cfg, o.Resume, o.Force)
	}
	if o.Dist != nil {
		ck, err = agreeStart(o.Dist, dir, ck, err)
	}
	if err != nil {
		return nil, err
	}
	s := &State{Config: cfg, Dir: dir, Start: ck.Iter, Resumed: ck.Path, Iter: ck.Iter, PerEpoch: perEpoch, Checkpoint: ck.Path,
		ctx: ctx, evalSet: data.Eval, observer: o.Observer}
	if o.Dist != nil {
		// Every process sees the interruption at the same iteration: the
		// loop's context is cancelled from the all-reduced flag.
		dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		s.ctx, s.dist = dctx, &distState{d: o.Dist, user: ctx, cancel: cancel}
	}
	if err := s.build(ck); err != nil {
		return nil, err
	}
	defer s.trainer.Close()
	mh := &metricsHook{}
	defer mh.close()
	hooks := []Hook{observerHook{o: o.Observer}}
	if o.OnStep != nil {
		hooks = append(hooks, stepFuncHook{f: o.OnStep})
	}
	if o.Dist == nil || o.Dist.Rank() == 0 {
		hooks = append(hooks, mh, checkpointHook{}, evalHook{metrics: mh})
	}
	hooks = append(hooks, o.Hooks...)
	err = s.run(hooks, data.Train, o.SkipBad)
	res := &Result{Iter: s.Iter, Interrupted: s.Interrupted, Checkpoint: s.Checkpoint, Final: s.Final, Skipped: s.SkippedTotal}
	if err == nil && !s.Interrupted {
		res.Eval = s.Eval
	}
	o.Observer.End(res, err)
	return res, err
}

// build creates the detector, its trainer and the optimiser, from ck when
// it names a checkpoint, else from Config.Init or random weights.
func (s *State) build(ck Checkpoint) error {
	cfg := s.Config
	norm, _ := cfg.norm()
	m, err := detection.NewTrainable(cfg.Model, detection.TrainBuild{Rng: mrand.New(mrand.NewSource(int64(cfg.Seed))), Norm: norm, FreezeAt: cfg.FreezeAt, Precision: cfg.Precision})
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if cfg.Init != "" && ck.Path == "" {
		if err := loadInit(m, cfg); err != nil {
			return err
		}
	}
	tr := detection.NewTrainer(m, detection.TrainerConfig{Targets: cfg.Targets, PadMultiple: cfg.PadMultiple, MaxGraphs: cfg.MaxGraphs})
	params := tr.Params()
	if s.dist != nil {
		params = s.dist.fuse(params)
	}
	sgd, err := optim.NewSGD(params, cfg.sgd())
	if err != nil {
		tr.Close()
		return fmt.Errorf("train: %w", err)
	}
	if ck.Path != "" {
		if s.SkippedTotal, err = loadCheckpoint(ck, m, sgd); err != nil {
			tr.Close()
			return err
		}
	}
	s.model, s.trainer, s.sgd = m, tr, sgd
	return nil
}

// run is the loop: BeforeTrain hooks, then per iteration a batch, the
// BeforeStep hooks, the step and the AfterStep hooks, until the last
// iteration or an interruption; then the AfterTrain hooks, which see the
// error ending the loop in State.Err.
func (s *State) run(hooks []Hook, set *datasets.Set, skipBad bool) error {
	err := s.loop(hooks, set, skipBad)
	s.Err = err
	for _, h := range hooks {
		if e := h.AfterTrain(s); e != nil && s.Err == nil {
			s.Err = e
		}
	}
	return s.Err
}

func (s *State) loop(hooks []Hook, set *datasets.Set, skipBad bool) error {
	for _, h := range hooks {
		if err := h.BeforeTrain(s); err != nil {
			return err
		}
	}
	cfg := s.Config
	for s.Iter < cfg.Iters && !s.Interrupted {
		epoch := s.Iter / s.PerEpoch
		batches := datasets.TrainingBatches(set, cfg.Batch, rand.New(rand.NewPCG(cfg.Seed, uint64(epoch))))[s.Iter%s.PerEpoch:]
		var los []int // data-parallel: each shard's position in its batch
		if s.dist != nil {
			batches, los = shard(s.dist.d, batches)
		}
		for b, err := range s.loader(set, epoch, skipBad).Epoch(batches, cfg.Seed) {
			if err != nil {
				return fmt.Errorf("train: iteration %d: %w", s.Iter, err)
			}
			for _, h := range hooks {
				if err := h.BeforeStep(s); err != nil {
					return err
				}
			}
			if s.dist != nil {
				err = s.distStep(b.Items, los[b.Index])
			} else {
				err = s.step(b.Items)
			}
			if err != nil {
				return err
			}
			for _, h := range hooks {
				if err := h.AfterStep(s); err != nil {
					return err
				}
			}
			if s.Interrupted || s.Iter == cfg.Iters || s.Iter%s.PerEpoch == 0 {
				break
			}
		}
	}
	return nil
}

// loaded is a loaded training image or, with SkipBad, the error that
// leaves it out.
type loaded struct {
	ex  imageio.Example
	err error
}

// loader loads the images of an epoch. The sample's generator depends on
// the epoch and the image, not on where the loader started: resumed runs
// flip alike (and, with MinSizesTrain, resize alike: the size is drawn
// from a second generator of the epoch and the image). Load errors name the image file; with skipBad they are
// carried in the items instead of ending the epoch.
func (s *State) loader(set *datasets.Set, epoch int, skipBad bool) *datasets.Loader[loaded] {
	cfg := s.Config
	tr := transformOf(cfg.Model)
	bases := []datasets.LoadFunc[imageio.Example]{tr.LoadFunc(set, cfg.FlipProb)}
	if len(cfg.MinSizesTrain) > 0 {
		bases = bases[:0]
		for _, m := range cfg.MinSizesTrain {
			tr.MinSize = m
			bases = append(bases, tr.LoadFunc(set, cfg.FlipProb))
		}
	}
	return datasets.NewLoader(func(i int, _ *rand.Rand) (loaded, error) {
		base := bases[0]
		if len(bases) > 1 {
			// A generator of its own, so that the flips are those of a
			// single-size run.
			base = bases[rand.New(rand.NewPCG(cfg.Seed^0x2545f4914f6cdd1d, uint64(epoch)<<32|uint64(i))).IntN(len(bases))]
		}
		ex, err := base(i, rand.New(rand.NewPCG(cfg.Seed^0x9e3779b97f4a7c15, uint64(epoch)<<32|uint64(i))))
		if err != nil {
			if p := set.Record(i).ImagePath; !strings.Contains(err.Error(), p) {
				err = fmt.Errorf("%s: %w", p, err)
			}
			if skipBad {
				return loaded{err: err}, nil
			}
			return loaded{}, err
		}
		return loaded{ex: ex}, nil
	}, datasets.LoaderConfig{Workers: cfg.Workers})
}

// step trains one batch (leaving out the images that failed to load) and
// counts the iteration.
func (s *State) step(items []loaded) error {
	cfg := s.Config
	s.Epoch, s.LR = s.Iter/s.PerEpoch, cfg.schedule().LR(s.Iter)
	s.Losses, s.FGRoIs, s.Skipped, s.Logged, s.Eval = detection.Losses{}, 0, nil, nil, nil
	var exs []imageio.Example
	for _, x := range items {
		if x.err != nil {
			s.Skipped = append(s.Skipped, x.err)
			continue
		}
		exs = append(exs, x.ex)
	}
	s.SkippedTotal += len(s.Skipped)
	s.Images = len(exs)
	if len(exs) > 0 {
		l, err := s.trainer.Step(toTrainImages(exs), mrand.New(mrand.NewSource(stepSeed(cfg.Seed, s.Iter))))
		if err != nil && !errors.Is(err, detection.ErrNonFiniteLoss) {
			return fmt.Errorf("train: iteration %d: %w", s.Iter, err)
		}
		if err == nil && !(l.Total() <= cfg.MaxLoss) {
			err = fmt.Errorf("total loss %.4g above the limit %g (%+v)", l.Total(), cfg.MaxLoss, l)
		}
		if err == nil {
			if err = s.sgd.Step(s.LR); err != nil && !errors.Is(err, optim.ErrNonFinite) {
				return fmt.Errorf("train: iteration %d: %w", s.Iter, err)
			}
		}
		if err != nil {
			last := s.Checkpoint
			if last == "" {
				last = "none written yet"
			}
			return fmt.Errorf("train: iteration %d: %w: %v; the last good checkpoint is kept: %s", s.Iter, ErrDiverged, err, last)
		}
		s.Losses, s.FGRoIs = l, s.trainer.LastForeground()
	}
	s.Iter++
	return nil
}

// stepSeed is the seed of iteration it's anchor and RoI sampling.
func stepSeed(seed uint64, it int) int64 {
	x := seed*0x9e3779b97f4a7c15 + uint64(it)*0xbf58476d1ce4e5b9
	x ^= x >> 31
	return int64(x & math.MaxInt64)
}

// transformOf returns the image transform of a detector configuration.
func transformOf(c detection.Config) imageio.Transform {
	return imageio.Transform{Preprocess: imageio.Preprocess(c.Transform.Preprocess), MinSize: c.Transform.MinSize, MaxSize: c.Transform.MaxSize,
		Norm: imageio.Normalization(c.Transform.Norm)}
}

// toTrainImages converts loaded examples, named by their files: labels
// become 1..K, difficult objects and boxes without area (after resizing)
// are left out, as in the original code (use_diff False) and Detectron2.
func toTrainImages(items []imageio.Example) []detection.TrainImage {
	out := make([]detection.TrainImage, len(items))
	for i, ex := range items {
		ti := detection.TrainImage{Data: ex.Image.Data, W: ex.Image.W, H: ex.Image.H, Name: ex.Record.ImagePath}
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
