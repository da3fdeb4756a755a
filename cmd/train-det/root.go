package main

import (
	"github.com/spf13/cobra"

	"resdet/internal/cli"
)

// NewCmdRoot returns the train-det command with its subcommands.
func NewCmdRoot(ios *cli.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "train-det <command> [flags]",
		Short: "Train Faster R-CNN detectors and prepare their data",
		Long: `train-det trains Faster R-CNN detectors on ResNet backbones (He et al., 2015)
and prepares the data they train on.

Training itself arrives with the detector; today train-det generates the
synthetic shapes dataset (train-det synth), a real PASCAL VOC 2007 folder plus
the same data as COCO instances files, which the rest of resdet reads.`,
		Example: `  # 200 images of coloured shapes, VOC and COCO layout, statistics on stdout
  train-det synth --out data/synth --images 200 --seed 1

  # shell completion for bash
  source <(train-det completion bash)`,
		Version: cli.Version(),
	}
	cli.SetupRoot(cmd, ios)
	cmd.AddCommand(NewCmdSynth(ios, nil))
	cmd.AddCommand(cli.NewCmdCompletion(ios, "train-det"))
	return cmd
}
