package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/cobra"

	"resdet/checkpoint"
	"resdet/datasets"
	"resdet/detection"
	"resdet/format/voc"
	"resdet/internal/cli"
	"resdet/nn"
	"resdet/train"
)

// EvalOptions are the inputs of `train-det eval`.
type EvalOptions struct {
	IO      *cli.IOStreams
	Src     dataSource
	Split   string
	Weights string // checkpoint file, checkpoint folder or run folder
	// JSON writes the report (mAPs, per-class APs, PR curves); by default
	// a run folder's eval/<split>.json.
	JSON        string
	VOCResults  string // folder for comp4_det_<split>_<class>.txt files
	COCOResults string // COCO results JSON file
	COCO        bool   // also the 12 COCO numbers on VOC data
	Threads     int
	Proposals   int // post-NMS test proposals; 0 keeps the detector's
}

// NewCmdEval returns `train-det eval`. runF, when not nil, replaces the
// run function (tests capture the options with it).
func NewCmdEval(ios *cli.IOStreams, runF func(*EvalOptions) error) *cobra.Command {
	opts := &EvalOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "eval --data PATH --weights CKPT [flags]",
		Short: "Evaluate a detector on a VOC or COCO split",
		Long: `Run a detector on every image of a split and evaluate it through package eval:
VOC07 11-point and VOC area mAP with per-class APs for VOC data, plus the
12 COCO numbers for COCO data (or with --coco). --weights is a native
checkpoint, a checkpoint folder or a run folder (its model_final.safetensors,
else its latest checkpoint); for a run folder the report goes to
RUN/eval/<split>.json, where train-det plot finds its precision-recall curves.`,
		Example: `  train-det eval --data data/synth --split test --weights runs/synth
  train-det eval --data VOCdevkit/VOC2007 --split test --weights model.safetensors --voc-results out/
  train-det eval --format coco --data instances_val2017.json --images val2017 --weights m.safetensors --coco-results dets.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case opts.Src.Format != "voc" && opts.Src.Format != "coco":
				return cli.Usagef("--format must be voc or coco, got %q", opts.Src.Format)
			case opts.Split == "":
				return cli.Usagef("--split must not be empty")
			case opts.Proposals < 0:
				return cli.Usagef("--proposals must be >= 0, got %d", opts.Proposals)
			}
			if runF != nil {
				return runF(opts)
			}
			return runEval(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Src.Data, "data", "", "data (as for training; required)")
	f.StringVar(&opts.Src.Format, "format", "voc", "data format: voc or coco")
	f.StringVar(&opts.Src.Images, "images", "", "COCO image folder")
	f.StringVar(&opts.Src.Classes, "classes", "", "VOC class names: voc, synth or a file (default: the detector's)")
	f.StringVar(&opts.Split, "split", "test", "split to evaluate")
	f.StringVar(&opts.Weights, "weights", "", "checkpoint file, checkpoint folder or run folder (required)")
	f.StringVar(&opts.JSON, "json", "", "write the report as JSON here")
	f.StringVar(&opts.VOCResults, "voc-results", "", "write VOC devkit result files into this folder")
	f.StringVar(&opts.COCOResults, "coco-results", "", "write a COCO results JSON file")
	f.BoolVar(&opts.COCO, "coco", false, "also compute the 12 COCO numbers on VOC data")
	f.IntVar(&opts.Proposals, "proposals", 0, "proposals kept after NMS (0: the detector's, as trained with --test-proposals)")
	f.IntVar(&opts.Threads, "threads", 0, "compute threads (0: RESDET_THREADS or all cores)")
	_ = cmd.MarkFlagRequired("data")
	_ = cmd.MarkFlagRequired("weights")
	return cmd
}

func runEval(opts *EvalOptions) error {
	ios := opts.IO
	if opts.Threads > 0 {
		nn.SetThreads(opts.Threads)
	} else if _, err := nn.ThreadsFromEnv(); err != nil {
		return err
	}
	file, runDir, err := train.ResolveWeights(opts.Weights)
	if err != nil {
		return fmt.Errorf("--weights: %w", err)
	}
	m, err := checkpoint.Load(file, detection.Options{})
	if err != nil {
		return err
	}
	defer m.Close()
	if opts.Proposals > 0 {
		m.SetTestProposals(opts.Proposals)
	}
	src := opts.Src
	if src.Format == "voc" && src.Classes == "" {
		src.ClassNames = m.Config.Classes
	}
	set, err := src.load(opts.Split, false)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	prog := cli.NewProgressWith(ios.ErrOut, "eval", set.Len(), progressOptions(cli.IsTerminal(ios.ErrOut), "images"))
	rep, err := train.Evaluate(ctx, m, set, train.EvalOptions{COCO: opts.COCO || src.Format == "coco", Split: opts.Split, Progress: prog})
	if err != nil {
		return err
	}
	out := ios.Out
	fmt.Fprintf(out, "%s on %s (%s, %d images)\n\nVOC07 11-point:\n", file, src.Data, opts.Split, rep.Images)
	if err := rep.VOC07.WriteText(out); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nVOC area (2010+):\n")
	if err := rep.VOCArea.WriteText(out); err != nil {
		return err
	}
	if rep.COCOReport != nil {
		fmt.Fprintln(out)
		if err := rep.COCOReport.WriteText(out); err != nil {
			return err
		}
	}
	jsonPath := opts.JSON
	if jsonPath == "" && runDir != "" {
		jsonPath = runDir.EvalOf(opts.Split)
	}
	if jsonPath != "" {
		if err := train.WriteEvalReport(jsonPath, rep); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nreport: %s\n", jsonPath)
	}
	if opts.VOCResults != "" {
		if err := os.MkdirAll(opts.VOCResults, 0o755); err != nil {
			return err
		}
		if err := datasets.WriteVOCResults(opts.VOCResults, opts.Split, set.Classes, rep.Dets); err != nil {
			return err
		}
		fmt.Fprintf(out, "VOC results: %s\n", voc.ResultsFile(opts.VOCResults, opts.Split, "<class>"))
	}
	if opts.COCOResults != "" {
		if err := datasets.WriteCOCOResults(opts.COCOResults, set, rep.Dets); err != nil {
			return err
		}
		fmt.Fprintf(out, "COCO results: %s\n", opts.COCOResults)
	}
	return nil
}
