package checkpoint

import (
	"slices"
	"strings"
	"testing"

	"resdet/datasets"
	"resdet/weights"
)

func TestFitPredictor(t *testing.T) {
	coco, voc := datasets.COCOClasses(), datasets.VOCClasses()
	tests := []struct {
		name     string
		from, to []string
		kind     string
		rows     []int
		log      []string
	}{
		{name: "same", from: voc, to: voc, kind: PredictorKept, rows: seq(20), log: []string{"kept", "20 classes"}},
		{name: "same, other case", from: []string{"Cat", "dog"}, to: []string{"cat", "Dog"}, kind: PredictorKept, rows: []int{0, 1}},
		// COCO's indices (category-id order): airplane 4, bicycle 1, bird
		// 14, ..., tv 62.
		{name: "coco to voc", from: coco, to: voc, kind: PredictorByName,
			rows: []int{4, 1, 14, 8, 39, 5, 2, 15, 56, 19, 60, 16, 17, 3, 0, 58, 18, 57, 6, 62},
			log:  []string{"rows taken by class name", "20 classes (of the file's 80)", "aeroplane<-airplane", "tvmonitor<-tv", "sofa<-couch"}},
		{name: "reordered", from: []string{"a", "b", "c"}, to: []string{"c", "a"}, kind: PredictorByName, rows: []int{2, 0}},
		{name: "new class", from: voc, to: []string{"dog", "circle", "square"}, kind: PredictorReinit,
			log: []string{"re-initialised", "2 of the 3 classes", "circle, square"}},
		{name: "generic names", from: []string{"class1", "class2"}, to: []string{"cat", "dog"}, kind: PredictorReinit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := FitPredictor(tc.from, tc.to)
			if f.Kind != tc.kind || !slices.Equal(f.Rows, tc.rows) {
				t.Errorf("kind %q rows %v, want %q %v", f.Kind, f.Rows, tc.kind, tc.rows)
			}
			for _, w := range tc.log {
				if !strings.Contains(f.String(), w) {
					t.Errorf("log %q lacks %q", f, w)
				}
			}
		})
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// predictorState is a predictor of k classes (background first) with D
// inputs whose every value tells its tensor, row and column.
func predictorState(k, d int) weights.State {
	s := weights.State{}
	for _, mod := range []struct {
		name string
		rows int
		base float32
	}{{"cls_score", k + 1, 1000}, {"bbox_pred", 4 * (k + 1), 2000}} {
		w := weights.Tensor{Shape: []int{mod.rows, d}}
		b := weights.Tensor{Shape: []int{mod.rows}}
		for r := 0; r < mod.rows; r++ {
			for c := 0; c < d; c++ {
				w.Data = append(w.Data, mod.base*10+float32(r)+float32(c)/10)
			}
			b.Data = append(b.Data, -mod.base-float32(r))
		}
		s["roi_heads.box_predictor."+mod.name+".weight"] = w
		s["roi_heads.box_predictor."+mod.name+".bias"] = b
	}
	s["rpn.head.conv.weight"] = weights.Tensor{Shape: []int{1}, Data: []float32{7}}
	return s
}

// TestPredictorFitApply checks the carried-over rows value by value: the
// background's first, then each new class's rows from the file's row of its
// match (4 box rows per class).
func TestPredictorFitApply(t *testing.T) {
	const k, d = 5, 3
	src := predictorState(k, d)
	fresh := predictorState(2, d)
	for n, tt := range fresh {
		for i := range tt.Data {
			tt.Data[i] = -1
		}
		fresh[n] = tt
	}
	from := []string{"a", "b", "c", "d", "e"}
	f := FitPredictor(from, []string{"d", "b"})
	got, err := f.Apply(src, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if got["rpn.head.conv.weight"].Data[0] != 7 {
		t.Error("other tensors not carried")
	}
	srcRows := []int{0, 1 + 3, 1 + 1} // background, d, b
	for _, mod := range []struct {
		name string
		per  int
	}{{"cls_score", 1}, {"bbox_pred", 4}} {
		w, b := got["roi_heads.box_predictor."+mod.name+".weight"], got["roi_heads.box_predictor."+mod.name+".bias"]
		sw, sb := src["roi_heads.box_predictor."+mod.name+".weight"], src["roi_heads.box_predictor."+mod.name+".bias"]
		if !slices.Equal(w.Shape, []int{3 * mod.per, d}) || !slices.Equal(b.Shape, []int{3 * mod.per}) {
			t.Fatalf("%s shapes %v %v", mod.name, w.Shape, b.Shape)
		}
		for i, r := range srcRows {
			for j := 0; j < mod.per; j++ {
				to, from := i*mod.per+j, r*mod.per+j
				if !slices.Equal(w.Data[to*d:(to+1)*d], sw.Data[from*d:(from+1)*d]) || b.Data[to] != sb.Data[from] {
					t.Errorf("%s row %d: %v %v, want the file's row %d: %v %v", mod.name, to, w.Data[to*d:(to+1)*d], b.Data[to], from, sw.Data[from*d:(from+1)*d], sb.Data[from])
				}
			}
		}
	}
	kept, err := FitPredictor(from, from).Apply(src, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kept["roi_heads.box_predictor.bbox_pred.weight"].Data, src["roi_heads.box_predictor.bbox_pred.weight"].Data) {
		t.Error("kept predictor changed")
	}
	re, err := FitPredictor(from, []string{"x", "y"}).Apply(src, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(re["roi_heads.box_predictor.cls_score.weight"].Data, fresh["roi_heads.box_predictor.cls_score.weight"].Data) {
		t.Error("re-initialised predictor is not the fresh one")
	}
	if _, err := FitPredictor([]string{"a"}, []string{"a"}).Apply(src, fresh); err == nil || !strings.Contains(err.Error(), "cls_score") {
		t.Errorf("a class list of another length than the tensors: %v, want an error naming the tensor", err)
	}
}

// TestBackgroundFirst moves a Detectron2 predictor (background last, no
// background deltas) to torchvision's layout, value by value.
func TestBackgroundFirst(t *testing.T) {
	const k, d = 3, 2
	s := weights.State{}
	cls := weights.Tensor{Shape: []int{k + 1, d}}
	for i := 0; i < (k+1)*d; i++ {
		cls.Data = append(cls.Data, float32(i))
	}
	box := weights.Tensor{Shape: []int{4 * k, d}}
	for i := 0; i < 4*k*d; i++ {
		box.Data = append(box.Data, float32(100+i))
	}
	s["roi_heads.box_predictor.cls_score.weight"] = cls
	s["roi_heads.box_predictor.cls_score.bias"] = weights.Tensor{Shape: []int{k + 1}, Data: []float32{0, 1, 2, 3}}
	s["roi_heads.box_predictor.bbox_pred.weight"] = box
	s["roi_heads.box_predictor.bbox_pred.bias"] = weights.Tensor{Shape: []int{4 * k}, Data: seqF(4 * k)}
	if err := backgroundFirst(s, k, "f.pkl"); err != nil {
		t.Fatal(err)
	}
	if got := s["roi_heads.box_predictor.cls_score.weight"].Data; !slices.Equal(got, []float32{6, 7, 0, 1, 2, 3, 4, 5}) {
		t.Errorf("cls_score.weight %v", got)
	}
	if got := s["roi_heads.box_predictor.cls_score.bias"].Data; !slices.Equal(got, []float32{3, 0, 1, 2}) {
		t.Errorf("cls_score.bias %v", got)
	}
	bw := s["roi_heads.box_predictor.bbox_pred.weight"]
	if !slices.Equal(bw.Shape, []int{4 * (k + 1), d}) || !slices.Equal(bw.Data[:4*d], make([]float32, 4*d)) || !slices.Equal(bw.Data[4*d:], box.Data) {
		t.Errorf("bbox_pred.weight %v %v", bw.Shape, bw.Data)
	}
	if got := s["roi_heads.box_predictor.bbox_pred.bias"].Data; !slices.Equal(got, append(make([]float32, 4), seqF(4*k)...)) {
		t.Errorf("bbox_pred.bias %v", got)
	}
	if err := backgroundFirst(s, k, "f.pkl"); err == nil || !strings.Contains(err.Error(), "f.pkl") {
		t.Errorf("a predictor already background first: %v, want an error naming the file", err)
	}
}

func seqF(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(i)
	}
	return s
}
