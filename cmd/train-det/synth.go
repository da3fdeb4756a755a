package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"

	"github.com/spf13/cobra"

	"resdet/datasets"
	"resdet/datasets/imageio"
	"resdet/datasets/synth"
	"resdet/internal/cli"
)

// SynthOptions are the inputs of `train-det synth`.
type SynthOptions struct {
	IO           *cli.IOStreams
	Out          string   // output folder
	Images       int      // number of images
	Seed         uint64   // the dataset is a function of Seed and the other options
	Size         cli.Size // mean image size; each side varies by ±Jitter
	Jitter       float64
	TestFraction float64
	MaxObjects   int
	// Difficulty: class-coloured objects, pixel noise amplitude, shares of
	// tiny and truncated objects, largest hidden share of an object.
	ClassColours            bool
	Noise                   int
	Tiny, Truncated, Occlus float64
	Workers                 int // 0: all cores; does not change the output
	Overwrite               bool
	Preview                 int // draw the ground truth of the first Preview trainval images into Out/preview
}

// NewCmdSynth returns `train-det synth`. runF, when not nil, replaces the
// run function (tests capture the options with it).
func NewCmdSynth(ios *cli.IOStreams, runF func(*SynthOptions) error) *cobra.Command {
	def := synth.DefaultConfig()
	opts := &SynthOptions{IO: ios, Size: cli.Size{W: def.Width, H: def.Height}}
	cmd := &cobra.Command{
		Use:   "synth --out DIR [flags]",
		Short: "Generate the synthetic shapes detection dataset",
		Long: fmt.Sprintf(`Generate a synthetic object-detection dataset: images of coloured shapes
(%v) on textured, noisy backgrounds, with sizes from tiny
(marked difficult) to most of the image, partial occlusion and objects cut by
the border (marked truncated).

It is written twice, with identical boxes and labels:
  DIR/VOC2007/{JPEGImages,Annotations,ImageSets/Main}   a PASCAL VOC year folder
  DIR/annotations/instances_<split>.json               COCO instances files
for the splits train, val, trainval (= train + val) and test. The same flags
and --seed give byte-identical files. Statistics go to stdout, progress to
stderr.`, synth.Classes()),
		Example: `  train-det synth --out data/synth --images 200 --seed 1
  train-det synth --out data/big --images 5000 --size 480x360 --test-fraction 0.2
  # regenerate over an earlier synthetic dataset; look at 8 images with their boxes
  train-det synth --out data/synth --images 200 --seed 2 --overwrite --preview 8`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case opts.Images <= 0:
				return cli.Usagef("--images must be positive, got %d", opts.Images)
			case opts.Size.W < 64 || opts.Size.H < 64:
				return cli.Usagef("--size must be at least 64x64, got %s", opts.Size.String())
			case opts.TestFraction < 0 || opts.TestFraction >= 1:
				return cli.Usagef("--test-fraction must be in [0, 1), got %g", opts.TestFraction)
			case opts.Jitter < 0 || opts.Jitter > 0.5:
				return cli.Usagef("--size-jitter must be in [0, 0.5], got %g", opts.Jitter)
			case opts.MaxObjects < 1:
				return cli.Usagef("--max-objects must be at least 1, got %d", opts.MaxObjects)
			case opts.Noise < 0 || opts.Noise > 64:
				return cli.Usagef("--noise must be in [0, 64], got %d", opts.Noise)
			case opts.Tiny < 0 || opts.Tiny > 1:
				return cli.Usagef("--tiny must be in [0, 1], got %g", opts.Tiny)
			case opts.Truncated < 0 || opts.Truncated > 1:
				return cli.Usagef("--truncated must be in [0, 1], got %g", opts.Truncated)
			case opts.Occlus <= 0 || opts.Occlus >= 1:
				return cli.Usagef("--max-occlusion must be in (0, 1), got %g", opts.Occlus)
			case opts.Workers < 0:
				return cli.Usagef("--workers must be >= 0, got %d", opts.Workers)
			case opts.Preview < 0:
				return cli.Usagef("--preview must be >= 0, got %d", opts.Preview)
			}
			if runF != nil {
				return runF(opts)
			}
			return runSynth(opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Out, "out", "o", "", "output folder (required)")
	f.IntVarP(&opts.Images, "images", "n", def.Images, "number of images")
	f.Uint64Var(&opts.Seed, "seed", 1, "random seed")
	f.Var(&opts.Size, "size", "mean image size")
	f.Float64Var(&opts.Jitter, "size-jitter", def.SizeJitter, "each image side varies uniformly by this fraction")
	f.Float64Var(&opts.TestFraction, "test-fraction", def.TestFraction, "share of images in the test split; the rest is halved into train and val")
	f.IntVar(&opts.MaxObjects, "max-objects", def.MaxObjects, "at most this many objects per image")
	f.BoolVar(&opts.ClassColours, "class-colours", false, "paint each class in its own band of hues (the easy variant: colour and shape both tell the class)")
	f.IntVar(&opts.Noise, "noise", def.Noise, "per-channel pixel noise amplitude, 0..64")
	f.Float64Var(&opts.Tiny, "tiny", def.TinyFraction, "share of tiny objects (marked difficult)")
	f.Float64Var(&opts.Truncated, "truncated", def.TruncatedFraction, "share of objects cut by the image border")
	f.Float64Var(&opts.Occlus, "max-occlusion", def.MaxOcclusion, "largest share of an object that later objects may hide, (0, 1)")
	f.IntVar(&opts.Workers, "workers", 0, "images generated in parallel (0: all cores); the output does not depend on it")
	f.BoolVar(&opts.Overwrite, "overwrite", false, "replace an earlier synthetic dataset in --out (never folders synth did not write)")
	f.IntVar(&opts.Preview, "preview", 0, "also draw the boxes of the first N trainval images into DIR/preview")
	_ = cmd.MarkFlagRequired("out")
	_ = cmd.MarkFlagDirname("out")
	return cmd
}

// runSynth generates the dataset and prints where it is and its statistics.
func runSynth(opts *SynthOptions) error {
	c := synth.DefaultConfig()
	c.Images = opts.Images
	c.Width, c.Height = opts.Size.W, opts.Size.H
	c.SizeJitter = opts.Jitter
	c.TestFraction = opts.TestFraction
	c.MaxObjects = opts.MaxObjects
	c.ClassHues, c.Noise, c.TinyFraction, c.TruncatedFraction, c.MaxOcclusion = opts.ClassColours, opts.Noise, opts.Tiny, opts.Truncated, opts.Occlus
	c.Workers = opts.Workers
	c.Overwrite = opts.Overwrite
	if err := c.Validate(); err != nil {
		return err
	}
	progress := cli.NewProgress(opts.IO.ErrOut, "synth", c.Images, "images")
	res, err := synth.Generate(opts.Out, c, rand.New(rand.NewPCG(opts.Seed, 0)), func() { progress.Add(1) })
	if err != nil {
		return err
	}
	progress.Done()
	out := opts.IO.Out
	fmt.Fprintf(out, "synthetic dataset: %d images of about %s (±%g%%), seed %d\n",
		c.Images, opts.Size.String(), 100*c.SizeJitter, opts.Seed)
	fmt.Fprintf(out, "  VOC:  %s (classes: %v)\n", res.VOCRoot, res.Classes)
	fmt.Fprintf(out, "  COCO: %s (images in %s)\n", filepath.Join(res.COCODir, "instances_{train,val,trainval,test}.json"), res.ImageDir)
	if opts.Preview > 0 {
		dir := filepath.Join(opts.Out, "preview")
		n, err := writePreviews(res, dir, opts.Preview)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  preview: %s (%d images with their boxes)\n", dir, n)
	}
	fmt.Fprintln(out)
	st := synth.ComputeStats(res.Splits)
	_, err = st.WriteTo(out)
	return err
}

// previewName matches the files writePreviews writes.
var previewName = regexp.MustCompile(`^[0-9]{6}\.jpg$`)

// writePreviews reads the trainval split back with the VOC reader and draws
// the boxes of its first n images into dir, replacing earlier previews. It
// returns the number of images drawn.
func writePreviews(res *synth.Result, dir string, n int) (int, error) {
	set, err := datasets.ReadVOC(res.VOCRoot, "trainval", datasets.VOCOptions{Classes: res.Classes, KeepDifficult: true, CheckImages: true})
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("preview: %w", err)
	}
	old, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("preview: %w", err)
	}
	for _, e := range old {
		if previewName.MatchString(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return 0, fmt.Errorf("preview: %w", err)
			}
		}
	}
	n = min(n, len(set.Records))
	for _, r := range set.Records[:n] {
		anns := make([]imageio.Annotation, len(r.Objects))
		for i, o := range r.Objects {
			text := set.Classes[o.Label]
			if o.Difficult {
				text += " (difficult)"
			}
			anns[i] = imageio.Annotation{Box: o.Box, Label: o.Label, Text: text}
		}
		if err := imageio.DrawFile(r.ImagePath, filepath.Join(dir, r.Name+".jpg"), anns); err != nil {
			return 0, err
		}
	}
	return n, nil
}
