package train

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/optim"
)

// Dist is the communicator of a data-parallel run (package internal/mpi's
// Comm implements it over MPI_COMM_WORLD): Size processes, this one Rank
// (0..Size-1), and an in-place element-wise sum of a float64 buffer over
// every process. Every process calls Run with the same Config and data.
//
// Data parallelism (Options.Dist set): every process computes the same
// global batches (a function of Config.Seed and the epoch, as in a single
// process) and loads only its shard, the contiguous images
// [Batch*Rank/Size, Batch*(Rank+1)/Size) of each batch. Each image is
// stepped on its own (detection.Trainer.Step on one image) with a
// generator seeded by the seed, the iteration and the image's position in
// the global batch, so anchor and RoI sampling do not depend on the
// number of processes. Image i's gradient is weighted by R_i/R, R_i its
// sampled RoIs (Trainer.LastRoIs) and R the batch's: the box-head losses
// are then exactly torchvision's batch losses (normalised by the RoIs of
// the whole batch), and so is the RPN part when every image samples the
// same share of anchors as of RoIs (e.g. the usual full 256 anchors and
// 512 RoIs per image). The logged losses are weighted the same way. The
// weighted gradients, the counts and the per-process flags (interrupted,
// diverged) go in one fused float64 buffer, all-reduced once per step
// after the backward pass (gorgonia's executor runs the whole backward
// pass in one call, so the reduction cannot overlap it); every process
// then takes the same SGD step. The result is the same for any number of
// processes up to float32 rounding: the per-image gradients (float32)
// are weighted and summed in float64, so the order of the sums, which
// depends on the number of processes, rarely changes a bit of the float32
// gradients the optimiser reads. With trainable BN
// (backbone.TrainableBN) the batch statistics are each image's and the
// running statistics each process's own: rank 0's are the ones saved
// and evaluated, and every process resumes with them.
//
// Rank 0 alone writes the run folder (run.json, metrics.jsonl,
// checkpoints, evaluation, model_final.safetensors) and reports to
// Options.Observer; every process resumes from the checkpoint rank 0
// chose. Options.OnStep and Options.Hooks run on every process. A
// cancelled context on any process interrupts every process after the
// same iteration. An error on one process ends its Run; the caller must
// then end the job (MPI_Abort), since the others wait for it.
type Dist interface {
	Rank() int
	Size() int
	AllReduceFloat64(buf []float64) error
}

// Indices of the fused buffer's tail (after the gradients).
const (
	fuseRoIs = iota
	fuseObjectness
	fuseRPNBoxReg
	fuseClassifier
	fuseBoxReg
	fuseFG
	fuseImages
	fuseSkipped
	fuseInterrupted
	fuseDiverged
	fuseLen
)

// distState is the data-parallel part of a State.
type distState struct {
	d      Dist
	fused  []float32 // the averaged gradients the optimiser reads
	sum    []float64 // the all-reduced buffer: weighted gradient sums, then the fuse* tail
	offs   []int     // parameter i's gradient is fused[offs[i]:offs[i+1]]
	user   context.Context
	cancel context.CancelFunc
}

// fusedGrad is a parameter whose gradient is its slice of the fused buffer.
type fusedGrad struct {
	p G.ValueGrad
	g *tensor.Dense
}

func (f fusedGrad) Value() G.Value         { return f.p.Value() }
func (f fusedGrad) Grad() (G.Value, error) { return f.g, nil }
func (f fusedGrad) Name() string {
	if n, ok := f.p.(interface{ Name() string }); ok {
		return n.Name()
	}
	return ""
}

// fuse lays out the fused buffer for params and returns them with their
// gradients in it, for the optimiser.
func (ds *distState) fuse(params []G.ValueGrad) []G.ValueGrad {
	ds.offs = make([]int, len(params)+1)
	for i, p := range params {
		ds.offs[i+1] = ds.offs[i] + p.Value().Shape().TotalSize()
	}
	ds.fused = make([]float32, ds.offs[len(params)])
	ds.sum = make([]float64, ds.offs[len(params)]+fuseLen)
	out := make([]G.ValueGrad, len(params))
	for i, p := range params {
		sh := p.Value().Shape().Clone()
		out[i] = fusedGrad{p: p, g: tensor.New(tensor.WithShape(sh...), tensor.WithBacking(ds.fused[ds.offs[i]:ds.offs[i+1]]))}
	}
	return out
}

// checkDist checks that every process has images in every batch.
func checkDist(d Dist, cfg Config) error {
	if d.Size() < 1 || d.Rank() < 0 || d.Rank() >= d.Size() {
		return fmt.Errorf("train: process %d of %d", d.Rank(), d.Size())
	}
	if cfg.Batch < d.Size() {
		return fmt.Errorf("train: a batch of %d images cannot be shared by %d processes: use --batch >= %d", cfg.Batch, d.Size(), d.Size())
	}
	return nil
}

// agreeStart makes every process start from the checkpoint rank 0 chose
// after preparing the run folder (ck, err: its result; ignored on the
// other ranks), or fail together when rank 0 failed.
func agreeStart(d Dist, dir RunDir, ck Checkpoint, err error) (Checkpoint, error) {
	buf := make([]float64, 2)
	if d.Rank() == 0 {
		if err != nil {
			buf[0] = 1
		} else if ck.Path != "" {
			buf[1] = float64(ck.Iter + 1)
		}
	}
	if e := d.AllReduceFloat64(buf); e != nil {
		return Checkpoint{}, fmt.Errorf("train: process %d: agreeing on the start: %w", d.Rank(), e)
	}
	switch {
	case d.Rank() == 0:
		return ck, err
	case buf[0] != 0:
		return Checkpoint{}, fmt.Errorf("train: process %d: rank 0 could not prepare the run folder %s", d.Rank(), dir)
	case buf[1] == 0:
		return Checkpoint{}, nil
	}
	return dir.Checkpoint(int(buf[1]) - 1), nil
}

// shard returns this process's part of each batch and the position of its
// first image in the global batch.
func shard(d Dist, batches [][]int) (parts [][]int, los []int) {
	r, n := d.Rank(), d.Size()
	parts, los = make([][]int, len(batches)), make([]int, len(batches))
	for i, b := range batches {
		lo, hi := len(b)*r/n, len(b)*(r+1)/n
		parts[i], los[i] = b[lo:hi], lo
	}
	return parts, los
}

// imageSeed is the seed of the sampling of the image at position j of
// iteration it's global batch in a data-parallel run.
func imageSeed(seed uint64, it, j int) int64 {
	return stepSeed(seed+uint64(j+1)*0xd1b54a32d192ed03, it)
}

// distStep is step for a data-parallel run: this process's images (items,
// the first at position lo of the global batch) one by one, their
// weighted gradients and counts all-reduced in one buffer, then the same
// SGD step on every process.
func (s *State) distStep(items []loaded, lo int) error {
	cfg, ds := s.Config, s.dist
	s.Epoch, s.LR = s.Iter/s.PerEpoch, cfg.schedule().LR(s.Iter)
	s.Losses, s.FGRoIs, s.Skipped, s.Logged, s.Eval = detection.Losses{}, 0, nil, nil, nil
	buf := ds.sum
	clear(buf)
	tail := buf[len(buf)-fuseLen:]
	params := s.trainer.Params()
	var local error // this process's non-finite loss, reported as divergence
	for k, x := range items {
		if x.err != nil {
			s.Skipped = append(s.Skipped, x.err)
			tail[fuseSkipped]++
			continue
		}
		l, err := s.trainer.Step(toTrainImages([]imageio.Example{x.ex}), mrand.New(mrand.NewSource(imageSeed(cfg.Seed, s.Iter, lo+k))))
		if errors.Is(err, detection.ErrNonFiniteLoss) {
			local, tail[fuseDiverged] = err, 1
			break
		}
		if err != nil {
			return fmt.Errorf("train: process %d: iteration %d: %w", ds.d.Rank(), s.Iter, err)
		}
		r := float64(s.trainer.LastRoIs())
		for i, p := range params {
			gv, err := p.Grad()
			if err != nil {
				return fmt.Errorf("train: process %d: iteration %d: %w", ds.d.Rank(), s.Iter, err)
			}
			g, ok := gv.Data().([]float32)
			if !ok || len(g) != ds.offs[i+1]-ds.offs[i] {
				return fmt.Errorf("train: process %d: iteration %d: gradient of %s is %v %v", ds.d.Rank(), s.Iter, fusedGrad{p: p}.Name(), gv.Dtype(), gv.Shape())
			}
			acc := buf[ds.offs[i]:ds.offs[i+1]]
			for j, v := range g {
				acc[j] += r * float64(v)
			}
		}
		tail[fuseRoIs] += r
		tail[fuseObjectness] += r * l.Objectness
		tail[fuseRPNBoxReg] += r * l.RPNBoxReg
		tail[fuseClassifier] += r * l.Classifier
		tail[fuseBoxReg] += r * l.BoxReg
		tail[fuseFG] += float64(s.trainer.LastForeground())
		tail[fuseImages]++
	}
	if ds.user.Err() != nil {
		tail[fuseInterrupted] = 1
	}
	t0 := time.Now()
	if err := ds.d.AllReduceFloat64(buf); err != nil {
		return fmt.Errorf("train: process %d: iteration %d: gradient all-reduce: %w", ds.d.Rank(), s.Iter, err)
	}
	s.AllReduce = time.Since(t0)
	if tail[fuseInterrupted] != 0 {
		ds.cancel()
		s.Interrupted = true
	}
	s.SkippedTotal += int(tail[fuseSkipped])
	s.Images = int(tail[fuseImages])
	diverged := func(err error) error {
		last := s.Checkpoint
		if last == "" {
			last = "none written yet"
		}
		return fmt.Errorf("train: iteration %d: %w: %v; the last good checkpoint is kept: %s", s.Iter, ErrDiverged, err, last)
	}
	if tail[fuseDiverged] != 0 {
		if local == nil {
			local = fmt.Errorf("a loss is not finite on another process")
		}
		return diverged(local)
	}
	if s.Images > 0 {
		rois := tail[fuseRoIs]
		for i, v := range buf[:len(buf)-fuseLen] {
			ds.fused[i] = float32(v / rois)
		}
		l := detection.Losses{Objectness: tail[fuseObjectness] / rois, RPNBoxReg: tail[fuseRPNBoxReg] / rois,
			Classifier: tail[fuseClassifier] / rois, BoxReg: tail[fuseBoxReg] / rois}
		if !(l.Total() <= cfg.MaxLoss) {
			return diverged(fmt.Errorf("total loss %.4g above the limit %g (%+v)", l.Total(), cfg.MaxLoss, l))
		}
		if err := s.sgd.Step(s.LR); err != nil {
			if errors.Is(err, optim.ErrNonFinite) {
				return diverged(err)
			}
			return fmt.Errorf("train: iteration %d: %w", s.Iter, err)
		}
		s.Losses, s.FGRoIs = l, int(tail[fuseFG])
	}
	s.Iter++
	return nil
}
