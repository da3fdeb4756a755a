package eval

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"resdet/box"
	"resdet/eval/evaltest"
	"resdet/format/coco"
	"resdet/format/voc"
)

// TestCOCOPerfectDetections: detecting every non-crowd GT once with its own
// box gives AP = AR = 1 (up to pycocotools' eps: 1/(1+eps)) in every
// defined slice, whatever the scores.
func TestCOCOPerfectDetections(t *testing.T) {
	gtData, _ := evaltest.COCO(rand.New(rand.NewPCG(5, 5)), evaltest.COCOOptions{Images: 30, Categories: 6, GTPerImage: 5})
	gt, err := ParseCOCOGroundTruth(gtData)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	var dets []Annotation
	for _, a := range gt.Annotations {
		if a.BBox[2] == 0 || a.BBox[3] == 0 {
			continue
		}
		dets = append(dets, Annotation{ID: int64(len(dets) + 1), ImageID: a.ImageID, CategoryID: a.CategoryID,
			BBox: a.BBox, Area: a.Area, Score: rng.Float64()}) // GT area: same range
	}
	r, err := EvaluateCOCO(gt, dets)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range r.Stats.Values {
		if StatNames[i] == "AR1" {
			// images with several objects of a category: one detection
			// per image and category finds only one of them
			if v >= 1 || v <= 0 {
				t.Errorf("AR1 = %v, want in (0, 1)", v)
			}
			continue
		}
		if v != -1 && math.Abs(v-1) > 1e-15 {
			t.Errorf("%s = %.17g, want 1", StatNames[i], v)
		}
	}
	if r.Stats.Values[0] == -1 {
		t.Fatal("AP undefined")
	}
}

// TestCOCOPermutationInvariance: the order of the images and categories in
// the GT file and the interleaving of different images' entries in both
// files do not change any number.
func TestCOCOPermutationInvariance(t *testing.T) {
	gtData, detData := evaltest.COCO(rand.New(rand.NewPCG(6, 6)), evaltest.COCOOptions{Images: 50, Categories: 8, GTPerImage: 6,
		DetsPerImage: 40, CrowdFraction: 0.05, Jitter: 0.15, ScoreDecimals: 2})
	gt, _ := ParseCOCOGroundTruth(gtData)
	dets, _ := ParseCOCOResults(detData)
	base, err := EvaluateCOCO(gt, dets)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	// Shuffle images and categories; order annotations by a random image
	// rank, stably, so each image's own order is kept.
	g2 := &COCOGroundTruth{Images: slices.Clone(gt.Images), Categories: slices.Clone(gt.Categories), Annotations: slices.Clone(gt.Annotations)}
	rng.Shuffle(len(g2.Images), func(i, j int) { g2.Images[i], g2.Images[j] = g2.Images[j], g2.Images[i] })
	rng.Shuffle(len(g2.Categories), func(i, j int) { g2.Categories[i], g2.Categories[j] = g2.Categories[j], g2.Categories[i] })
	rank := map[int64]int{}
	for i, im := range g2.Images {
		rank[im.ID] = i
	}
	byRank := func(a, b Annotation) int { return rank[a.ImageID] - rank[b.ImageID] }
	slices.SortStableFunc(g2.Annotations, byRank)
	d2 := slices.Clone(dets)
	slices.SortStableFunc(d2, byRank)
	r, err := EvaluateCOCO(g2, d2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Stats.Values != base.Stats.Values {
		t.Errorf("stats changed:\n%v\n%v", r.Stats.Values, base.Stats.Values)
	}
	if !slices.Equal(r.PerCategory, base.PerCategory) {
		t.Error("per-category numbers changed")
	}
	if !slices.Equal(r.Accumulated.Precision, base.Accumulated.Precision) || !slices.Equal(r.Accumulated.Recall, base.Accumulated.Recall) {
		t.Error("precision/recall arrays changed")
	}
}

// TestEvaluateCOCOImagesMatchesJSON: the in-memory API gives the numbers of
// the JSON path for the same boxes (converted as documented).
func TestEvaluateCOCOImagesMatchesJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	classes := []string{"a", "b", "c"}
	var images []ImageResult
	gt := &COCOGroundTruth{}
	for k, c := range classes {
		gt.Categories = append(gt.Categories, COCOCategory{ID: int64(k + 1), Name: c})
	}
	var dets []Annotation
	randBox := func() box.Box {
		x, y := float32(rng.IntN(300)), float32(rng.IntN(300))
		return box.Box{X1: x, Y1: y, X2: x + float32(5+rng.IntN(150)), Y2: y + float32(5+rng.IntN(150))}
	}
	for i := 0; i < 40; i++ {
		im := ImageResult{ID: int64(100 - i)}
		gt.Images = append(gt.Images, COCOImage{ID: im.ID})
		for j := 0; j < rng.IntN(6); j++ {
			o := GTObject{Box: randBox(), Label: rng.IntN(3), Crowd: rng.IntN(20) == 0}
			im.GT = append(im.GT, o)
			bb := coco.BoxToXYWH(o.Box)
			gt.Annotations = append(gt.Annotations, Annotation{ID: int64(len(gt.Annotations) + 1), ImageID: im.ID,
				CategoryID: int64(o.Label + 1), BBox: bb, Area: bb[2] * bb[3], Crowd: o.Crowd})
			// a jittered detection of it
			d := Detection{Box: o.Box, Label: o.Label, Score: float32(rng.IntN(10)) / 10}
			d.Box.X2 += float32(rng.IntN(20))
			im.Dets = append(im.Dets, d)
		}
		for j := 0; j < rng.IntN(4); j++ {
			im.Dets = append(im.Dets, Detection{Box: randBox(), Label: rng.IntN(3), Score: rng.Float32()})
		}
		for _, d := range im.Dets {
			bb := coco.BoxToXYWH(d.Box)
			dets = append(dets, Annotation{ID: int64(len(dets) + 1), ImageID: im.ID, CategoryID: int64(d.Label + 1),
				BBox: bb, Area: bb[2] * bb[3], Score: float64(d.Score)})
		}
		images = append(images, im)
	}
	got, err := EvaluateCOCOImages(images, classes)
	if err != nil {
		t.Fatal(err)
	}
	want, err := EvaluateCOCO(gt, dets)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stats.Values != want.Stats.Values || got.Stats.Values[0] <= 0 {
		t.Errorf("in-memory %v\nJSON path %v", got.Stats.Values, want.Stats.Values)
	}
	images[3].Dets = append(images[3].Dets, Detection{Box: box.Box{X1: 5, X2: 4, Y2: 1}, Label: 0, Score: 1})
	if _, err := EvaluateCOCOImages(images, classes); err == nil || !strings.Contains(err.Error(), "negative width") {
		t.Errorf("error %v, want a negative width error", err)
	}
	images[3].Dets[len(images[3].Dets)-1] = Detection{Label: 3}
	if _, err := EvaluateCOCOImages(images, classes); err == nil || !strings.Contains(err.Error(), "label 3") {
		t.Errorf("error %v, want a label error", err)
	}
}

func TestEvaluateVOCImages(t *testing.T) {
	// One image: a 10x10 GT at pixels 0..9 and a detection with the same
	// box; converted to VOC's 1..10 inclusive coordinates they match.
	images := []ImageResult{{ID: 1, Name: "000001",
		GT:   []GTObject{{Box: box.Box{X2: 10, Y2: 10}, Label: 0}, {Box: box.Box{X1: 50, Y1: 50, X2: 60, Y2: 60}, Label: 0, Difficult: true}},
		Dets: []Detection{{Box: box.Box{X2: 10, Y2: 10}, Label: 0, Score: 0.9}, {Box: box.Box{X1: 50, Y1: 50, X2: 60, Y2: 60}, Label: 0, Score: 0.95}}}}
	r, err := EvaluateVOCImages(images, []string{"cat", "dog"}, VOCArea)
	if err != nil {
		t.Fatal(err)
	}
	if r.PerClass[0].AP != 1 || r.PerClass[0].NPos != 1 {
		t.Errorf("cat: %+v, want AP 1 with 1 positive (the difficult one ignored)", r.PerClass[0])
	}
	if r.PerClass[1].AP != 0 || r.MAP != 0.5 {
		t.Errorf("dog without objects or detections: AP %v, mAP %v; want 0 (no detections), 0.5", r.PerClass[1].AP, r.MAP)
	}
	if got := VOCBoxFrom(box.Box{X1: 0, Y1: 1, X2: 10, Y2: 11}); got != (VOCBox{1, 2, 10, 11}) {
		t.Errorf("VOCBoxFrom = %v", got)
	}
}

func TestVOCNoPositives(t *testing.T) {
	// A class with only difficult objects and a detection: recall 0/0.
	images := []VOCImage{{Name: "a", Objects: []VOCObject{{Class: "x", Box: VOCBox{1, 1, 10, 10}, Difficult: true}}}}
	dets := []VOCDetection{{Image: "a", Class: "x", Score: 0.5, Box: VOCBox{100, 100, 110, 110}}}
	for _, tt := range []struct {
		m     VOCMetric
		isNaN bool
	}{{VOC07, false}, {VOCArea, true}} {
		r, err := EvaluateVOC(images, dets, []string{"x"}, tt.m)
		if err != nil {
			t.Fatal(err)
		}
		if ap := r.PerClass[0].AP; math.IsNaN(ap) != tt.isNaN || (!tt.isNaN && ap != 0) {
			t.Errorf("%v: AP %v, want NaN=%v (0 otherwise)", tt.m, ap, tt.isNaN)
		}
		var out strings.Builder
		if err := r.WriteJSON(&out); err != nil {
			t.Fatal(err)
		}
		if tt.isNaN && !strings.Contains(out.String(), `"ap":null`) {
			t.Errorf("JSON %s: want null AP", out.String())
		}
	}
}

func TestVOCBadInput(t *testing.T) {
	images := []VOCImage{{Name: "000001"}}
	if _, err := EvaluateVOC(images, []VOCDetection{{Image: "000009", Class: "cat", Score: 1}}, []string{"cat"}, VOC07); err == nil ||
		!strings.Contains(err.Error(), `"000009"`) {
		t.Errorf("unknown image: error %v", err)
	}
	tests := []struct {
		name, line, wantErr string
	}{
		{name: "too few fields", line: "000001 0.5 1 2 3", wantErr: "line 2: 5 fields"},
		{name: "bad number", line: "000001 0.5 1 2 3 x", wantErr: `line 2: field 6: bad number "x"`},
		{name: "NaN score", line: "000001 nan 1 2 3 4", wantErr: "line 2: field 2 is NaN"},
		{name: "infinite coordinate", line: "000001 0.5 1 2 inf 4", wantErr: "line 2: field 5 is +Inf"},
		{name: "negative width", line: "000001 0.5 10 2 3 4", wantErr: "line 2: box"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := voc.ResultsFile(dir, "test", "cat")
			writeFile(t, path, "000001 0.9 1 1 5 5\n"+tt.line+"\n")
			_, _, err := ReadVOCDetections(dir, "test", []string{"cat"})
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one naming %s and %q", err, path, tt.wantErr)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, voc.ResultsFile(dir, "test", "cat"), "000001 0.9 1 1 5 5\n")
		dets, missing, err := ReadVOCDetections(dir, "test", []string{"cat", "dog"})
		if err != nil || len(dets) != 1 || !slices.Equal(missing, []string{"dog"}) {
			t.Errorf("dets %v missing %v err %v", dets, missing, err)
		}
	})
}

// TestImageEvalMatches checks the per-image results on the fixture
// coco_gt_id_zero: each detection matches its identical GT at every
// threshold, and MatchedGT reports pycocotools' dtMatches value, 0 for the
// GT whose id is 0.
func TestImageEvalMatches(t *testing.T) {
	dir := "testdata/detection-eval/coco_gt_id_zero/"
	gt, err := ReadCOCOGroundTruth(dir + "gt.json")
	if err != nil {
		t.Fatal(err)
	}
	dets, err := ReadCOCOResults(dir + "dets.json")
	if err != nil {
		t.Fatal(err)
	}
	p := DefaultParams([]int64{1}, []int64{1})
	evals := EvaluateImages(gt.Annotations, dets, p)
	if len(evals) != 1 || evals[0] == nil {
		t.Fatalf("evals %v", evals)
	}
	e := evals[0]
	if !slices.Equal(e.DtIDs, []int64{1, 2, 3}) || !slices.Equal(e.DtScores, []float64{0.9, 0.8, 0.7}) {
		t.Fatalf("detections %v %v", e.DtIDs, e.DtScores)
	}
	// area "all": GT order unchanged; "large" (a=3): only id 6 is not ignored.
	if !slices.Equal(e.GtIDs[:3], []int64{0, 5, 6}) || !slices.Equal(e.GtIDs[9:12], []int64{6, 0, 5}) {
		t.Errorf("GT order %v", e.GtIDs)
	}
	for tt := range p.IoUThresholds {
		for d, want := range []int64{0, 5, 6} {
			if got := e.MatchedGT(0, tt, d); got != want {
				t.Errorf("threshold %d detection %d matched GT %d, want %d", tt, d, got, want)
			}
		}
		if e.DtMatches[tt*3] != 1 {
			t.Errorf("threshold %d: detection 0 not matched to GT position 0", tt)
		}
	}
}
