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
frozen BN (stem and res2 frozen) when starting from published weights.

--init starts from a file or a published model's name (see 'detect models'):
an ImageNet ResNet for the backbone (MSRA R-50.pkl / R-101.pkl in Caffe2 names,
with Detectron2's stride-in-1x1 and input chosen to match; torchvision .pth) or
a detector to fine-tune (Detectron2 .pkl, torchvision .pth, our checkpoints):
its architecture and preprocessing are the file's, its predictor is kept, taken
by class name (COCO -> VOC) or re-initialised, as one log line says.

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

  # the paper's VOC 2007 recipe from the MSRA ImageNet ResNet-101
  train-det --data VOCdevkit/VOC2007 --preset voc07 --init R-101.pkl \
      --eval-split test --out runs/voc07
  train-det --out runs/voc07 --resume          # after Ctrl-C

  # fine-tune Detectron2's COCO R101-C4 on VOC 2007 (downloaded into the cache)
  train-det --data VOCdevkit/VOC2007 --preset voc07 --init d2-r101-c4-3x \
      --iters 20000 --steps 15000 --eval-split test --out runs/voc07-ft

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
