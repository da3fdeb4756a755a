package main

import (
	"fmt"
	"io"
	"time"

	"resdet/detection"
	"resdet/internal/cli"
	"resdet/train"
)

// progressOptions: a bar on a terminal; otherwise a plain line every 10% or
// minute (the loss lines carry the rest).
func progressOptions(terminal bool, unit string) cli.ProgressOptions {
	o := cli.ProgressOptions{Terminal: terminal, Unit: unit}
	if !terminal {
		o.Interval = time.Minute
	}
	return o
}

// trainDisplay shows a training run (train.Observer) on w: internal/cli's
// progress bar of the iterations on a terminal, plain lines otherwise; a
// line per logged iteration, per image left out and per evaluation.
type trainDisplay struct {
	w        io.Writer
	terminal bool
	iters    int
	bar      *cli.Progress
}

func newTrainDisplay(w io.Writer, terminal bool) *trainDisplay {
	return &trainDisplay{w: w, terminal: terminal}
}

// println prints a line, first clearing the bar's on a terminal.
func (d *trainDisplay) println(s string) {
	if d.terminal {
		fmt.Fprintf(d.w, "\r\x1b[K%s\n", s)
		return
	}
	fmt.Fprintln(d.w, s)
}

func (d *trainDisplay) Begin(start, total int, resumed string) {
	if resumed != "" {
		d.println(fmt.Sprintf("resuming from %s (iteration %d)", resumed, start))
	}
	d.iters = total
	d.bar = cli.NewProgressWith(d.w, "train", total-start, progressOptions(d.terminal, "iterations"))
}

func (d *trainDisplay) Step(it int, _ detection.Losses, images int, skipped []error) {
	for _, err := range skipped {
		d.println(fmt.Sprintf("skipped an image at iteration %d: %v", it, err))
	}
	if images == 0 {
		d.println(fmt.Sprintf("iteration %d skipped: no image of its batch loaded", it))
	}
	d.bar.Add(1)
}

func (d *trainDisplay) Logged(m train.Metrics) {
	line := fmt.Sprintf("iter %d/%d  loss %.4f (obj %.4f rpn_box %.4f cls %.4f box %.4f; mean %.4f)  lr %.3g  %.2f img/s",
		m.Iter, d.iters, m.Loss, m.Objectness, m.RPNBoxReg, m.Classifier, m.BoxReg, m.LossMean, m.LR, m.ImagesPerSec)
	if m.AllReduceSeconds > 0 {
		line += fmt.Sprintf("  all-reduce %.3fs of %.3fs/iter", m.AllReduceSeconds, m.StepSeconds)
	}
	if m.Skipped > 0 {
		line += fmt.Sprintf("  %d images skipped", m.Skipped)
	}
	d.println(line)
}

// Evaluation ends the training bar when the evaluation is the final one
// (after the last iteration), so that the training time excludes it.
func (d *trainDisplay) Evaluation(it, images int) train.Progress {
	if it == d.iters {
		d.bar.Done()
	}
	return cli.NewProgressWith(d.w, "eval", images, progressOptions(d.terminal, "images"))
}

func (d *trainDisplay) Evaluated(rep *train.EvalReport) {
	d.println(fmt.Sprintf("eval at iteration %d on %d images: VOC07 mAP %.4f, VOC area mAP %.4f", rep.Iter, rep.Images, rep.VOC07MAP, rep.VOCMAP))
}

func (d *trainDisplay) End(res *train.Result, err error) {
	if d.bar == nil {
		return
	}
	if err != nil {
		if d.terminal {
			fmt.Fprintln(d.w) // the error starts on a line of its own
		}
		return
	}
	d.bar.Done()
	if res.Skipped > 0 {
		d.println(fmt.Sprintf("%d images skipped (they failed to load)", res.Skipped))
	}
}
