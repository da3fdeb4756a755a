package checkpoint

import (
	"fmt"
	"slices"
	"strings"

	"resdet/datasets"
	"resdet/weights"
)

// How FitPredictor treats a detector's predictor when fine-tuning.
const (
	// PredictorKept: the new class list is the file's (same names, same
	// order): the predictor is loaded as it is.
	PredictorKept = "kept"
	// PredictorByName: every new class is one of the file's (by name, with
	// the VOC/COCO spellings of datasets.SameClass): the rows of those
	// classes are taken, in the new order, with the background's.
	PredictorByName = "rows taken by class name"
	// PredictorReinit: some new class is not among the file's: the
	// predictor keeps its fresh initialisation.
	PredictorReinit = "re-initialised"
)

// PredictorFit is how the predictor of a detector trained on one class
// list is carried over to another (FitPredictor).
type PredictorFit struct {
	// Kind is PredictorKept, PredictorByName or PredictorReinit.
	Kind string
	// Rows[i] is the file's class (0-based) that new class i takes
	// (PredictorKept and PredictorByName).
	Rows []int
	// From and To are the class lists; Unmatched lists the new classes
	// without a match (PredictorReinit).
	From, To  []string
	Unmatched []string
}

// FitPredictor decides how a predictor trained for classes from (names of
// classes 1..K) serves classes to: kept when the lists are the same (by
// datasets.SameClass, in order), rows taken by name when every class of to
// names exactly one class of from (the COCO -> VOC case: "aeroplane" takes
// "airplane"'s rows), re-initialised otherwise.
func FitPredictor(from, to []string) PredictorFit {
	f := PredictorFit{From: slices.Clone(from), To: slices.Clone(to)}
	same := len(from) == len(to)
	for i, c := range to {
		var match []int
		for j, d := range from {
			if datasets.SameClass(c, d) {
				match = append(match, j)
			}
		}
		if len(match) != 1 {
			f.Unmatched = append(f.Unmatched, c)
			continue
		}
		f.Rows = append(f.Rows, match[0])
		same = same && match[0] == i
	}
	switch {
	case len(f.Unmatched) > 0:
		f.Kind, f.Rows = PredictorReinit, nil
	case same:
		f.Kind = PredictorKept
	default:
		f.Kind = PredictorByName
	}
	return f
}

// String describes the fit for a log line.
func (f PredictorFit) String() string {
	switch f.Kind {
	case PredictorKept:
		return fmt.Sprintf("predictor kept (the same %d classes)", len(f.To))
	case PredictorByName:
		var renamed []string
		for i, r := range f.Rows {
			if f.To[i] != f.From[r] {
				renamed = append(renamed, f.To[i]+"<-"+f.From[r])
			}
		}
		s := fmt.Sprintf("predictor rows taken by class name for the %d classes (of the file's %d)", len(f.To), len(f.From))
		if len(renamed) > 0 {
			s += ", " + strings.Join(renamed, ", ")
		}
		return s
	}
	shown := f.Unmatched[:min(len(f.Unmatched), 5)]
	more := ""
	if len(f.Unmatched) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(f.Unmatched)-len(shown))
	}
	return fmt.Sprintf("predictor re-initialised (%d of the %d classes are not among the file's %d: %s%s)",
		len(f.Unmatched), len(f.To), len(f.From), strings.Join(shown, ", "), more)
}

// Apply returns s (a detector's state, our names, predictor background
// first as Init.State gives it) with the predictor fitted to the new
// classes: cls_score row 0 (background) and row 1+i from the file's row
// 1+Rows[i], bbox_pred rows 4(1+i)..4(1+i)+3 likewise; for
// PredictorReinit, the predictor tensors of fresh (the model's own
// initialisation) instead. The other tensors are shared with s. Errors name
// the tensor whose shape does not fit.
func (f PredictorFit) Apply(s, fresh weights.State) (weights.State, error) {
	out := make(weights.State, len(s))
	for n, t := range s {
		out[n] = t
	}
	for _, mod := range []string{"cls_score", "bbox_pred"} {
		per := 1
		if mod == "bbox_pred" {
			per = 4
		}
		for _, p := range []string{"weight", "bias"} {
			name := "roi_heads.box_predictor." + mod + "." + p
			if f.Kind == PredictorReinit {
				t, ok := fresh[name]
				if !ok {
					return nil, fmt.Errorf("checkpoint: no fresh %s to re-initialise the predictor with", name)
				}
				out[name] = t
				continue
			}
			t, ok := s[name]
			if !ok || len(t.Shape) == 0 || t.Shape[0] != per*(len(f.From)+1) {
				return nil, fmt.Errorf("checkpoint: tensor %s has shape %v, want %d rows (%d classes and the background)", name, t.Shape, per*(len(f.From)+1), len(f.From))
			}
			if f.Kind == PredictorKept {
				continue
			}
			row := len(t.Data) / t.Shape[0] * per // values per class
			d := make([]float32, 0, row*(len(f.To)+1))
			d = append(d, t.Data[:row]...)
			for _, r := range f.Rows {
				d = append(d, t.Data[(1+r)*row:(2+r)*row]...)
			}
			out[name] = weights.Tensor{Shape: append([]int{per * (len(f.To) + 1)}, t.Shape[1:]...), Data: d}
		}
	}
	return out, nil
}
