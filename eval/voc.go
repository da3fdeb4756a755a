package eval

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"resdet/format/voc"
)

// VOCMetric selects how PASCAL VOC average precision is computed from the
// precision/recall curve (the devkit's voc_ap use_07_metric flag).
type VOCMetric int

const (
	// VOC07 is the VOC2007 11-point metric: the mean over recall
	// thresholds 0, 0.1, ..., 1 of the best precision at recall >= t.
	VOC07 VOCMetric = iota + 1
	// VOCArea is the area under the precision envelope (VOC2010 and later).
	VOCArea
)

// String returns the --metric spelling: "voc07" or "voc".
func (m VOCMetric) String() string {
	switch m {
	case VOC07:
		return "voc07"
	case VOCArea:
		return "voc"
	}
	return fmt.Sprintf("VOCMetric(%d)", int(m))
}

// ParseVOCMetric parses "voc07" or "voc".
func ParseVOCMetric(s string) (VOCMetric, error) {
	switch s {
	case "voc07":
		return VOC07, nil
	case "voc":
		return VOCArea, nil
	}
	return 0, fmt.Errorf("eval: unknown VOC metric %q (want voc07 or voc)", s)
}

// VOCBox is a box in the VOC devkit's convention: [xmin, ymin, xmax, ymax],
// inclusive pixel indices (the annotation XML's integers, 1-based, as they
// are), so its width is xmax-xmin+1. This is not box.Box's convention; see
// VOCBoxFrom.
type VOCBox [4]float64

// VOCObject is one annotated object of an image.
type VOCObject struct {
	Class     string
	Box       VOCBox
	Difficult bool
}

// VOCImage is one image of the evaluated image set.
type VOCImage struct {
	Name    string // image id, e.g. "000005"
	Objects []VOCObject
}

// VOCDetection is one line of a comp4_det_<split>_<class>.txt file.
type VOCDetection struct {
	Image string
	Class string
	Score float64
	Box   VOCBox
}

// VOCClassResult is the evaluation of one class.
type VOCClassResult struct {
	Class   string
	NPos    int // objects of the class that are not difficult
	NumDets int
	AP      float64 // NaN when NPos is 0 and the metric is VOCArea with detections
}

// VOCReport is the result of a VOC evaluation.
type VOCReport struct {
	Metric   VOCMetric
	PerClass []VOCClassResult // in the order of the evaluated classes
	MAP      float64          // plain mean of the per-class APs (NaN if one is)
	// DroppedDets counts detections of classes not evaluated.
	DroppedDets int
}

// vocOverlapThreshold is the devkit's ovthresh: a match needs an overlap
// strictly greater than it.
const vocOverlapThreshold = 0.5

// EvaluateVOC computes per-class AP and mAP for classes, as
// py-faster-rcnn's voc_eval / voc_ap (the VOC devkit's Python port) with
// overlap threshold 0.5:
//   - npos counts the objects of the class that are not difficult.
//   - Detections of a class are sorted by descending score (stable: equal
//     scores keep input order; the reference's sort is not stable, so its
//     order for ties is arbitrary).
//   - Overlap uses the +1 pixel convention. Each detection is compared with
//     every object of its class in its image; the first one with the largest
//     overlap decides: overlap <= 0.5 -> false positive; difficult ->
//     ignored; unclaimed -> true positive, claiming it; claimed -> false
//     positive.
//   - recall = tp/npos, precision = tp/max(tp+fp, eps); AP by metric.
//
// A class without detections has AP 0. A class with npos 0 has recall NaN,
// which gives AP 0 for VOC07 and NaN for VOCArea (when it has detections).
// A detection of an image not in images is an error naming it (the
// reference raises KeyError); detections of other classes are dropped and
// counted.
func EvaluateVOC(images []VOCImage, dets []VOCDetection, classes []string, metric VOCMetric) (*VOCReport, error) {
	if metric != VOC07 && metric != VOCArea {
		panic(fmt.Sprintf("eval: EvaluateVOC: invalid metric %d", int(metric)))
	}
	imgIdx := make(map[string]int, len(images))
	for i, im := range images {
		imgIdx[im.Name] = i // a repeated name: the last one wins, as the reference's dict
	}
	clsIdx := make(map[string]int, len(classes))
	for k, c := range classes {
		clsIdx[c] = k
	}
	byClass := make([][]int, len(classes))
	r := &VOCReport{Metric: metric, PerClass: make([]VOCClassResult, len(classes))}
	for j := range dets {
		d := &dets[j]
		k, ok := clsIdx[d.Class]
		if !ok {
			r.DroppedDets++
			continue
		}
		if _, ok := imgIdx[d.Image]; !ok {
			return nil, fmt.Errorf("eval: detection %d (class %s): image %q is not in the image set", j, d.Class, d.Image)
		}
		if math.IsNaN(d.Score) || math.IsInf(d.Score, 0) {
			return nil, fmt.Errorf("eval: detection %d (class %s, image %s): score is %v", j, d.Class, d.Image, d.Score)
		}
		byClass[k] = append(byClass[k], j)
	}
	aps := make([]float64, len(classes))
	parallel(len(classes), func(k int) {
		res := evaluateVOCClass(images, imgIdx, dets, byClass[k], classes[k], metric)
		r.PerClass[k] = res
		aps[k] = res.AP
	})
	r.MAP = math.NaN()
	if len(aps) > 0 {
		r.MAP = pairwiseSum(aps) / float64(len(aps))
	}
	return r, nil
}

func evaluateVOCClass(images []VOCImage, imgIdx map[string]int, dets []VOCDetection, idx []int, class string, metric VOCMetric) VOCClassResult {
	type objects struct {
		boxes     []VOCBox
		difficult []bool
		claimed   []bool
	}
	recs := make([]objects, len(images))
	npos := 0
	for i, im := range images {
		var o objects
		for _, obj := range im.Objects {
			if obj.Class != class {
				continue
			}
			o.boxes = append(o.boxes, obj.Box)
			o.difficult = append(o.difficult, obj.Difficult)
			if !obj.Difficult {
				npos++
			}
		}
		o.claimed = make([]bool, len(o.boxes))
		recs[i] = o
	}
	order := slices.Clone(idx)
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(dets[b].Score, dets[a].Score) })
	tp := make([]float64, len(order))
	fp := make([]float64, len(order))
	for n, j := range order {
		d := &dets[j]
		o := &recs[imgIdx[d.Image]]
		ovmax, jmax := math.Inf(-1), -1
		bb := &d.Box
		da := float64((bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1))
		for g := range o.boxes {
			gb := &o.boxes[g]
			iw := max(min(gb[2], bb[2])-max(gb[0], bb[0])+1, 0)
			ih := max(min(gb[3], bb[3])-max(gb[1], bb[1])+1, 0)
			inter := float64(iw * ih)
			ga := float64((gb[2] - gb[0] + 1) * (gb[3] - gb[1] + 1))
			ov := inter / (float64(da+ga) - inter)
			if ov > ovmax || jmax < 0 { // first largest (numpy argmax)
				ovmax, jmax = ov, g
			}
		}
		switch {
		case jmax < 0 || !(ovmax > vocOverlapThreshold):
			fp[n] = 1
		case o.difficult[jmax]:
			// ignored
		case !o.claimed[jmax]:
			tp[n] = 1
			o.claimed[jmax] = true
		default:
			fp[n] = 1
		}
	}
	rec := make([]float64, len(order))
	prec := make([]float64, len(order))
	ctp, cfp := 0.0, 0.0
	for n := range order {
		ctp += tp[n]
		cfp += fp[n]
		rec[n] = ctp / float64(npos)
		prec[n] = ctp / max(ctp+cfp, eps)
	}
	return VOCClassResult{Class: class, NPos: npos, NumDets: len(order), AP: VOCAP(rec, prec, metric)}
}

// VOCAP is the devkit's voc_ap: average precision from the recall and
// precision curves ([N] each, in score order) by metric.
func VOCAP(rec, prec []float64, metric VOCMetric) float64 {
	if metric == VOC07 {
		ap := 0.0
		for i := 0; i <= 10; i++ {
			t := float64(i) * 0.1 // numpy.arange(0, 1.1, 0.1)
			p, any := 0.0, false
			for n, r := range rec {
				if r >= t && (!any || prec[n] > p) {
					p, any = prec[n], true
				}
			}
			ap += p / 11
		}
		return ap
	}
	n := len(rec)
	mrec := make([]float64, n+2)
	mpre := make([]float64, n+2)
	copy(mrec[1:], rec)
	copy(mpre[1:], prec)
	mrec[n+1] = 1
	for i := n + 1; i > 0; i-- {
		mpre[i-1] = npMaximum(mpre[i-1], mpre[i])
	}
	var terms []float64
	for i := 0; i < n+1; i++ {
		if mrec[i+1] != mrec[i] {
			terms = append(terms, float64(mrec[i+1]-mrec[i])*mpre[i+1])
		}
	}
	return pairwiseSum(terms)
}

// npMaximum is numpy.maximum: NaN if either is NaN.
func npMaximum(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return max(a, b)
}

// ReadVOCGroundTruth reads split of the VOC year folder root as the devkit's
// evaluation reads it, with format/voc: the image ids of
// ImageSets/Main/<split>.txt in order, and for each Annotations/<id>.xml the
// objects whose <name> is one of classes, with their boxes as written
// (inclusive coordinates, not checked against <size>) and difficult flags;
// objects of other classes are left out. A missing list or annotation file,
// a malformed annotation (format/voc's rules apply to every object) or an
// image id listed twice is an error naming the file.
func ReadVOCGroundTruth(root, split string, classes []string) ([]VOCImage, error) {
	list, err := voc.ReadImageSetFile(root, split)
	if err != nil {
		return nil, fmt.Errorf("eval: image set %q: %w", split, err)
	}
	images := make([]VOCImage, len(list))
	line := make(map[string]int, len(list))
	for i, e := range list {
		if first, dup := line[e.Name]; dup {
			return nil, fmt.Errorf("eval: %s: line %d: duplicate image id %q (first on line %d)", voc.ImageSetPath(root, split), e.Line, e.Name, first)
		}
		line[e.Name] = e.Line
		a, err := voc.ReadAnnotationFile(voc.AnnotationPath(root, e.Name))
		if err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		images[i].Name = e.Name
		for _, o := range a.Objects {
			if slices.Contains(classes, o.Name) {
				images[i].Objects = append(images[i].Objects, VOCObject{Class: o.Name, Difficult: o.Difficult,
					Box: VOCBox{o.Box.Xmin, o.Box.Ymin, o.Box.Xmax, o.Box.Ymax}})
			}
		}
	}
	return images, nil
}

// ReadVOCDetections reads the devkit result files of dir with format/voc's
// ReadResultsDir: comp4_det_<split>_<class>.txt for every class, one
// detection per line "<image> <score> <xmin> <ymin> <xmax> <ymax>" (the box
// in the devkit's inclusive convention, compared with the XML coordinates
// as they are). A class without a file has no detections; its name is
// returned in missing. A malformed line, a NaN or infinite number or a box
// with xmax < xmin or ymax < ymin is an error naming the file and line.
func ReadVOCDetections(dir, split string, classes []string) (dets []VOCDetection, missing []string, err error) {
	perClass, missing, err := voc.ReadResultsDir(dir, split, classes)
	if err != nil {
		return nil, nil, fmt.Errorf("eval: %w", err)
	}
	for k, ds := range perClass {
		for _, d := range ds {
			dets = append(dets, VOCDetection{Image: d.Image, Class: classes[k], Score: d.Score,
				Box: VOCBox{d.Box.Xmin, d.Box.Ymin, d.Box.Xmax, d.Box.Ymax}})
		}
	}
	return dets, missing, nil
}
