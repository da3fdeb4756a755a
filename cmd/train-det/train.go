package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"resdet/datasets"
	"resdet/detection"
	"resdet/internal/cli"
	"resdet/internal/mpi"
	"resdet/nn"
	"resdet/train"
	"resdet/zoo"
)

// TrainOptions are the inputs of `train-det --data ...` (training).
type TrainOptions struct {
	IO  *cli.IOStreams
	Src dataSource
	// Split is trained on; EvalSplit ("" none) is evaluated at the end and
	// every EvalEvery iterations.
	Split, EvalSplit string
	Preset           string
	Arch, Init, Norm string
	// Precision of the training step: fp32, bf16 or auto (train.Config.Precision).
	Precision string
	// Cache is the model cache for --init NAME ("" = zoo.DefaultDir()).
	Cache            string
	FreezeAt         int // -1: 2 with --init, else 0
	Iters, Batch     int
	LR               float64
	Steps            []int
	Warmup           int
	WeightDecay      float64
	Momentum         float64
	MinSize, MaxSize int
	RoIsPerImage     int
	RoISize          int
	AnchorSizes      []float32
	TestProposals    int
	PadMultiple      int
	Flip             float64
	Seed             uint64
	Out              string
	Resume, Force    bool
	CheckpointEvery  int
	Keep             int
	LogEvery         int
	EvalEvery        int
	MaxLoss          float64
	SkipBad          bool
	Threads, Workers int
	// Changed holds the flags given on the command line: they override the
	// preset (or, with --resume, the run's saved settings that may change).
	Changed map[string]bool
	// resumeFlags are the flags --resume accepts besides --out and --resume.
	resumeFlags []string
}

// addTrainFlags binds the training flags of cmd into opts.
func addTrainFlags(cmd *cobra.Command, opts *TrainOptions) {
	def := train.DefaultConfig("r101-c4", []string{"x"})
	f := cmd.Flags()
	f.StringVar(&opts.Src.Data, "data", "", "training data: a VOC year folder (or a folder holding VOC2007, e.g. a synthetic dataset), or with --format coco an instances JSON file (or such a folder)")
	f.StringVar(&opts.Src.Format, "format", "voc", "data format: voc or coco")
	f.StringVar(&opts.Src.Images, "images", "", "COCO image folder (default: the annotation file's folder)")
	f.StringVar(&opts.Src.Classes, "classes", "", "VOC class names: voc, synth or a file with one per line (default: synth for synthetic data, else voc)")
	f.StringVar(&opts.Split, "split", "trainval", "split to train on")
	f.StringVar(&opts.EvalSplit, "eval-split", "", "split to evaluate at the end of training (and every --eval-every iterations), e.g. test")
	f.StringVar(&opts.Preset, "preset", "", "recipe: voc07 (lr 0.001 for 60k iterations, 0.0001 for 20k, batch 1, weight decay 5e-4), coco, or Detectron2's FPN recipes at batch 2: coco-fpn, voc07-fpn (these default --arch to "+detection.ArchTVR50FPN+"); flags given override it")
	f.StringVar(&opts.Arch, "arch", "r101-c4", "architecture: r18-c4, r34-c4, r50-c4, r101-c4, r152-c4 (the paper's C4), tv-r50-fpn or tv-r50-fpn-v2 (torchvision's FPN)")
	f.StringVar(&opts.Init, "init", "", "weights to start from: an ImageNet ResNet (torchvision .pth/.safetensors, MSRA R-50.pkl/R-101.pkl) or a detector to fine-tune (Detectron2 .pkl, torchvision .pth, our checkpoint); the file sets the architecture and preprocessing it needs; without it the weights are random")
	f.StringVar(&opts.Cache, "cache", "", "model cache for --init with a published model's name (default: $RESDET_CACHE, $XDG_CACHE_HOME/resdet/models or ~/.cache/resdet/models)")
	f.StringVar(&opts.Norm, "norm", "frozen", "batch norm: frozen (the paper's, and every publisher's with --init) or trainable (batch statistics, for training from scratch)")
	f.StringVar(&opts.Precision, "precision", "fp32", "arithmetic of the training step: fp32, bf16 (mixed precision: convolutions forward and backward in bfloat16, float32 weights, optimiser, batch norm and losses; needs AVX512_BF16 or AMX) or auto (bf16 where the CPU has AMX)")
	f.IntVar(&opts.FreezeAt, "freeze-at", -1, "freeze the stem (1) and res2 (2); -1: as the --init file's publisher trains (2), else 0")
	f.IntVar(&opts.Iters, "iters", def.Iters, "training iterations")
	f.IntVar(&opts.Batch, "batch", def.Batch, "images per batch (grouped by aspect ratio)")
	f.Float64Var(&opts.LR, "lr", def.BaseLR, "base learning rate")
	f.IntSliceVar(&opts.Steps, "steps", nil, "iterations at which the learning rate is multiplied by 0.1")
	f.IntVar(&opts.Warmup, "warmup", def.WarmupIters, "iterations of linear learning-rate warm-up (from lr/1000)")
	f.Float64Var(&opts.WeightDecay, "weight-decay", shortest(def.WeightDecay), "L2 weight decay")
	f.Float64Var(&opts.Momentum, "momentum", shortest(def.Momentum), "SGD momentum")
	f.IntVar(&opts.MinSize, "min-size", def.Model.Transform.MinSize, "resize the shorter image side to this many pixels")
	f.IntVar(&opts.MaxSize, "max-size", def.Model.Transform.MaxSize, "cap on the longer image side")
	f.IntVar(&opts.RoIsPerImage, "rois-per-image", def.Model.RoIHeads.BatchSizePerImage, "RoIs per image in the box-head loss (25% foreground)")
	f.IntVar(&opts.RoISize, "roi-size", def.Model.RoIOp.Size, "RoIAlign output side (res5 halves it)")
	f.IntVar(&opts.TestProposals, "test-proposals", def.Model.RPN.PostNMSTopNTest, "proposals kept after NMS at test time (evaluation, detect)")
	f.Float32SliceVar(&opts.AnchorSizes, "anchor-sizes", def.Model.RPN.Anchors.Sizes, "anchor sizes in pixels (3 aspect ratios each)")
	f.IntVar(&opts.PadMultiple, "pad-multiple", 0, "pad batches to multiples of this (0: 32); coarser means fewer graph shapes")
	f.Float64Var(&opts.Flip, "flip", def.FlipProb, "probability of a horizontal flip")
	f.Uint64Var(&opts.Seed, "seed", def.Seed, "random seed (order, flips, sampling, initialisation)")
	f.StringVarP(&opts.Out, "out", "o", "", "run folder (required): run.json, metrics.jsonl, checkpoints, model_final.safetensors")
	f.BoolVar(&opts.Resume, "resume", false, "continue the run in --out from its latest checkpoint")
	f.BoolVar(&opts.Force, "force", false, "start over in a run folder that holds a run (deletes its checkpoints and metrics)")
	f.IntVar(&opts.CheckpointEvery, "checkpoint-every", def.CheckpointEvery, "write a checkpoint every N iterations (and at the end)")
	f.IntVar(&opts.Keep, "keep", def.Keep, "checkpoints kept (the latest)")
	f.IntVar(&opts.LogEvery, "log-every", def.LogEvery, "log and record metrics every N iterations")
	f.IntVar(&opts.EvalEvery, "eval-every", 0, "also evaluate --eval-split every N iterations (0: only at the end)")
	f.Float64Var(&opts.MaxLoss, "max-loss", def.MaxLoss, "stop as diverged when the total loss exceeds this")
	f.BoolVar(&opts.SkipBad, "skip-bad", false, "skip images and annotations that fail to load (listed) instead of stopping")
	f.IntVar(&opts.Threads, "threads", 0, "compute threads (0: RESDET_THREADS or all cores)")
	f.IntVar(&opts.Workers, "workers", 0, "image loading goroutines (0: all cores)")
	_ = cmd.MarkFlagDirname("out")
	opts.resumeFlags = resumeFlags(f)
}

// runFlags are the flags that are not settings of the run (run.json):
// where it is, how to start, what to do with bad images, how many threads.
var runFlags = []string{"out", "resume", "force", "skip-bad", "threads"}

// flagField returns the JSON name of the train.Config field a flag sets
// when the flag is named after it (--log-every sets log_every).
func flagField(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// mayChangeOnResume reports whether --resume accepts the flag: a flag that
// is not a setting of the run, or one whose field train lets change.
func mayChangeOnResume(flag string) bool {
	return slices.Contains(runFlags, flag) || train.MayChangeOnResume(flagField(flag))
}

// resumeFlags returns the flags of fs that --resume accepts (but --out
// and --resume themselves), sorted.
func resumeFlags(fs *pflag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "out" && f.Name != "resume" && f.Name != "force" && mayChangeOnResume(f.Name) {
			names = append(names, f.Name)
		}
	})
	slices.Sort(names)
	return names
}

// frozenOnResume returns the flags given (as --name) that --resume does not
// accept, sorted.
func (o *TrainOptions) frozenOnResume() []string {
	var bad []string
	for name, set := range o.Changed {
		if set && !mayChangeOnResume(name) {
			bad = append(bad, "--"+name)
		}
	}
	slices.Sort(bad)
	return bad
}

// shortest returns the float64 that prints as v's shortest float32
// decimal (0.9, not 0.8999999761581421), for flag defaults.
func shortest(v float32) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
	return f
}

// validate checks the flags that need no data.
func (o *TrainOptions) validate() error {
	switch {
	case o.Out == "":
		return cli.Usagef(`required flag "out" not set`)
	case o.Src.Data == "" && !o.Resume:
		return cli.Usagef(`required flag "data" not set`)
	case o.Resume && o.Force:
		return cli.Usagef("--resume and --force exclude each other")
	case o.Resume && len(o.frozenOnResume()) > 0:
		return cli.Usagef("--resume continues the run with its saved settings (run.json): %s cannot change; flags that may: --%s",
			strings.Join(o.frozenOnResume(), ", "), strings.Join(o.resumeFlags, ", --"))
	case o.Src.Format != "voc" && o.Src.Format != "coco":
		return cli.Usagef("--format must be voc or coco, got %q", o.Src.Format)
	case o.Iters < 1:
		return cli.Usagef("--iters must be positive, got %d", o.Iters)
	case o.Batch < 1:
		return cli.Usagef("--batch must be positive, got %d", o.Batch)
	case o.Flip < 0 || o.Flip > 1:
		return cli.Usagef("--flip must be in [0, 1], got %g", o.Flip)
	}
	if _, err := nn.ParsePrecision(o.Precision); err != nil {
		return cli.Usagef("--precision must be fp32, bf16 or auto, got %q", o.Precision)
	}
	if o.Preset != "" && !slices.Contains(presets, o.Preset) {
		return cli.Usagef("--preset must be %s, got %q", strings.Join(presets, ", "), o.Preset)
	}
	if _, err := detection.ArchDepth(o.Arch); err != nil {
		return cli.Usagef("--arch: %v", err)
	}
	return nil
}

// config returns the run configuration: the defaults, the preset, then
// the flags given; with --resume the saved one (run.json) with the flags
// given that may change applied (train.ResumeConfig).
func (o *TrainOptions) config(classes []string) (train.Config, error) {
	c, err := o.flagConfig(classes)
	if err != nil {
		return c, err
	}
	if !o.Resume {
		return c, c.Validate()
	}
	saved, err := train.RunDir(o.Out).ReadConfig()
	if err != nil {
		return c, fmt.Errorf("--resume: %w", err)
	}
	var fields []string
	for name, set := range o.Changed {
		if f := flagField(name); set && train.MayChangeOnResume(f) {
			fields = append(fields, f)
		}
	}
	if c, err = train.ResumeConfig(saved, c, fields); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// presets are the names train.Config.Preset knows.
var presets = []string{"voc07", "coco", "voc07-fpn", "coco-fpn"}

// flagConfig returns the defaults for --arch and classes, the preset, then
// the flags given. An FPN preset without --arch trains torchvision's
// fasterrcnn_resnet50_fpn.
func (o *TrainOptions) flagConfig(classes []string) (train.Config, error) {
	set := func(name string) bool { return o.Changed[name] }
	arch := o.Arch
	if strings.HasSuffix(o.Preset, "-fpn") && !set("arch") {
		arch = detection.ArchTVR50FPN
	}
	c := train.DefaultConfig(arch, classes)
	if o.Preset != "" {
		if err := c.Preset(o.Preset); err != nil {
			return c, err
		}
	}
	c.Data, c.Format, c.ImageDir, c.Split, c.EvalSplit = o.Src.Data, o.Src.Format, o.Src.Images, o.Split, o.EvalSplit
	c.Init, c.Norm, c.Seed, c.FlipProb = o.Init, o.Norm, o.Seed, o.Flip
	if set("precision") {
		p, err := nn.ParsePrecision(o.Precision)
		if err != nil {
			return c, err
		}
		c.Precision = p
	}
	c.FreezeAt = o.FreezeAt
	if c.FreezeAt < 0 {
		c.FreezeAt = 0
		if o.Init != "" {
			c.FreezeAt = 2
		}
	}
	if set("iters") || o.Preset == "" {
		c.Iters = o.Iters
	}
	if set("batch") {
		c.Batch = o.Batch
	}
	if set("lr") {
		c.BaseLR = o.LR
	}
	if set("steps") {
		c.Steps = o.Steps
	}
	if set("warmup") {
		c.WarmupIters = o.Warmup
	}
	if set("weight-decay") {
		c.WeightDecay = float32(o.WeightDecay)
	}
	if set("momentum") {
		c.Momentum = float32(o.Momentum)
	}
	o.applyModelFlags(&c.Model)
	if o.Changed["min-size"] {
		c.MinSizesTrain = nil // one size: --min-size replaces a preset's multi-scale list
	}
	c.PadMultiple = o.PadMultiple
	c.CheckpointEvery, c.Keep, c.LogEvery, c.EvalEvery, c.MaxLoss, c.Workers = o.CheckpointEvery, o.Keep, o.LogEvery, o.EvalEvery, o.MaxLoss, o.Workers
	return c, nil
}

// applyModelFlags sets the model settings given on the command line in m:
// after the defaults and the preset, and again on the configuration of a
// detector given as --init (train.InitChoices.Model).
func (o *TrainOptions) applyModelFlags(m *detection.Config) {
	set := func(name string) bool { return o.Changed[name] }
	if set("min-size") {
		m.Transform.MinSize = o.MinSize
	}
	if set("max-size") {
		m.Transform.MaxSize = o.MaxSize
	}
	if set("rois-per-image") {
		m.RoIHeads.BatchSizePerImage = o.RoIsPerImage
	}
	if set("roi-size") {
		m.RoIOp.Size = o.RoISize
	}
	if set("test-proposals") {
		m.RPN.PostNMSTopNTest = o.TestProposals
		m.RPN.PreNMSTopNTest = max(m.RPN.PreNMSTopNTest, o.TestProposals)
	}
	if set("anchor-sizes") {
		m.RPN.Anchors.Sizes = o.AnchorSizes
	}
}

// initChoices says which settings --init may not override (train.ApplyInit).
func (o *TrainOptions) initChoices() train.InitChoices {
	return train.InitChoices{Arch: o.Changed["arch"], FreezeAt: o.Changed["freeze-at"], Norm: o.Changed["norm"], Model: o.applyModelFlags}
}

// initFile returns the file --init names, downloading a published model
// into the cache first (train.InitFile; rank 0 only, the other processes
// of an MPI run need it cached) with a progress bar.
func (o *TrainOptions) initFile(ios *cli.IOStreams, rank int) (string, error) {
	if o.Init == "" {
		return "", nil
	}
	cache, err := zoo.NewCache(o.Cache)
	if err != nil {
		return "", err
	}
	bar := cli.NewDownloadBar(ios.ErrOut, o.Init)
	path, err := train.InitFile(context.Background(), o.Init, cache, rank != 0, bar.Update)
	bar.End(err)
	return path, err
}

// runTrain loads the data, trains and prints where the results are.
func runTrain(opts *TrainOptions) error {
	comm, err := startDist()
	if err != nil {
		return err
	}
	if comm == nil {
		return trainProcess(opts, nil)
	}
	err = trainProcess(opts, comm)
	if err != nil && comm.Size() > 1 {
		// The other processes wait for this one: end the whole job.
		fmt.Fprintf(opts.IO.ErrOut, "train-det: process %d of %d failed: %v\nstopping every process\n", comm.Rank(), comm.Size(), err)
		comm.Abort(1)
	}
	if e := mpi.Finalize(); e != nil && err == nil {
		err = e
	}
	return err
}

// trainProcess trains, alone (comm nil) or as one process of an MPI job.
func trainProcess(opts *TrainOptions, comm *mpi.Comm) error {
	ios := opts.IO
	rank := 0
	if comm != nil {
		rank = comm.Rank()
	}
	if opts.Threads > 0 {
		nn.SetThreads(opts.Threads)
	} else if _, err := nn.ThreadsFromEnv(); err != nil {
		return err
	}
	src := opts.Src
	split, evalSplit := opts.Split, opts.EvalSplit
	var classes []string
	if opts.Resume {
		c, err := train.RunDir(opts.Out).ReadConfig()
		if err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		src = dataSource{Data: c.Data, Format: c.Format, Images: c.ImageDir}
		split, evalSplit = c.Split, c.EvalSplit
		classes = c.Model.Classes
	}
	if src.Format == "voc" && classes != nil {
		// The run's own class list, whatever --classes resolves to now.
		src.ClassNames = classes
	}
	set, err := src.load(split, opts.SkipBad)
	if err != nil {
		return err
	}
	reportSkipped(ios, set)
	var evalSet *datasets.Set
	if evalSplit != "" {
		if evalSet, err = src.load(evalSplit, opts.SkipBad); err != nil {
			return err
		}
		reportSkipped(ios, evalSet)
	}
	cfg, err := opts.config(set.Classes)
	if err != nil {
		return err
	}
	if !opts.Resume {
		if cfg.Init, err = opts.initFile(ios, rank); err != nil {
			return err
		}
		var notes []string
		if cfg, notes, err = train.ApplyInit(cfg, opts.initChoices()); err != nil {
			return err
		}
		for _, n := range notes {
			if rank == 0 {
				fmt.Fprintln(ios.ErrOut, n)
			}
		}
	}
	prec, err := cfg.ResolvePrecision()
	if err != nil {
		return err
	}
	if rank == 0 {
		fmt.Fprintf(ios.ErrOut, "precision %s: %s\n", prec, prec.Reason)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	onStep, err := failAt(rank, ios.ErrOut)
	if err != nil {
		return err
	}
	to := train.Options{
		Dir: opts.Out, Resume: opts.Resume, Force: opts.Force, SkipBad: opts.SkipBad, OnStep: onStep,
		Observer: newTrainDisplay(ios.ErrOut, cli.IsTerminal(ios.ErrOut)),
	}
	procs := ""
	if comm != nil {
		to.Dist = comm
		procs = fmt.Sprintf(" on %d processes", comm.Size())
	}
	if rank == 0 {
		fmt.Fprintf(ios.ErrOut, "training %s on %s (%s, %d images, %d classes) for %d iterations, batch %d, lr %g, steps %v%s -> %s\n",
			cfg.Model.Arch, cfg.Data, split, set.Len(), len(set.Classes), cfg.Iters, cfg.Batch, cfg.BaseLR, cfg.Steps, procs, opts.Out)
	}
	res, err := train.Run(ctx, cfg, train.Data{Train: set, Eval: evalSet}, to)
	if err != nil {
		if errors.Is(err, train.ErrDiverged) {
			return fmt.Errorf("%w\n(lower --lr, lengthen --warmup, or check the data)", err)
		}
		return err
	}
	if rank != 0 {
		return nil
	}
	out := ios.Out
	if res.Interrupted {
		fmt.Fprintf(out, "interrupted after %d iterations; checkpoint: %s\nresume with: train-det --out %s --resume\n", res.Iter, res.Checkpoint, opts.Out)
		return nil
	}
	fmt.Fprintf(out, "trained %d iterations\n  run folder: %s\n  metrics:    %s\n  model:      %s\n  checkpoint: %s\n",
		res.Iter, opts.Out, train.RunDir(opts.Out).Metrics(), res.Final, res.Checkpoint)
	if res.Eval != nil {
		fmt.Fprintf(out, "  eval (%s, %d images): VOC07 mAP %.4f, VOC area mAP %.4f\n", evalSplit, res.Eval.Images, res.Eval.VOC07MAP, res.Eval.VOCMAP)
	}
	return nil
}

// reportSkipped lists the samples a reader dropped with --skip-bad.
func reportSkipped(ios *cli.IOStreams, s *datasets.Set) {
	for _, e := range s.Skipped {
		fmt.Fprintf(ios.ErrOut, "skipped: %v\n", e)
	}
}
