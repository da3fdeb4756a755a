package main

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"resdet/detection"
	"resdet/internal/cli"
	"resdet/train"
)

// TestTrainDisplay drives the training display through a resumed run with
// a skipped image, a logged iteration and an evaluation, and checks the
// lines on a log (plain lines) and on a terminal (the bar's line cleared
// before each message).
func TestTrainDisplay(t *testing.T) {
	tests := []struct {
		name     string
		terminal bool
		want     []string
		notWant  []string
	}{
		{name: "log", want: []string{
			"resuming from runs/x/checkpoints/iter_00000004 (iteration 4)\n",
			"skipped an image at iteration 5: imgs/bad.jpg: cannot decode\n",
			"iter 5/6  loss 1.0000 (obj 0.1000 rpn_box 0.2000 cls 0.3000 box 0.4000; mean 1.5000)  lr 0.02  3.00 img/s  1 images skipped\n",
			"eval: 2/2 images in",
			"eval at iteration 5 on 2 images: VOC07 mAP 0.5000, VOC area mAP 0.2500\n",
			"train: 2/2 iterations in",
			"1 images skipped (they failed to load)\n",
		}, notWant: []string{"\r", "\x1b[K"}},
		{name: "terminal", terminal: true, want: []string{
			"\r\x1b[Kskipped an image at iteration 5: imgs/bad.jpg: cannot decode\n",
			"\r\x1b[Kiter 5/6  loss 1.0000",
			"train [",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			d := newTrainDisplay(&buf, tt.terminal)
			l := detection.Losses{Objectness: 0.1, RPNBoxReg: 0.2, Classifier: 0.3, BoxReg: 0.4}
			d.Begin(4, 6, "runs/x/checkpoints/iter_00000004")
			d.Step(5, l, 1, []error{errors.New("imgs/bad.jpg: cannot decode")})
			d.Logged(train.Metrics{Iter: 5, LR: 0.02, Loss: l.Total(), LossMean: 1.5, Losses: l, ImagesPerSec: 3, Skipped: 1})
			p := d.Evaluation(5, 2)
			p.Add(1)
			p.Add(1)
			p.Done()
			d.Evaluated(&train.EvalReport{Iter: 5, Images: 2, VOC07MAP: 0.5, VOCMAP: 0.25})
			d.Step(6, l, 2, nil)
			p = d.Evaluation(6, 2) // the final one
			p.Add(2)
			p.Done()
			d.Evaluated(&train.EvalReport{Iter: 6, Images: 2, VOC07MAP: 0.75, VOCMAP: 0.5})
			d.End(&train.Result{Iter: 6, Skipped: 1}, nil)
			out := buf.String()
			if i, j := strings.Index(out, "train: 2/2 iterations in"), strings.Index(out, "eval at iteration 6"); i < 0 || j < i {
				t.Errorf("the training summary (at %d) does not precede the final evaluation (at %d):\n%q", i, j, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%q", w, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%q", w, out)
				}
			}
		})
	}
}

// TestResumeFlags checks the flags --resume accepts, as train's rule
// (train.MayChangeOnResume) and the flags that are no setting of the run
// give them: the list the README documents.
func TestResumeFlags(t *testing.T) {
	ios, _, _, _ := cli.Test()
	cmd := newCmdRoot(ios, nil)
	got := resumeFlags(cmd.Flags())
	want := []string{"checkpoint-every", "eval-every", "iters", "keep", "log-every", "max-loss", "skip-bad", "threads", "workers"}
	if !slices.Equal(got, want) {
		t.Errorf("--resume accepts %v, want %v", got, want)
	}
}
