package train

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"resdet/checkpoint"
)

// metricsHook writes metrics.jsonl: a Metrics line every Config.LogEvery
// iterations and after the last (iterations whose images were all left out
// have none), and the evaluation lines evalHook records. A resumed run
// first drops the lines after its checkpoint.
type metricsHook struct {
	HookBase
	f      *os.File
	enc    *json.Encoder
	t0     time.Time
	images int
	winSum float64
	winN   int
	// the window since the previous line: its start and its all-reduce time
	winT0        time.Time
	winAllReduce time.Duration
}

func (h *metricsHook) BeforeTrain(s *State) error {
	if err := truncateMetrics(s.Dir.Metrics(), s.Start); err != nil {
		return err
	}
	f, err := os.OpenFile(s.Dir.Metrics(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	h.f, h.enc, h.t0 = f, json.NewEncoder(f), time.Now()
	h.winT0 = h.t0
	return nil
}

func (h *metricsHook) AfterStep(s *State) error {
	if s.Images == 0 {
		return nil
	}
	h.images += s.Images
	h.winSum, h.winN = h.winSum+s.Losses.Total(), h.winN+1
	h.winAllReduce += s.AllReduce
	if s.Iter%s.Config.LogEvery != 0 && s.Iter != s.Config.Iters {
		return nil
	}
	now, n := time.Now(), float64(h.winN)
	m := Metrics{Iter: s.Iter, LR: s.LR, Loss: s.Losses.Total(), LossMean: h.winSum / n, Losses: s.Losses,
		FGRoIs: s.FGRoIs, ImagesPerSec: float64(h.images) / now.Sub(h.t0).Seconds(), Epoch: s.Epoch, Skipped: s.SkippedTotal,
		StepSeconds: now.Sub(h.winT0).Seconds() / n, AllReduceSeconds: h.winAllReduce.Seconds() / n}
	h.winSum, h.winN, h.winT0, h.winAllReduce = 0, 0, now, 0
	if err := h.record(m); err != nil {
		return err
	}
	s.Logged = &m
	s.observer.Logged(m)
	return nil
}

// record appends v as a line.
func (h *metricsHook) record(v any) error {
	if err := h.enc.Encode(v); err != nil {
		return fmt.Errorf("train: %s: %w", h.f.Name(), err)
	}
	return nil
}

func (h *metricsHook) close() {
	if h.f != nil {
		h.f.Close()
	}
}

// checkpointHook writes a checkpoint every Config.CheckpointEvery
// iterations, after the last one and when the context is cancelled (then
// it sets State.Interrupted, which ends the loop), keeping the newest
// Config.Keep; at the end of a completed run it writes
// model_final.safetensors.
type checkpointHook struct{ HookBase }

func (checkpointHook) AfterStep(s *State) error {
	if s.ctx.Err() != nil {
		s.Interrupted = true
	}
	if s.Iter%s.Config.CheckpointEvery != 0 && s.Iter != s.Config.Iters && !s.Interrupted {
		return nil
	}
	if err := s.sync(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	p, err := saveCheckpoint(s.Dir, s.model, s.sgd, s.Iter, s.Config, s.SkippedTotal)
	if err != nil {
		return err
	}
	s.Checkpoint = p
	return nil
}

func (checkpointHook) AfterTrain(s *State) error {
	if s.Err != nil || s.Interrupted {
		return nil
	}
	if err := s.sync(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := checkpoint.Save(s.Dir.Final(), s.model); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	s.Final = s.Dir.Final()
	return nil
}

// evalHook evaluates on the eval set every Config.EvalEvery iterations
// (not after the last, nor when interrupted) and at the end of a completed
// run, writing eval/iter_N.json and a metrics.jsonl line.
type evalHook struct {
	HookBase
	metrics *metricsHook
}

func (h evalHook) AfterStep(s *State) error {
	c := s.Config
	if s.evalSet == nil || c.EvalEvery == 0 || s.Iter%c.EvalEvery != 0 || s.Iter == c.Iters || s.Interrupted {
		return nil
	}
	return h.evaluate(s)
}

func (h evalHook) AfterTrain(s *State) error {
	if s.evalSet == nil || s.Err != nil || s.Interrupted {
		return nil
	}
	return h.evaluate(s)
}

// evaluate evaluates the current weights, records the report and sets
// State.Eval.
func (h evalHook) evaluate(s *State) error {
	if err := s.sync(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	inf, err := inferenceModel(s.model)
	if err != nil {
		return fmt.Errorf("train: evaluate: %w", err)
	}
	defer inf.Close()
	rep, err := Evaluate(s.ctx, inf, s.evalSet, EvalOptions{COCO: s.Config.Format == "coco", Split: s.Config.EvalSplit,
		Progress: s.observer.Evaluation(s.Iter, s.evalSet.Len())})
	if err != nil {
		return err
	}
	rep.Iter = s.Iter
	if err := WriteEvalReport(s.Dir.EvalAt(s.Iter), rep); err != nil {
		return err
	}
	line := struct {
		Iter int `json:"iter"`
		Eval struct {
			VOC07 Float     `json:"voc07_map"`
			VOC   Float     `json:"voc_map"`
			COCO  []float64 `json:"coco,omitempty"`
		} `json:"eval"`
	}{Iter: s.Iter}
	line.Eval.VOC07, line.Eval.VOC, line.Eval.COCO = rep.VOC07MAP, rep.VOCMAP, rep.COCO
	if err := h.metrics.record(line); err != nil {
		return err
	}
	s.Eval = rep
	s.observer.Evaluated(rep)
	return nil
}
