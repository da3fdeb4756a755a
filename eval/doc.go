// Package eval computes object-detection metrics identical to the reference
// tools: COCO box mAP as pycocotools' COCOeval(iouType="bbox"), and PASCAL
// VOC AP as the VOC devkit's Python port (py-faster-rcnn voc_eval). It
// imports box and the file-format packages format/coco and format/voc,
// which read its input files (eval converts their entries to Annotation and
// VOCDetection): no gorgonia, no cgo, no datasets.
//
// # COCO
//
// The three stages of cocoeval.py are pure functions:
//
//	evals := EvaluateImages(gt, dets, p) // per image and category: matching in every area range
//	acc := Accumulate(evals, p)          // precision [T][R][K][A][M], recall [T][K][A][M]
//	stats := Summarize(acc)              // the 12 numbers; stats.WriteTo(w) prints pycocotools' lines
//
// EvaluateCOCO runs them with DefaultParams over a COCOGroundTruth and
// detections (ReadCOCOGroundTruth, ReadCOCOResults) and adds per-category
// AP / AP50 / AP75 / AR100 (PerCategory). Shape shorthand: T = 10 IoU
// thresholds, R = 101 recall thresholds, K categories, A = 4 area ranges,
// M = 3 maxDets values, I images, D detections and G ground truths of one
// image and category. -1 means "no non-ignored ground truth" as in
// pycocotools.
//
// Everything that moves a number is reproduced: float64 throughout; the
// thresholds numpy.linspace makes (IoUThresholds, RecallThresholds; the 9th
// IoU threshold is 0.8999999999999999); stable descending-score sorts (ties
// keep results-file order, then image order); at most 100 detections per
// image *and category*; crowd regions (IoU = intersection / detection area,
// any number of matches, ignored) and the inclusive area ranges of the GT
// "area" field; greedy matching with min(t, 1-1e-10); ignored unmatched
// detections outside the area range; precision tp/(tp+fp+eps); the
// envelope and left-side search; means with numpy's pairwise summation; the
// quirk that a GT with annotation id 0 never makes a true positive.
//
// Differences from pycocotools, all on input it rejects or mishandles: an
// empty results list is valid here (AP 0 where there is ground truth;
// pycocotools raises IndexError); NaN or infinite scores and negative box
// sizes are errors naming the file and entry (pycocotools computes on); a
// detection of an unknown image id is an error naming the id, as there.
// Detections of categories absent from the GT are dropped and counted
// (COCOReport.DroppedDets), as pycocotools silently drops them.
//
// # VOC
//
// EvaluateVOC computes per-class AP and mAP with IoU > 0.5, difficult
// objects neither counted nor penalised, the +1 pixel convention of the
// devkit, and the VOC07 (11-point) or VOCArea (area under the precision
// envelope) metric. Boxes are VOCBox: the XML's inclusive integer
// coordinates, compared as they are. Ties in score are broken by input
// order (the reference's unstable sort leaves them arbitrary).
// ReadVOCGroundTruth reads a VOC folder as the devkit does and
// ReadVOCDetections its comp4_det_<split>_<class>.txt files; a class
// without a result file has no detections and is returned as missing.
//
// # Training-time evaluation
//
// EvaluateCOCOImages and EvaluateVOCImages take per-image ground truth and
// detections in the project box convention (box/doc.go) and return the same
// reports, with no JSON round trip.
//
// # Speed
//
// Evaluation runs on GOMAXPROCS goroutines by category; large results files
// are parsed in parallel chunks by format/coco's hand-written JSON scanner. On a
// COCO-val2017-sized case (5000 images, 80 categories, ~36k GT, 500k
// detections) the whole eval-det run, both files read, took 0.6 s wall
// (about 1.1 s of CPU) on 2 cores with a 415 MB peak, against 48.6 s for
// pycocotools (BenchmarkEvalDetCOCOVal2017 in cmd/eval-det;
// scripts/bench-eval.sh).
package eval
