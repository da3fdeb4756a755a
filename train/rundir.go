package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"resdet/internal/atomicfile"
)

// RunDir is a run folder. It is the only place that knows the layout:
//
//	run.json                      the Config (identifies the run)
//	metrics.jsonl                 one JSON object per logged iteration (Metrics) or evaluation
//	checkpoints/iter_NNNNNNNN/    model.safetensors (a native detector checkpoint, detect reads it)
//	                              + trainer.safetensors (momentum, iteration, seed, skipped images)
//	model_final.safetensors       the detector after the last iteration
//	eval/iter_NNNNNNNN.json       evaluations during and at the end of training
//	eval/<split>.json             evaluations by train-det eval
//	loss.png, pr.png              plots (PlotRun)
type RunDir string

// Config returns the path of run.json.
func (d RunDir) Config() string { return d.join("run.json") }

// Metrics returns the path of metrics.jsonl.
func (d RunDir) Metrics() string { return d.join("metrics.jsonl") }

// CheckpointsDir returns the folder holding the checkpoints.
func (d RunDir) CheckpointsDir() string { return d.join("checkpoints") }

// Checkpoint returns the folder of the checkpoint after it iterations.
func (d RunDir) Checkpoint(it int) Checkpoint {
	return Checkpoint{Iter: it, Path: filepath.Join(d.CheckpointsDir(), fmt.Sprintf("iter_%08d", it))}
}

// Final returns the path of model_final.safetensors.
func (d RunDir) Final() string { return d.join("model_final.safetensors") }

// EvalDir returns the folder of the evaluation reports.
func (d RunDir) EvalDir() string { return d.join("eval") }

// EvalAt returns the path of the report of the evaluation after it
// iterations of training.
func (d RunDir) EvalAt(it int) string {
	return filepath.Join(d.EvalDir(), fmt.Sprintf("iter_%08d.json", it))
}

// EvalOf returns the path of the report of an evaluation of the final
// model on split outside training (train-det eval).
func (d RunDir) EvalOf(split string) string { return filepath.Join(d.EvalDir(), split+".json") }

// LossPlot and PRPlot return the paths of the plots PlotRun draws.
func (d RunDir) LossPlot() string { return d.join("loss.png") }

// PRPlot: see LossPlot.
func (d RunDir) PRPlot() string { return d.join("pr.png") }

func (d RunDir) join(name string) string { return filepath.Join(string(d), name) }

// runEntries are what a run writes into its folder; --force removes them.
func (d RunDir) runEntries() []string {
	return []string{d.Config(), d.Metrics(), d.CheckpointsDir(), d.Final(), d.EvalDir()}
}

// ReadConfig reads the Config of the run (its run.json). A missing file is
// an error wrapping fs.ErrNotExist.
func (d RunDir) ReadConfig() (Config, error) {
	p := d.Config()
	b, err := os.ReadFile(p)
	if err != nil {
		return Config{}, err
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("train: %s: %w", p, err)
	}
	return c, nil
}

// writeConfig writes run.json atomically.
func (d RunDir) writeConfig(c Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := atomicfile.WriteFile(d.Config(), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

// Checkpoint is one checkpoint folder of a run.
type Checkpoint struct {
	Iter int    // iterations done
	Path string // the folder
}

// Model returns the path of the checkpoint's detector weights (a native
// checkpoint that detect and eval read).
func (c Checkpoint) Model() string { return filepath.Join(c.Path, "model.safetensors") }

// trainer returns the path of the checkpoint's optimiser state.
func (c Checkpoint) trainer() string { return filepath.Join(c.Path, "trainer.safetensors") }

// Checkpoints lists the complete checkpoints of the run, oldest first
// (incomplete ones, being written, have temporary names and are left out).
func (d RunDir) Checkpoints() ([]Checkpoint, error) {
	ents, err := os.ReadDir(d.CheckpointsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	var out []Checkpoint
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "iter_")
		if !ok || !e.IsDir() {
			continue
		}
		it, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		out = append(out, Checkpoint{Iter: it, Path: filepath.Join(d.CheckpointsDir(), e.Name())})
	}
	slices.SortFunc(out, func(a, b Checkpoint) int { return a.Iter - b.Iter })
	return out, nil
}

// ResolveWeights returns the detector file a --weights argument names and,
// when it is a run folder, the run: a file is itself; a checkpoint folder
// its model.safetensors; a run folder its model_final.safetensors, else its
// latest checkpoint's model. A path that is not a folder (or does not
// exist) is returned as is, for the reader to report.
func ResolveWeights(path string) (file string, run RunDir, err error) {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return path, "", nil
	}
	if m := (Checkpoint{Path: path}).Model(); fileExists(m) {
		return m, "", nil
	}
	d := RunDir(path)
	if fileExists(d.Final()) {
		return d.Final(), d, nil
	}
	ck, err := d.Checkpoints()
	if err != nil {
		return "", "", err
	}
	if len(ck) == 0 {
		return "", "", fmt.Errorf("train: %s holds no model_final.safetensors, model.safetensors or checkpoints", path)
	}
	return ck[len(ck)-1].Model(), d, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// prepare checks and sets up the run folder for cfg: a fresh run needs an
// empty or new folder (Force empties one holding a run); Resume needs the
// same run (CheckResume) and continues from its latest checkpoint. It
// writes run.json and returns the checkpoint to start from (Iter 0 and no
// Path for a fresh start).
func (d RunDir) prepare(cfg Config, resume, force bool) (Checkpoint, error) {
	if d == "" {
		return Checkpoint{}, fmt.Errorf("train: no run folder given")
	}
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return Checkpoint{}, fmt.Errorf("train: %w", err)
	}
	prev, err := d.ReadConfig()
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		if !force {
			return Checkpoint{}, err
		}
		exists = true
	}
	switch {
	case exists && resume:
		if err := CheckResume(prev, cfg); err != nil {
			return Checkpoint{}, fmt.Errorf("train: %s holds a different run (%w in %s); use another folder or --force", d, err, d.Config())
		}
	case exists && force:
		for _, p := range d.runEntries() {
			if err := os.RemoveAll(p); err != nil {
				return Checkpoint{}, fmt.Errorf("train: --force: %w", err)
			}
		}
	case exists:
		return Checkpoint{}, fmt.Errorf("train: %s already holds a run (%s): pass --resume to continue it or --force to start over", d, d.Config())
	case resume:
		return Checkpoint{}, fmt.Errorf("train: --resume: %s holds no run (no %s)", d, d.Config())
	default:
		if ents, _ := os.ReadDir(string(d)); len(ents) > 0 && !force {
			return Checkpoint{}, fmt.Errorf("train: %s is not empty and holds no run: choose an empty or new folder, or --force", d)
		}
	}
	if err := d.writeConfig(cfg); err != nil {
		return Checkpoint{}, err
	}
	if !resume {
		return Checkpoint{}, nil
	}
	ckpts, err := d.Checkpoints()
	if err != nil || len(ckpts) == 0 {
		return Checkpoint{}, err
	}
	return ckpts[len(ckpts)-1], nil
}
