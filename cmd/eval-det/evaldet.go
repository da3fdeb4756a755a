package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"resdet/datasets"
	"resdet/eval"
	"resdet/format/classlist"
	"resdet/format/voc"
	"resdet/internal/cli"
)

// EvalOptions are eval-det's flags.
type EvalOptions struct {
	IO *cli.IOStreams

	GT      string // COCO instances JSON file, or VOC year folder
	Dets    string // COCO results JSON file, or folder of comp4_det_<split>_<class>.txt
	Metric  string // "coco", "voc07" or "voc"; "" = coco for a JSON GT, voc07 for a VOC folder
	Split   string // VOC image set (ImageSets/Main/<split>.txt)
	Classes string // VOC: comma-separated names, or a file with one name per line
	JSON    bool
}

// NewCmdEvalDet returns the eval-det command. runF, when not nil, receives
// the parsed options instead of running the evaluation (for tests).
func NewCmdEvalDet(ios *cli.IOStreams, runF func(*EvalOptions) error) *cobra.Command {
	opts := &EvalOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "eval-det --gt GT --dets DETS [--metric coco|voc07|voc] [--split NAME] [--classes LIST] [--json]",
		Short: "Evaluate detections: COCO mAP@[.5:.95] or PASCAL VOC AP",
		Long: `eval-det evaluates detections against ground truth and prints the numbers
the reference tools print.

COCO (--gt is an instances JSON file, --dets a results JSON list): the 12
summary lines of pycocotools' COCOeval(iouType="bbox"), identical numbers,
then AP, AP50, AP75 and AR100 per category (-1: no ground truth). Detections
of categories that are not in the ground truth are dropped and counted; a
detection of an unknown image id is an error. An empty results list is valid
(AP 0; pycocotools crashes on it).

VOC (--gt is a VOC year folder with Annotations/<id>.xml and
ImageSets/Main/<split>.txt, --dets a folder of comp4_det_<split>_<class>.txt
files with lines "<image> <score> <xmin> <ymin> <xmax> <ymax>" in the XML's
pixel coordinates): per-class AP and mAP as py-faster-rcnn's voc_eval with
IoU > 0.5, difficult objects ignored, the +1 pixel convention, the VOC2007
11-point metric (voc07, default) or the area under the precision envelope
(voc). A class without a result file has no detections (each such file is
named on stderr); no result file at all is an error.

--json prints one JSON object instead: {"metric":"coco","stats":[12],
"per_category":[{"id","name","ap","ap50","ap75","ar100"}]} with -1 for
undefined values, or {"metric":"voc07"|"voc","per_class":[{"class","npos",
"ap"}],"map"} with null for NaN (a class without positives).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       cli.Version(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runEvalDet(opts)
		},
	}
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	f := cmd.Flags()
	f.StringVar(&opts.GT, "gt", "", "ground truth: COCO instances JSON file or VOC year folder (required)")
	f.StringVar(&opts.Dets, "dets", "", "detections: COCO results JSON file or folder of VOC comp4_det_<split>_<class>.txt files (required)")
	f.StringVar(&opts.Metric, "metric", "", "coco, voc07 or voc (default coco for a JSON GT, voc07 for a VOC folder)")
	f.StringVar(&opts.Split, "split", "test", "VOC image set: ImageSets/Main/<split>.txt")
	f.StringVar(&opts.Classes, "classes", "", "VOC classes: comma-separated names or a file with one per line (default the 20 VOC classes)")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object instead of text")
	_ = cmd.MarkFlagRequired("gt")
	_ = cmd.MarkFlagRequired("dets")
	return cmd
}

func runEvalDet(opts *EvalOptions) error {
	st, err := os.Stat(opts.GT)
	if err != nil {
		return fmt.Errorf("--gt: %w", err)
	}
	vocGT := st.IsDir()
	metric := opts.Metric
	if metric == "" {
		metric = "coco"
		if vocGT {
			metric = "voc07"
		}
	}
	switch metric {
	case "coco":
		if vocGT {
			return fmt.Errorf("--metric coco needs a COCO instances JSON file as --gt, %s is a folder", opts.GT)
		}
		if opts.Classes != "" {
			return errors.New("--classes applies to VOC evaluation only (COCO evaluates the categories of the ground truth)")
		}
		return runCOCO(opts)
	case "voc07", "voc":
		if !vocGT {
			return fmt.Errorf("--metric %s needs a VOC year folder as --gt, %s is a file", metric, opts.GT)
		}
		m, err := eval.ParseVOCMetric(metric)
		if err != nil {
			return err
		}
		return runVOC(opts, m)
	}
	return fmt.Errorf("--metric: unknown metric %q (want coco, voc07 or voc)", metric)
}

func runCOCO(opts *EvalOptions) error {
	// The run allocates a few hundred MB (~450 MB for COCO val2017 with 500k
	// detections) and exits: collecting only near 1 GiB saves a good part
	// of the run time.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(1 << 30))
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	type gtResult struct {
		gt  *eval.COCOGroundTruth
		err error
	}
	ch := make(chan gtResult, 1)
	go func() {
		gt, err := eval.ReadCOCOGroundTruth(opts.GT)
		ch <- gtResult{gt, err}
	}()
	dets, derr := eval.ReadCOCOResults(opts.Dets)
	g := <-ch
	if g.err != nil {
		return g.err
	}
	if derr != nil {
		return derr
	}
	r, err := eval.EvaluateCOCO(g.gt, dets)
	if err != nil {
		return fmt.Errorf("%s: %w", opts.Dets, err)
	}
	if opts.JSON {
		if r.DroppedDets > 0 {
			fmt.Fprintf(opts.IO.ErrOut, "eval-det: dropped %d detections of categories not in the ground truth\n", r.DroppedDets)
		}
		return r.WriteJSON(opts.IO.Out)
	}
	return r.WriteText(opts.IO.Out)
}

// vocClasses parses --classes (format/classlist's rules, "voc" naming the
// 20 VOC classes); empty: the 20 VOC classes.
func vocClasses(arg string) ([]string, error) {
	if arg == "" {
		return datasets.VOCClasses(), nil
	}
	names, err := classlist.Resolve(arg, map[string][]string{"voc": datasets.VOCClasses()})
	if err != nil {
		return nil, fmt.Errorf("--classes: %w", err)
	}
	return names, nil
}

func runVOC(opts *EvalOptions, m eval.VOCMetric) error {
	classes, err := vocClasses(opts.Classes)
	if err != nil {
		return err
	}
	images, err := eval.ReadVOCGroundTruth(opts.GT, opts.Split, classes)
	if err != nil {
		return err
	}
	st, err := os.Stat(opts.Dets)
	if err != nil {
		return fmt.Errorf("--dets: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--dets: %s is not a folder of comp4_det_%s_<class>.txt files", opts.Dets, opts.Split)
	}
	dets, missing, err := eval.ReadVOCDetections(opts.Dets, opts.Split, classes)
	if err != nil {
		return err
	}
	if len(missing) == len(classes) {
		return fmt.Errorf("--dets: no result file in %s (looked for %s)", opts.Dets, voc.ResultsFile(opts.Dets, opts.Split, classes[0]))
	}
	for _, c := range missing {
		fmt.Fprintf(opts.IO.ErrOut, "eval-det: no %s: class %s has no detections\n", voc.ResultsFile(opts.Dets, opts.Split, c), c)
	}
	// Name the result file of a detection of an unknown image (the devkit
	// raises KeyError there).
	known := make(map[string]bool, len(images))
	for _, im := range images {
		known[im.Name] = true
	}
	nth := map[string]int{}
	for _, d := range dets {
		nth[d.Class]++
		if !known[d.Image] {
			return fmt.Errorf("%s: detection %d: image %q is not in the image set %s",
				voc.ResultsFile(opts.Dets, opts.Split, d.Class), nth[d.Class], d.Image, opts.Split)
		}
	}
	r, err := eval.EvaluateVOC(images, dets, classes, m)
	if err != nil {
		return fmt.Errorf("%s: %w", opts.Dets, err)
	}
	if opts.JSON {
		return r.WriteJSON(opts.IO.Out)
	}
	return r.WriteText(opts.IO.Out)
}
