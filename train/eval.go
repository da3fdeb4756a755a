package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"resdet/box"
	"resdet/datasets"
	"resdet/detection"
	"resdet/eval"
	"resdet/internal/atomicfile"
)

// EvalReport is the evaluation of a detector on a split: VOC07 11-point
// and VOC area (2010+) mAP always, the 12 COCO numbers for COCO data, and
// per-class precision-recall curves (VOC matching: IoU > 0.5, difficult
// objects ignored) for plots.
type EvalReport struct {
	Iter     int                  `json:"iter,omitempty"`
	Split    string               `json:"split,omitempty"`
	Images   int                  `json:"images"`
	VOC07MAP Float                `json:"voc07_map"`
	VOCMAP   Float                `json:"voc_map"`
	PerClass []ClassAP            `json:"per_class"`
	COCO     []float64            `json:"coco,omitempty"`
	PR       []PRCurve            `json:"pr"`
	Dets     []datasets.Detection `json:"-"`

	VOC07, VOCArea *eval.VOCReport  `json:"-"`
	COCOReport     *eval.COCOReport `json:"-"`
}

// ClassAP is one class's VOC APs.
type ClassAP struct {
	Class string `json:"class"`
	NPos  int    `json:"npos"`
	AP07  Float  `json:"ap07"`
	AP    Float  `json:"ap"`
}

// PRCurve is one class's precision at each recall reached, detections
// sorted by decreasing score.
type PRCurve struct {
	Class     string    `json:"class"`
	Recall    []float64 `json:"recall"`
	Precision []float64 `json:"precision"`
}

// EvalOptions tune Evaluate.
type EvalOptions struct {
	COCO     bool     // also compute the 12 COCO numbers
	Split    string   // recorded in the report
	Progress Progress // told of every image evaluated, and Done at the end (nil: none)
}

// Evaluate runs m (an inference detector: detection.New or LoadCheckpoint)
// on every image of set and evaluates its detections against the set's
// ground truth through package eval. An image that fails to load is an
// error naming it. It stops early with ctx's error.
func Evaluate(ctx context.Context, m *detection.FasterRCNN, set *datasets.Set, o EvalOptions) (*EvalReport, error) {
	if len(set.Classes) != len(m.Config.Classes) {
		return nil, fmt.Errorf("train: evaluate: the set has %d classes, the detector %d", len(set.Classes), len(m.Config.Classes))
	}
	ts := transformOf(m.Config)
	prog := o.Progress
	if prog == nil {
		prog = nopProgress{}
	}
	imgs := make([]eval.ImageResult, set.Len())
	var dets []datasets.Detection
	for i, r := range set.Records {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s, err := ts.Load(r.ImagePath, nil, false)
		if err != nil {
			return nil, fmt.Errorf("train: evaluate: %w", err)
		}
		d, err := m.Predict(detection.Image{Data: s.Image.Data, W: s.Image.W, H: s.Image.H, OrigW: s.OrigW, OrigH: s.OrigH})
		if err != nil {
			return nil, fmt.Errorf("train: evaluate %s: %w", r.ImagePath, err)
		}
		name := r.Name
		if name == "" {
			name = strconv.FormatInt(r.ID, 10)
		}
		ir := eval.ImageResult{ID: r.ID, Name: name}
		for _, ob := range r.Objects {
			ir.GT = append(ir.GT, eval.GTObject{Box: ob.Box, Label: ob.Label, Crowd: ob.Crowd, Difficult: ob.Difficult, Area: float64(ob.Area)})
		}
		for k := range d.Boxes {
			ir.Dets = append(ir.Dets, eval.Detection{Box: d.Boxes[k], Label: d.Labels[k] - 1, Score: d.Scores[k]})
			dets = append(dets, datasets.Detection{ImageID: r.ID, Name: r.Name, Label: d.Labels[k] - 1, Box: d.Boxes[k], Score: d.Scores[k]})
		}
		imgs[i] = ir
		prog.Add(1)
	}
	prog.Done()
	return evaluateImages(imgs, set.Classes, dets, o)
}

func evaluateImages(imgs []eval.ImageResult, classes []string, dets []datasets.Detection, o EvalOptions) (*EvalReport, error) {
	v07, err := eval.EvaluateVOCImages(imgs, classes, eval.VOC07)
	if err != nil {
		return nil, fmt.Errorf("train: evaluate: %w", err)
	}
	va, err := eval.EvaluateVOCImages(imgs, classes, eval.VOCArea)
	if err != nil {
		return nil, fmt.Errorf("train: evaluate: %w", err)
	}
	rep := &EvalReport{Split: o.Split, Images: len(imgs), VOC07MAP: Float(v07.MAP), VOCMAP: Float(va.MAP), VOC07: v07, VOCArea: va, Dets: dets}
	for k, c := range v07.PerClass {
		rep.PerClass = append(rep.PerClass, ClassAP{Class: c.Class, NPos: c.NPos, AP07: Float(c.AP), AP: Float(va.PerClass[k].AP)})
	}
	if o.COCO {
		cr, err := eval.EvaluateCOCOImages(imgs, classes)
		if err != nil {
			return nil, fmt.Errorf("train: evaluate: %w", err)
		}
		rep.COCOReport = cr
		rep.COCO = cr.Stats.Values[:]
	}
	rep.PR = prCurves(imgs, classes)
	return rep, nil
}

// prCurves computes VOC-style precision-recall curves: per class,
// detections by decreasing score (stable), each matched to the unmatched
// ground truth of its image with the highest IoU if above 0.5; matches to
// difficult objects neither count nor penalise.
func prCurves(imgs []eval.ImageResult, classes []string) []PRCurve {
	out := make([]PRCurve, len(classes))
	for c := range classes {
		type det struct {
			img   int
			b     box.Box
			score float32
		}
		var ds []det
		npos := 0
		for i, im := range imgs {
			for _, g := range im.GT {
				if g.Label == c && !g.Difficult {
					npos++
				}
			}
			for _, d := range im.Dets {
				if d.Label == c {
					ds = append(ds, det{i, d.Box, d.Score})
				}
			}
		}
		slices.SortStableFunc(ds, func(a, b det) int {
			switch {
			case a.score > b.score:
				return -1
			case a.score < b.score:
				return 1
			}
			return 0
		})
		used := make(map[[2]int]bool)
		tp, fp := 0, 0
		pr := PRCurve{Class: classes[c]}
		for _, d := range ds {
			best, bi := float32(0.5), -1
			for j, g := range imgs[d.img].GT {
				if g.Label != c {
					continue
				}
				if iou := d.b.IoU(g.Box); iou > best {
					best, bi = iou, j
				}
			}
			switch {
			case bi >= 0 && imgs[d.img].GT[bi].Difficult:
				continue
			case bi >= 0 && !used[[2]int{d.img, bi}]:
				used[[2]int{d.img, bi}] = true
				tp++
			default:
				fp++
			}
			if npos > 0 {
				pr.Recall = append(pr.Recall, float64(tp)/float64(npos))
				pr.Precision = append(pr.Precision, float64(tp)/float64(tp+fp))
			}
		}
		out[c] = pr
	}
	return out
}

// inferenceModel returns an inference detector (frozen, folded BN) with
// m's current weights.
func inferenceModel(m *detection.FasterRCNN) (*detection.FasterRCNN, error) {
	inf, err := detection.New(m.Config, detection.Options{})
	if err != nil {
		return nil, err
	}
	if err := inf.Load(m.State()); err != nil {
		return nil, err
	}
	return inf, nil
}

// WriteEvalReport writes rep as JSON to path (atomically, creating the
// folder).
func WriteEvalReport(path string, rep *EvalReport) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	b, err := json.MarshalIndent(rep, "", " ")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}

// nopProgress shows nothing.
type nopProgress struct{}

func (nopProgress) Add(int) {}
func (nopProgress) Done()   {}

// Float is a float64 whose JSON form is null for NaN (an AP without
// ground truth), read back as NaN.
type Float float64

// MarshalJSON writes null for NaN and infinities.
func (f Float) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(f), 'g', -1, 64), nil
}

// UnmarshalJSON reads null as NaN.
func (f *Float) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = Float(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	*f = Float(v)
	return err
}
