package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// WriteText writes a per-class table (class, npos, detections, AP with 4
// decimals as the devkit prints them; NaN when the class has no positives)
// and the mAP, then a line counting dropped detections when there are any.
func (r *VOCReport) WriteText(w io.Writer) error {
	nameW := len("class")
	for _, c := range r.PerClass {
		nameW = max(nameW, len(c.Class))
	}
	metric := "VOC07 11-point"
	if r.Metric == VOCArea {
		metric = "area under the precision envelope"
	}
	if _, err := fmt.Fprintf(w, "PASCAL VOC AP (IoU > 0.5, %s)\n%-*s  %6s  %8s  %6s\n", metric, nameW, "class", "npos", "dets", "AP"); err != nil {
		return err
	}
	for _, c := range r.PerClass {
		if _, err := fmt.Fprintf(w, "%-*s  %6d  %8d  %6.4f\n", nameW, c.Class, c.NPos, c.NumDets, c.AP); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(w, "%-*s  %6s  %8s  %6.4f\n", nameW, "mAP", "", "", r.MAP); err != nil {
		return err
	}
	if r.DroppedDets > 0 {
		if _, err := fmt.Fprintf(w, "dropped %d detections of other classes\n", r.DroppedDets); err != nil {
			return err
		}
	}
	return nil
}

// nullFloat marshals NaN as null.
type nullFloat float64

func (f nullFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// WriteJSON writes {"metric":"voc07" or "voc","per_class":[{"class",
// "npos","ap"}...],"map":...} and a newline; NaN is null.
func (r *VOCReport) WriteJSON(w io.Writer) error {
	type class struct {
		Class string    `json:"class"`
		NPos  int       `json:"npos"`
		AP    nullFloat `json:"ap"`
	}
	out := struct {
		Metric   string    `json:"metric"`
		PerClass []class   `json:"per_class"`
		MAP      nullFloat `json:"map"`
	}{Metric: r.Metric.String(), PerClass: make([]class, len(r.PerClass)), MAP: nullFloat(r.MAP)}
	for i, c := range r.PerClass {
		out.PerClass[i] = class{Class: c.Class, NPos: c.NPos, AP: nullFloat(c.AP)}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
