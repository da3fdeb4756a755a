package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"resdet/checkpoint"
	"resdet/detection"
	"resdet/optim"
	"resdet/weights"
)

// prepareDir checks and sets up the run folder. It returns the iteration
// to start from and the checkpoint to load ("" for a fresh start).
func prepareDir(cfg Config, o Options) (int, string, error) {
	if o.Dir == "" {
		return 0, "", fmt.Errorf("train: no run folder given")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return 0, "", fmt.Errorf("train: %w", err)
	}
	runPath := filepath.Join(o.Dir, runFile)
	prev, err := ReadRunConfig(o.Dir)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		if !o.Force {
			return 0, "", err
		}
		exists = true
	}
	switch {
	case exists && o.Resume:
		if f, same := cfg.sameRun(prev); !same {
			return 0, "", fmt.Errorf("train: %s holds a different run (%q differs from %s); use another folder or --force", o.Dir, f, runPath)
		}
	case exists && o.Force:
		for _, p := range []string{runFile, metricsFile, ckptDir, finalFile, evalDir} {
			if err := os.RemoveAll(filepath.Join(o.Dir, p)); err != nil {
				return 0, "", fmt.Errorf("train: --force: %w", err)
			}
		}
	case exists:
		return 0, "", fmt.Errorf("train: %s already holds a run (%s): pass --resume to continue it or --force to start over", o.Dir, runPath)
	case o.Resume:
		return 0, "", fmt.Errorf("train: --resume: %s holds no run (no %s)", o.Dir, runFile)
	default:
		if ents, _ := os.ReadDir(o.Dir); len(ents) > 0 && !o.Force {
			return 0, "", fmt.Errorf("train: %s is not empty and holds no run: choose an empty or new folder, or --force", o.Dir)
		}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return 0, "", fmt.Errorf("train: %w", err)
	}
	if err := writeFileAtomic(runPath, append(b, '\n')); err != nil {
		return 0, "", fmt.Errorf("train: %w", err)
	}
	if !o.Resume {
		return 0, "", nil
	}
	ckpts, err := Checkpoints(o.Dir)
	if err != nil || len(ckpts) == 0 {
		return 0, "", err
	}
	last := ckpts[len(ckpts)-1]
	return last.Iter, last.Path, nil
}

// ReadRunConfig reads the Config of the run in dir (its run.json).
func ReadRunConfig(dir string) (Config, error) {
	p := filepath.Join(dir, runFile)
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

// Checkpoint is one checkpoint folder of a run.
type Checkpoint struct {
	Iter int
	Path string // the folder
}

// Model returns the path of the checkpoint's detector weights (a native
// checkpoint that detect and eval read).
func (c Checkpoint) Model() string { return filepath.Join(c.Path, "model.safetensors") }

// Checkpoints lists the complete checkpoints of the run in dir, oldest
// first.
func Checkpoints(dir string) ([]Checkpoint, error) {
	ents, err := os.ReadDir(filepath.Join(dir, ckptDir))
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
		out = append(out, Checkpoint{Iter: it, Path: filepath.Join(dir, ckptDir, e.Name())})
	}
	slices.SortFunc(out, func(a, b Checkpoint) int { return a.Iter - b.Iter })
	return out, nil
}

// saveCheckpoint writes checkpoints/iter_<it>: the detector (native
// checkpoint) and the trainer state (momentum buffers, step count,
// iteration, seed), into a temporary folder renamed into place, then
// removes all but the newest cfg.Keep checkpoints.
func saveCheckpoint(dir string, m *detection.FasterRCNN, sgd *optim.SGD, it int, cfg Config) (string, error) {
	root := filepath.Join(dir, ckptDir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	final := filepath.Join(root, fmt.Sprintf("iter_%08d", it))
	tmp, err := os.MkdirTemp(root, ".tmp-")
	if err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := checkpoint.Save(filepath.Join(tmp, "model.safetensors"), m); err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	st := sgd.State()
	k, v := st.MetaSteps()
	meta := map[string]string{k: v, iterKey: strconv.Itoa(it), seedKey: strconv.FormatUint(cfg.Seed, 10)}
	if err := weights.WriteSafetensors(filepath.Join(tmp, "trainer.safetensors"), st.Tensors(optimPrefix), meta); err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := os.RemoveAll(final); err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	ckpts, err := Checkpoints(dir)
	if err != nil {
		return final, err
	}
	for _, c := range ckpts[:max(0, len(ckpts)-cfg.Keep)] {
		if err := os.RemoveAll(c.Path); err != nil {
			return final, fmt.Errorf("train: remove old checkpoint: %w", err)
		}
	}
	return final, nil
}

// loadCheckpoint restores the detector and the optimiser from a checkpoint
// folder of iteration it.
func loadCheckpoint(path string, m *detection.FasterRCNN, sgd *optim.SGD, it int) error {
	_, s, err := checkpoint.Read(filepath.Join(path, "model.safetensors"))
	if err != nil {
		return fmt.Errorf("train: resume: %w", err)
	}
	if err := m.Load(s); err != nil {
		return fmt.Errorf("train: resume %s: %w", path, err)
	}
	tp := filepath.Join(path, "trainer.safetensors")
	ws, meta, err := weights.ReadSafetensors(tp)
	if err != nil {
		return fmt.Errorf("train: resume: %w", err)
	}
	if got := meta[iterKey]; got != strconv.Itoa(it) {
		return fmt.Errorf("train: resume: %s: %s = %q, want %d", tp, iterKey, got, it)
	}
	if err := sgd.SetStateTensors(ws, meta, optimPrefix); err != nil {
		return fmt.Errorf("train: resume %s: %w", tp, err)
	}
	return nil
}

// truncateMetrics drops the lines of metrics.jsonl logged after iteration
// it (a resumed run logs them again).
func truncateMetrics(path string, it int) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	var keep bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var v struct {
			Iter int `json:"iter"`
		}
		if json.Unmarshal(sc.Bytes(), &v) != nil || v.Iter > it {
			continue
		}
		keep.Write(sc.Bytes())
		keep.WriteByte('\n')
	}
	if keep.Len() == len(b) {
		return nil
	}
	return writeFileAtomic(path, keep.Bytes())
}
