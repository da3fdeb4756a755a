package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"resdet/internal/cli"
	"resdet/train"
)

// PlotOptions are the inputs of `train-det plot`.
type PlotOptions struct {
	IO  *cli.IOStreams
	Run string
}

// NewCmdPlot returns `train-det plot`. runF, when not nil, replaces the
// run function.
func NewCmdPlot(ios *cli.IOStreams, runF func(*PlotOptions) error) *cobra.Command {
	opts := &PlotOptions{IO: ios}
	return &cobra.Command{
		Use:   "plot RUNDIR",
		Short: "Draw a run's loss curves (and precision-recall curves after eval) to PNG",
		Long: `Draw the loss curves of a training run (metrics.jsonl) to RUNDIR/loss.png and,
when the run has an evaluation report (RUNDIR/eval/*.json, written at the end
of training with --eval-split or by train-det eval), the per-class
precision-recall curves of the latest to RUNDIR/pr.png.`,
		Example: `  train-det plot runs/synth`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Run = args[0]
			if runF != nil {
				return runF(opts)
			}
			files, err := train.PlotRun(opts.Run)
			for _, f := range files {
				fmt.Fprintln(ios.Out, f)
			}
			return err
		},
	}
}
