package train

import (
	"context"
	"time"

	"resdet/datasets"
	"resdet/detection"
	"resdet/optim"
)

// Hook extends the training loop, as Detectron2's HookBase does
// (engine/train_loop.py): Run calls BeforeTrain once before the first
// iteration, BeforeStep and AfterStep around every iteration, and
// AfterTrain once when the loop ends, whether the run completed, was
// interrupted (State.Interrupted) or failed (State.Err). Hooks run in
// order: the built-in ones (Observer, Options.OnStep, metrics log,
// checkpoints, evaluation) first, then Options.Hooks. An error from a hook
// ends the run with it. The checkpoint hook notices a cancelled context:
// one cancelled by a later hook stops the run after the next iteration.
type Hook interface {
	BeforeTrain(s *State) error
	BeforeStep(s *State) error
	AfterStep(s *State) error
	AfterTrain(s *State) error
}

// HookBase implements every Hook method as doing nothing; hooks embed it
// and define the methods they need.
type HookBase struct{}

// BeforeTrain does nothing.
func (HookBase) BeforeTrain(*State) error { return nil }

// BeforeStep does nothing.
func (HookBase) BeforeStep(*State) error { return nil }

// AfterStep does nothing.
func (HookBase) AfterStep(*State) error { return nil }

// AfterTrain does nothing.
func (HookBase) AfterTrain(*State) error { return nil }

// State is the training loop as hooks see it. Hooks read it; the loop and
// the built-in hooks write it. Fields describing "this step" are valid in
// AfterStep.
type State struct {
	Config Config
	Dir    RunDir
	// Start is the iteration this call of Run started from (0, or the
	// resumed checkpoint's); Resumed is that checkpoint's folder ("" for a
	// fresh run).
	Start   int
	Resumed string
	// Iter counts the iterations done; in AfterStep it includes this one.
	Iter int
	// PerEpoch is the number of batches (iterations) in an epoch; Epoch is
	// this step's (from 0).
	PerEpoch, Epoch int
	// LR is this step's learning rate.
	LR float64
	// Losses are this step's; FGRoIs its foreground RoIs in the box loss.
	// Both are zero when Images is 0.
	Losses detection.Losses
	FGRoIs int
	// Images is the number of images this step trained on: the batch size
	// less the images left out (Options.SkipBad). 0 means the iteration was
	// skipped (no optimiser step).
	Images int
	// Skipped holds an error for each image of this step that failed to
	// load and was left out (Options.SkipBad), each naming the file;
	// SkippedTotal counts those left out since iteration 0 (a resumed run
	// continues the count of its checkpoint).
	Skipped      []error
	SkippedTotal int
	// AllReduce is the wall time this step spent in the gradient
	// all-reduce of a data-parallel run (Options.Dist), waiting for the
	// slowest process included; 0 in a single-process run.
	AllReduce time.Duration
	// Logged is the metrics.jsonl line written at this step, or nil.
	Logged *Metrics
	// Eval is the evaluation done at this step (AfterStep) or at the end
	// (AfterTrain), or nil.
	Eval *EvalReport
	// Checkpoint is the latest checkpoint folder (written, or resumed
	// from), "" if none; Final is model_final.safetensors once written.
	Checkpoint, Final string
	// Interrupted is set when the context was cancelled: the loop ends
	// after this step, which is checkpointed.
	Interrupted bool
	// Err is, in AfterTrain, the error ending the run (nil when it
	// completed or was interrupted).
	Err error

	ctx      context.Context
	model    *detection.FasterRCNN
	trainer  *detection.Trainer
	sgd      *optim.SGD
	evalSet  *datasets.Set
	observer Observer
	dist     *distState // nil: a single process
}

// sync makes the model's weights current after the steps (the trainer
// may hold them in a step graph).
func (s *State) sync() error { return s.trainer.Sync() }

// Observer shows a run's progress: train calls it, the command line
// implements it (a progress bar on a terminal, plain lines otherwise).
// Run calls it from its own goroutine, in this order: Begin, then per
// iteration Step and possibly Logged and an evaluation (Evaluation, then
// Evaluated), then End. When Run fails before the loop (a bad
// configuration or run folder, weights that do not load) it calls none.
type Observer interface {
	// Begin: the run trains from iteration start to total; resumed is
	// the checkpoint folder it continues from ("" for a fresh run).
	Begin(start, total int, resumed string)
	// Step: iteration it (iterations done, from 1) finished with losses l
	// on images images (0: skipped); skipped lists the images left out,
	// each error naming its file.
	Step(it int, l detection.Losses, images int, skipped []error)
	// Logged: the metrics.jsonl line of a logged iteration.
	Logged(m Metrics)
	// Evaluation: an evaluation of images images starts after it
	// iterations. It returns the Progress to report to (nil: none).
	Evaluation(it, images int) Progress
	// Evaluated: an evaluation finished.
	Evaluated(rep *EvalReport)
	// End: the run ended with res (never nil) and err, as Run returns.
	End(res *Result, err error)
}

// Progress counts the finished steps of a job of known size (images of an
// evaluation): Add after each, Done at the end.
type Progress interface {
	Add(n int)
	Done()
}

// observerHook forwards the loop to an Observer.
type observerHook struct {
	HookBase
	o Observer
}

func (h observerHook) BeforeTrain(s *State) error {
	h.o.Begin(s.Start, s.Config.Iters, s.Resumed)
	return nil
}

func (h observerHook) AfterStep(s *State) error {
	h.o.Step(s.Iter, s.Losses, s.Images, s.Skipped)
	return nil
}

// stepFuncHook calls Options.OnStep after every iteration that trained.
type stepFuncHook struct {
	HookBase
	f func(it int, l detection.Losses)
}

func (h stepFuncHook) AfterStep(s *State) error {
	if s.Images > 0 {
		h.f(s.Iter, s.Losses)
	}
	return nil
}

// nopObserver shows nothing.
type nopObserver struct{}

func (nopObserver) Begin(int, int, string)                   {}
func (nopObserver) Step(int, detection.Losses, int, []error) {}
func (nopObserver) Logged(Metrics)                           {}
func (nopObserver) Evaluation(int, int) Progress             { return nil }
func (nopObserver) Evaluated(*EvalReport)                    {}
func (nopObserver) End(*Result, error)                       {}
