package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// COCOReport is the result of a COCO box evaluation.
type COCOReport struct {
	Stats       Stats
	PerCategory []CategoryStats // ascending category id
	Accumulated Accumulated
	// Evaluated counts.
	NumImages, NumGT, NumDets int
	// DroppedDets counts detections whose category is not a GT category;
	// they are left out, as pycocotools does.
	DroppedDets int
	// DroppedGT counts GT annotations whose image or category is not listed
	// in the GT file; pycocotools leaves them out too.
	DroppedGT int
}

// EvaluateCOCO evaluates detections dets against gt exactly as pycocotools'
// COCOeval(iouType="bbox") with default parameters: every GT image and
// category is evaluated, in ascending id order. A detection whose image id
// is not a GT image is an error naming it (pycocotools refuses such a
// results file); detections of unknown categories are dropped and counted.
// An empty dets is valid and gives AP 0 wherever there is ground truth
// (pycocotools crashes on an empty results list instead).
func EvaluateCOCO(gt *COCOGroundTruth, dets []Annotation) (*COCOReport, error) {
	imgIDs := make([]int64, len(gt.Images))
	for i, im := range gt.Images {
		imgIDs[i] = im.ID
	}
	catIDs := make([]int64, len(gt.Categories))
	for i, c := range gt.Categories {
		catIDs[i] = c.ID
	}
	p := DefaultParams(imgIDs, catIDs)
	imgIdx, catIdx := index(p.ImageIDs), index(p.CategoryIDs)
	r := &COCOReport{NumImages: len(p.ImageIDs)}
	for j := range dets {
		d := &dets[j]
		if _, ok := imgIdx[d.ImageID]; !ok {
			return nil, fmt.Errorf("eval: detection %d (results entry %d): image id %d is not in the ground truth", d.ID, j, d.ImageID)
		}
		if math.IsNaN(d.Score) || math.IsInf(d.Score, 0) {
			return nil, fmt.Errorf("eval: detection %d (results entry %d): score is %v", d.ID, j, d.Score)
		}
		if _, ok := catIdx[d.CategoryID]; ok {
			r.NumDets++
		} else {
			r.DroppedDets++
		}
	}
	for j := range gt.Annotations {
		a := &gt.Annotations[j]
		_, ok1 := imgIdx[a.ImageID]
		_, ok2 := catIdx[a.CategoryID]
		if ok1 && ok2 {
			r.NumGT++
		} else {
			r.DroppedGT++
		}
	}
	evals := EvaluateImages(gt.Annotations, dets, p)
	r.Accumulated = Accumulate(evals, p)
	r.Stats = Summarize(r.Accumulated)
	// Category names in ascending id order; the last entry of a duplicated
	// id wins, as in pycocotools' index.
	names := make([]string, len(p.CategoryIDs))
	for _, c := range gt.Categories {
		names[catIdx[c.ID]] = c.Name
	}
	r.PerCategory = PerCategory(r.Accumulated, names)
	return r, nil
}

// WriteText writes pycocotools' 12 summary lines, then a per-category table
// (id, name, AP, AP50, AP75, AR100; -1 = no ground truth), then a line
// counting dropped detections when there are any.
func (r *COCOReport) WriteText(w io.Writer) error {
	if _, err := r.Stats.WriteTo(w); err != nil {
		return err
	}
	nameW := len("category")
	for _, c := range r.PerCategory {
		nameW = max(nameW, len(c.Name))
	}
	if _, err := fmt.Fprintf(w, "\n%8s  %-*s  %6s  %6s  %6s  %6s\n", "id", nameW, "category", "AP", "AP50", "AP75", "AR100"); err != nil {
		return err
	}
	for _, c := range r.PerCategory {
		if _, err := fmt.Fprintf(w, "%8d  %-*s  %6.3f  %6.3f  %6.3f  %6.3f\n", c.ID, nameW, c.Name, c.AP, c.AP50, c.AP75, c.AR100); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(w, "\n%d images, %d ground-truth boxes, %d detections\n", r.NumImages, r.NumGT, r.NumDets); err != nil {
		return err
	}
	if r.DroppedDets > 0 {
		if _, err := fmt.Fprintf(w, "dropped %d detections of categories not in the ground truth\n", r.DroppedDets); err != nil {
			return err
		}
	}
	if r.DroppedGT > 0 {
		if _, err := fmt.Fprintf(w, "dropped %d ground-truth annotations of unlisted images or categories\n", r.DroppedGT); err != nil {
			return err
		}
	}
	return nil
}

type cocoJSONCategory struct {
	ID    int64   `json:"id"`
	Name  string  `json:"name"`
	AP    float64 `json:"ap"`
	AP50  float64 `json:"ap50"`
	AP75  float64 `json:"ap75"`
	AR100 float64 `json:"ar100"`
}

// WriteJSON writes {"metric":"coco","stats":[12 numbers],"per_category":
// [{"id","name","ap","ap50","ap75","ar100"}...]} and a newline; undefined
// values are -1, numbers use the shortest representation that round-trips.
func (r *COCOReport) WriteJSON(w io.Writer) error {
	out := struct {
		Metric      string             `json:"metric"`
		Stats       []float64          `json:"stats"`
		PerCategory []cocoJSONCategory `json:"per_category"`
	}{Metric: "coco", Stats: r.Stats.Values[:], PerCategory: make([]cocoJSONCategory, len(r.PerCategory))}
	for i, c := range r.PerCategory {
		out.PerCategory[i] = cocoJSONCategory(c)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
