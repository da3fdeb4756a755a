package main

import (
	"github.com/spf13/cobra"

	"resdet/internal/cli"
	"resdet/nn"
	"resdet/zoo"
)

// DetectOptions are the inputs of `detect` (flag names as issue 6 specifies).
type DetectOptions struct {
	IO          *cli.IOStreams
	Inputs      []string     // image files, folders of images, or globs
	Weights     string       // native checkpoint (.safetensors), torchvision .pth/.pt or Detectron2 .pkl; "" = Model
	Model       string       // zoo model name used when Weights is ""; "" = zoo.DefaultName
	Cache       string       // model cache folder; "" = zoo.DefaultDir()
	Arch        string       // construction of a .pth (r101-c4, r50-c4, ...); "" = r101-c4, or the checkpoint's
	RoIOp       string       // "align" or "pool"; "" = the checkpoint's (align for a .pth)
	Classes     string       // "voc", "coco" or a file with one name a line; "" = checkpoint's, else class1..classK
	ScoreThresh float64      // detections scoring at or below it are dropped, in [0, 1]
	Threads     int          // 0: RESDET_THREADS or all cores
	MinSize     int          // shorter side after resizing, px; 0 = checkpoint's (600 for a .pth)
	MaxSize     int          // cap on the longer side after resizing, px; 0 = checkpoint's (1000 for a .pth)
	MaxPixels   float64      // images above this many megapixels are refused
	JSON        bool         // one JSON object per image instead of a table
	COCOResults string       // write a COCO results JSON here
	COCOGT      string       // COCO instances file giving image ids by file name
	OutDir      string       // write each image with its detections drawn here
	Save        string       // write the loaded detector as a native checkpoint here
	Precision   nn.Precision // fp32, bf16 or auto (bf16 with AMX)

	// lookup finds a zoo model by name (zoo.Lookup when nil; tests register
	// their own).
	lookup func(name string) (zoo.Model, error)
}

// NewCmdDetect returns the detect root command. runF, when not nil, replaces
// the run function (tests capture the options with it).
func NewCmdDetect(ios *cli.IOStreams, runF func(*DetectOptions) error) *cobra.Command {
	opts := &DetectOptions{IO: ios}
	var precision string
	cmd := &cobra.Command{
		Use:   "detect [--model NAME | --weights FILE] [flags] IMAGE|DIR|GLOB...",
		Short: "Find objects in images with a trained Faster R-CNN",
		Long: `detect runs a trained Faster R-CNN (ResNet backbone) on JPEG or PNG images,
folders of images or glob patterns, and prints a table of detections per
image: class, score and box (x1 y1 x2 y2 in pixels of the original image,
continuous coordinates, see box/doc.go). --json prints one JSON object per
image instead, --coco-results writes a COCO results file, and --out writes
each image with its boxes, labels and scores drawn, in the input's format.

--json objects: {"image": PATH, "width": W, "height": H, "detections":
[{"label": NAME, "class_id": N, "score": S, "box": [x1, y1, x2, y2]}]},
class_id counting from 1 (0 is the background). --coco-results takes the
image ids from --coco-gt (by file name) and its category ids (by class name);
without --coco-gt, ids are the numbers in the file names (000000397133.jpg ->
397133) and categories COCO's for --classes coco, else 1..K. torchvision's
COCO models have 91 outputs, one per COCO id 1..90 after the background:
--classes coco (implied by --model tv-r50-fpn) names class j after COCO id
j, "N/A" for the ten ids without a category (printed without a category_id,
left out of --coco-results).

Images are resized so that the shorter side is --min-size pixels and the
longer at most --max-size, as the network was trained.

Without --weights, detect runs the pretrained model --model names (default
d2-r101-c4-3x, Detectron2's faster_rcnn_R_101_C4_3x, COCO, 41.1 box AP; see
'detect models'), from the model cache (--cache, $RESDET_CACHE, ...),
downloading it first if needed. For COCO models the JSON objects also have
"category_id", the COCO category id.

--weights takes a Detectron2 model-zoo .pkl (its architecture is read from
its tensors: R50/R101/X101 C4, DC5, R50/R101/X101-32x8d FPN), a native checkpoint (written by train-det; it carries the
architecture, class names and preprocessing), a train-det checkpoint folder
or run folder (its final model, else its latest checkpoint's), or the
state_dict .pth of a torchvision FasterRCNN built as the C4 construction
--arch names (r101-c4: ResNet-101 trunk up to layer3, RoIAlign 14x14,
layer4 + mean as the box head) or of torchvision's fasterrcnn_resnet50_fpn
(--arch tv-r50-fpn) or fasterrcnn_resnet50_fpn_v2 (--arch tv-r50-fpn-v2;
800/1333 resizing unless --min-size/--max-size say otherwise; also by name:
--model tv-r50-fpn, tv-r50-fpn-v2). The class count comes from the weights.

If some images fail (unreadable, empty, not an image, too large), the others
are still processed; the failures are listed at the end and the exit code is
1. A progress bar is drawn on a terminal when there are several images, and a
timing summary ends the run (on stderr), naming the precision that ran.

--precision bf16 runs the convolutions and the box head's layers in
bfloat16 (float32 accumulation; scores, box decoding and NMS stay float32):
several times faster on CPUs with AMX, and refused on CPUs without AVX-512.
auto picks bf16 only where the CPU has AMX.`,
		Example: `  detect photo.jpg
  detect --model d2-r50-c4-3x --json --out shown/ img/
  detect --weights model_final_298dad.pkl --classes coco photo.jpg
  detect --model d2-r50-c4-3x --save r50c4.safetensors
  detect --weights runs/voc/final.safetensors --classes voc photo.jpg
  detect --weights frcnn_r101.pth --arch r101-c4 --classes voc --score-thresh 0.7 --out shown img/
  detect --weights runs/coco/final.safetensors --classes coco --json 'img/*.png' > detections.jsonl`,
		Version: cli.Version(),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && opts.Save == "" {
				return cli.Usagef("no images given")
			}
			return nil
		},
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"jpg", "jpeg", "png"}, cobra.ShellCompDirectiveFilterFileExt
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Inputs = args
			if opts.COCOGT != "" && opts.COCOResults == "" {
				return cli.Usagef("--coco-gt only makes sense with --coco-results")
			}
			m := opts.modelOptions()
			if err := checkModelFlags(cmd, &m, precision, opts.MaxPixels, opts.Threads); err != nil {
				return err
			}
			opts.Precision = m.Precision
			if runF != nil {
				return runF(opts)
			}
			return runDetect(opts)
		},
	}
	cli.SetupRoot(cmd, ios)
	f := cmd.Flags()
	f.StringVarP(&opts.Weights, "weights", "w", "", "trained detector: Detectron2 .pkl, native checkpoint, train-det run or checkpoint folder, or torchvision .pth (default: --model)")
	f.StringVarP(&opts.Model, "model", "m", zoo.DefaultName, "pretrained model to run when --weights is not given (see 'detect models')")
	f.StringVar(&opts.Cache, "cache", "", "model cache folder (default: $RESDET_CACHE, $XDG_CACHE_HOME/resdet/models or ~/.cache/resdet/models)")
	f.StringVar(&opts.Arch, "arch", "", "construction of a torchvision .pth: r101-c4 (default), r50-c4, ..., tv-r50-fpn, tv-r50-fpn-v2; checked against a native checkpoint or a Detectron2 .pkl (r50-c4, r50-dc5, r50-fpn, x101-fpn, ...)")
	f.StringVar(&opts.RoIOp, "roi-op", "", "RoI feature op: align or pool (default: the checkpoint's; align for a .pth)")
	f.StringVar(&opts.Classes, "classes", "", "class names: voc, coco or a file with one name a line (default: the checkpoint's, else class1..classK)")
	f.Float64Var(&opts.ScoreThresh, "score-thresh", 0.5, "keep detections scoring above this (torchvision box_score_thresh)")
	f.IntVar(&opts.Threads, "threads", 0, "worker threads (0: all cores)")
	f.IntVar(&opts.MinSize, "min-size", 0, "shorter image side after resizing, px (default: the checkpoint's; 600 for a .pth)")
	f.IntVar(&opts.MaxSize, "max-size", 0, "longer image side at most, px (default: the checkpoint's; 1000 for a .pth)")
	f.Float64Var(&opts.MaxPixels, "max-pixels", 50, "refuse images larger than this many megapixels")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object per image")
	f.StringVar(&opts.COCOResults, "coco-results", "", "write detections as a COCO results JSON file")
	f.StringVar(&opts.COCOGT, "coco-gt", "", "COCO instances file: image ids for --coco-results, by file name")
	f.StringVarP(&opts.OutDir, "out", "o", "", "write each image with its detections drawn into this folder")
	f.StringVar(&precision, "precision", "fp32", "arithmetic of the network: fp32, bf16 (CPUs with AVX-512; fastest with AMX) or auto (bf16 where the CPU has AMX)")
	f.StringVar(&opts.Save, "save", "", "write the detector (any --weights or --model) as a native .safetensors checkpoint; images are then optional")
	_ = cmd.MarkFlagFilename("weights", "safetensors", "pth", "pt", "pkl")
	_ = cmd.MarkFlagFilename("coco-gt", "json")
	_ = cmd.MarkFlagFilename("coco-results", "json")
	_ = cmd.MarkFlagDirname("out")
	_ = cmd.RegisterFlagCompletionFunc("roi-op", cobra.FixedCompletions([]string{"align", "pool"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("arch", cobra.FixedCompletions([]string{"r18-c4", "r34-c4", "r50-c4", "r101-c4", "r152-c4", "x101-c4",
		"r50-dc5", "r101-dc5", "r50-fpn", "r101-fpn", "x101-fpn", "tv-r50-fpn", "tv-r50-fpn-v2"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.AddCommand(cli.NewCmdCompletion(ios, "detect"), newCmdClassify(nil))
	cmd.AddCommand(newCmdModels(ios, nil), newCmdBatch(ios, nil))
	return cmd
}
