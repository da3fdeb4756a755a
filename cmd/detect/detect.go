package main

import (
	"errors"

	"github.com/spf13/cobra"

	"resdet/internal/cli"
)

// DetectOptions are the inputs of `detect`.
type DetectOptions struct {
	IO             *cli.IOStreams
	Images         []string // JPEG or PNG files
	Weights        string   // trained detector checkpoint
	OutDir         string   // where drawn images and results go; empty: results on stdout only
	ScoreThreshold float64  // detections below it are dropped, in [0, 1]
	MinSize        int      // shorter side after resizing, px
	MaxSize        int      // cap on the longer side after resizing, px
	Draw           bool     // write <OutDir>/<image> with the boxes drawn
	JSON           bool     // print COCO-style JSON instead of text
}

// errNotImplemented is what detect returns until the detector exists.
var errNotImplemented = errors.New("not implemented yet: the detector arrives with issue 6")

// NewCmdDetect returns the detect root command. runF, when not nil, replaces
// the run function (tests capture the options with it).
func NewCmdDetect(ios *cli.IOStreams, runF func(*DetectOptions) error) *cobra.Command {
	opts := &DetectOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "detect --weights FILE [flags] IMAGE...",
		Short: "Find objects in images with a trained Faster R-CNN",
		Long: `detect runs a trained Faster R-CNN (ResNet backbone) on JPEG or PNG images and
prints one line per detection: image, class, score and box (x1 y1 x2 y2 in
pixels of the original image, continuous coordinates, see box/doc.go). With
--out and --draw it also writes each image with its boxes drawn.

Images are resized so that the shorter side is --min-size pixels and the
longer at most --max-size, as the network was trained.

The detector itself arrives with issue 6: until then detect only checks its
command line and reports that it is not implemented.`,
		Example: `  detect --weights runs/voc/final.safetensors photo.jpg
  detect --weights runs/voc/final.safetensors --score-threshold 0.7 --out shown --draw img/*.jpg
  detect --weights runs/voc/final.safetensors --json img/*.png > detections.json`,
		Version: cli.Version(),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cli.Usagef("no images given")
			}
			return nil
		},
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"jpg", "jpeg", "png"}, cobra.ShellCompDirectiveFilterFileExt
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Images = args
			switch {
			case opts.ScoreThreshold < 0 || opts.ScoreThreshold > 1:
				return cli.Usagef("--score-threshold must be in [0, 1], got %g", opts.ScoreThreshold)
			case opts.MinSize <= 0 || opts.MaxSize <= 0:
				return cli.Usagef("--min-size and --max-size must be positive, got %d and %d", opts.MinSize, opts.MaxSize)
			case opts.Draw && opts.OutDir == "":
				return cli.Usagef("--draw needs --out")
			}
			if runF != nil {
				return runF(opts)
			}
			return runDetect(opts)
		},
	}
	cli.SetupRoot(cmd, ios)
	f := cmd.Flags()
	f.StringVarP(&opts.Weights, "weights", "w", "", "trained detector checkpoint (required)")
	f.StringVarP(&opts.OutDir, "out", "o", "", "output folder for drawn images")
	f.Float64Var(&opts.ScoreThreshold, "score-threshold", 0.5, "drop detections scoring below this")
	f.IntVar(&opts.MinSize, "min-size", 600, "shorter image side after resizing, px")
	f.IntVar(&opts.MaxSize, "max-size", 1000, "longer image side at most, px")
	f.BoolVar(&opts.Draw, "draw", false, "write each image with its detections drawn to --out")
	f.BoolVar(&opts.JSON, "json", false, "print detections as COCO results JSON")
	_ = cmd.MarkFlagRequired("weights")
	_ = cmd.MarkFlagFilename("weights", "safetensors", "pth", "pt")
	_ = cmd.MarkFlagDirname("out")
	cmd.AddCommand(cli.NewCmdCompletion(ios, "detect"))
	return cmd
}

// runDetect will run the detector; it does not exist yet.
func runDetect(opts *DetectOptions) error {
	return errNotImplemented
}
