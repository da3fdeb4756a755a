package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"resdet/checkpoint"
	"resdet/detection"
	"resdet/internal/atomicfile"
	"resdet/optim"
	"resdet/weights"
)

// Metadata keys of trainer.safetensors, and the prefix of its momentum
// tensors.
const (
	iterKey     = "resdet.train.iter"
	seedKey     = "resdet.train.seed"
	skippedKey  = "resdet.train.skipped"
	optimPrefix = "optim."
)

// saveCheckpoint writes the checkpoint of iteration it: the detector
// (native checkpoint) and the trainer state (momentum buffers, step count,
// iteration, seed, images skipped), into a temporary folder renamed into
// place, then removes all but the newest cfg.Keep checkpoints. It returns
// the checkpoint's folder.
func saveCheckpoint(d RunDir, m *detection.FasterRCNN, sgd *optim.SGD, it int, cfg Config, skipped int) (string, error) {
	root := d.CheckpointsDir()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	final := d.Checkpoint(it)
	tmp, err := os.MkdirTemp(root, ".tmp-")
	if err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	defer os.RemoveAll(tmp)
	staged := Checkpoint{Iter: it, Path: tmp}
	if err := checkpoint.Save(staged.Model(), m); err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	st := sgd.State()
	k, v := st.MetaSteps()
	meta := map[string]string{k: v, iterKey: strconv.Itoa(it), seedKey: strconv.FormatUint(cfg.Seed, 10), skippedKey: strconv.Itoa(skipped)}
	if err := weights.WriteSafetensors(staged.trainer(), st.Tensors(optimPrefix), meta); err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := os.RemoveAll(final.Path); err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := os.Rename(tmp, final.Path); err != nil {
		return "", fmt.Errorf("train: checkpoint: %w", err)
	}
	ckpts, err := d.Checkpoints()
	if err != nil {
		return final.Path, err
	}
	for _, c := range ckpts[:max(0, len(ckpts)-cfg.Keep)] {
		if err := os.RemoveAll(c.Path); err != nil {
			return final.Path, fmt.Errorf("train: remove old checkpoint: %w", err)
		}
	}
	return final.Path, nil
}

// loadCheckpoint restores the detector and the optimiser from ck and
// returns the number of images skipped before it (0 for checkpoints that
// do not record it).
func loadCheckpoint(ck Checkpoint, m *detection.FasterRCNN, sgd *optim.SGD) (int, error) {
	_, s, err := checkpoint.Read(ck.Model())
	if err != nil {
		return 0, fmt.Errorf("train: resume: %w", err)
	}
	if err := m.Load(s); err != nil {
		return 0, fmt.Errorf("train: resume %s: %w", ck.Path, err)
	}
	tp := ck.trainer()
	ws, meta, err := weights.ReadSafetensors(tp)
	if err != nil {
		return 0, fmt.Errorf("train: resume: %w", err)
	}
	if got := meta[iterKey]; got != strconv.Itoa(ck.Iter) {
		return 0, fmt.Errorf("train: resume: %s: %s = %q, want %d", tp, iterKey, got, ck.Iter)
	}
	skipped := 0
	if v, ok := meta[skippedKey]; ok {
		if skipped, err = strconv.Atoi(v); err != nil || skipped < 0 {
			return 0, fmt.Errorf("train: resume: %s: %s = %q, want a count", tp, skippedKey, v)
		}
	}
	if err := sgd.SetStateTensors(ws, meta, optimPrefix); err != nil {
		return 0, fmt.Errorf("train: resume %s: %w", tp, err)
	}
	return skipped, nil
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
	if err := sc.Err(); err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	if keep.Len() == len(b) {
		return nil
	}
	return atomicfile.WriteFile(path, keep.Bytes(), 0o644)
}
