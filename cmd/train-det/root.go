package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"resdet/internal/cli"
)

// NewCmdRoot returns the train-det command with its subcommands.
func NewCmdRoot(ios *cli.IOStreams) *cobra.Command { return newCmdRoot(ios, nil) }

// newCmdRoot is NewCmdRoot with runF, when not nil, replacing the training
// run (tests capture the options with it).
func newCmdRoot(ios *cli.IOStreams, runF func(*TrainOptions) error) *cobra.Command {
	opts := &TrainOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "train-det --data PATH --out RUNDIR [flags] | train-det <command>",
		Short: "Train Faster R-CNN detectors, evaluate them and prepare their data",
		Long: `train-det trains Faster R-CNN C4 detectors on ResNet backbones (He et al., 2015):
SGD with momentum and weight decay, step learning rate with linear warm-up,
batches grouped by aspect ratio, horizontal flips, approximate joint training,
frozen BN (stem and res2 frozen) for ImageNet-initialised backbones.

The run folder (--out) receives run.json, metrics.jsonl (one JSON object per
logged iteration), checkpoints/iter_N/ (the latest --keep, written atomically;
Ctrl-C writes one and exits) and model_final.safetensors, which detect and
train-det eval read. --resume continues exactly where the run stopped.

Subcommands evaluate a detector (eval), draw loss and precision-recall curves
(plot) and generate the synthetic shapes dataset (synth).`,
		Example: `  # 200 images of coloured shapes, then a small detector trained from scratch
  train-det synth --out data/synth --images 200 --seed 1
  train-det --data data/synth --arch r18-c4 --norm trainable --min-size 256 --max-size 448 \
      --anchor-sizes 32,64,128 --iters 600 --lr 0.02 --batch 2 --eval-split test --out runs/synth

  # the paper's VOC 2007 recipe from ImageNet weights
  train-det --data VOCdevkit/VOC2007 --preset voc07 --arch r101-c4 --init resnet101.pth \
      --eval-split test --out runs/voc07
  train-det --out runs/voc07 --resume          # after Ctrl-C

  train-det eval --data VOCdevkit/VOC2007 --split test --weights runs/voc07
  train-det plot runs/voc07

  # shell completion for bash
  source <(train-det completion bash)`,
		Version: cli.Version(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cli.Usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			if !cmd.Flags().Changed("data") && !cmd.Flags().Changed("out") && !cmd.Flags().Changed("resume") {
				return cmd.Help()
			}
			opts.Changed = map[string]bool{}
			cmd.Flags().Visit(func(f *pflag.Flag) { opts.Changed[f.Name] = true })
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runTrain(opts)
		},
	}
	addTrainFlags(cmd, opts)
	cli.SetupRoot(cmd, ios)
	cmd.AddCommand(NewCmdEval(ios, nil))
	cmd.AddCommand(NewCmdPlot(ios, nil))
	cmd.AddCommand(NewCmdSynth(ios, nil))
	cmd.AddCommand(cli.NewCmdCompletion(ios, "train-det"))
	return cmd
}
