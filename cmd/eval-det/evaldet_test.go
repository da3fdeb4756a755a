package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"resdet/internal/cli"
	"resdet/internal/cli/clitest"
)

const fixtures = "../../eval/testdata/detection-eval"

func TestNewCmdEvalDetFlags(t *testing.T) {
	tests := []struct {
		name    string
		argv    []string
		want    EvalOptions
		wantErr string
	}{
		{name: "defaults", argv: []string{"--gt", "gt.json", "--dets", "dets.json"},
			want: EvalOptions{GT: "gt.json", Dets: "dets.json", Split: "test"}},
		{name: "all flags", argv: []string{"--gt", "VOC2007", "--dets", "res", "--metric", "voc", "--split", "val", "--classes", "cat,dog", "--json"},
			want: EvalOptions{GT: "VOC2007", Dets: "res", Metric: "voc", Split: "val", Classes: "cat,dog", JSON: true}},
		{name: "equals form", argv: []string{"--gt=g", "--dets=d", "--metric=voc07"},
			want: EvalOptions{GT: "g", Dets: "d", Metric: "voc07", Split: "test"}},
		{name: "missing gt", argv: []string{"--dets", "d"}, wantErr: `"gt" not set`},
		{name: "missing dets", argv: []string{"--gt", "g"}, wantErr: `"dets" not set`},
		{name: "positional argument", argv: []string{"--gt", "g", "--dets", "d", "extra"}, wantErr: "unknown command"},
		{name: "unknown flag", argv: []string{"--gt", "g", "--dets", "d", "--iou", "0.5"}, wantErr: "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, _, _ := cli.Test()
			var got *EvalOptions
			if !clitest.Execute(t, NewCmdEvalDet(ios, func(o *EvalOptions) error { got = o; return nil }), ios, tt.argv, tt.wantErr) {
				return
			}
			got.IO = nil
			if *got != tt.want {
				t.Errorf("options %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func run(t *testing.T, o EvalOptions) (stdout, stderr string, err error) {
	t.Helper()
	ios, _, out, errOut := cli.Test()
	o.IO = ios
	if o.Split == "" {
		o.Split = "test"
	}
	err = runEvalDet(&o)
	return out.String(), errOut.String(), err
}

type cocoExpected struct {
	Stats       []float64 `json:"stats"`
	PerCategory []struct {
		CategoryID int64   `json:"category_id"`
		AP         float64 `json:"ap"`
		AP50       float64 `json:"ap50"`
		AP75       float64 `json:"ap75"`
		AR100      float64 `json:"ar100"`
	} `json:"per_category"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// summaryLines are pycocotools' 12 summary lines with the values left out.
var summaryLines = []string{
	" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = ",
	" Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = ",
	" Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = ",
	" Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = ",
	" Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = ",
	" Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = ",
	" Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = ",
	" Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = ",
	" Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = ",
	" Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = ",
	" Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = ",
	" Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = ",
}

func TestCOCOFixturesText(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(fixtures, "coco_*"))
	if len(dirs) == 0 {
		t.Fatal("no fixtures")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var want cocoExpected
			readJSON(t, filepath.Join(dir, "expected.json"), &want)
			out, _, err := run(t, EvalOptions{GT: filepath.Join(dir, "gt.json"), Dets: filepath.Join(dir, "dets.json")})
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(out, "\n")
			for i, prefix := range summaryLines {
				if w := fmt.Sprintf("%s%0.3f", prefix, want.Stats[i]); lines[i] != w {
					t.Errorf("line %d:\n got %q\nwant %q", i+1, lines[i], w)
				}
			}
		})
	}
}

func TestCOCOFixturesJSON(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(fixtures, "coco_*"))
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var want cocoExpected
			readJSON(t, filepath.Join(dir, "expected.json"), &want)
			out, _, err := run(t, EvalOptions{GT: filepath.Join(dir, "gt.json"), Dets: filepath.Join(dir, "dets.json"), JSON: true})
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Metric      string    `json:"metric"`
				Stats       []float64 `json:"stats"`
				PerCategory []struct {
					ID                    int64
					Name                  string
					AP, AP50, AP75, AR100 float64
				} `json:"per_category"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			if got.Metric != "coco" || len(got.Stats) != 12 || len(got.PerCategory) != len(want.PerCategory) {
				t.Fatalf("output %s", out)
			}
			for i := range want.Stats {
				if math.Abs(got.Stats[i]-want.Stats[i]) > 1e-9 {
					t.Errorf("stats[%d] = %v, want %v", i, got.Stats[i], want.Stats[i])
				}
			}
			for k, w := range want.PerCategory {
				g := got.PerCategory[k]
				if g.ID != w.CategoryID || g.Name == "" || math.Abs(g.AP-w.AP) > 1e-9 || math.Abs(g.AP50-w.AP50) > 1e-9 ||
					math.Abs(g.AP75-w.AP75) > 1e-9 || math.Abs(g.AR100-w.AR100) > 1e-9 {
					t.Errorf("category %d: %+v, want %+v", k, g, w)
				}
			}
		})
	}
}

// writeVOCFolder writes a VOC fixture case as a VOC year folder
// (Annotations/<id>.xml, ImageSets/Main/test.txt) and a results folder
// (comp4_det_test_<class>.txt), the formats eval-det reads.
func writeVOCFolder(t *testing.T, dir string) (gtDir, detDir string, classes []string) {
	t.Helper()
	var g struct {
		Classes []string `json:"classes"`
		Images  []struct {
			Name          string `json:"name"`
			Width, Height int
			Objects       []struct {
				Name      string     `json:"name"`
				BBox      [4]float64 `json:"bbox"`
				Difficult int        `json:"difficult"`
			} `json:"objects"`
		} `json:"images"`
	}
	readJSON(t, filepath.Join(dir, "gt.json"), &g)
	var dets []struct {
		Image, Class string
		Score        float64
		BBox         [4]float64
	}
	readJSON(t, filepath.Join(dir, "dets.json"), &dets)
	root := t.TempDir()
	gtDir, detDir = filepath.Join(root, "VOC2007"), filepath.Join(root, "results")
	for _, d := range []string{filepath.Join(gtDir, "Annotations"), filepath.Join(gtDir, "ImageSets", "Main"), detDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var list strings.Builder
	for _, im := range g.Images {
		fmt.Fprintln(&list, im.Name)
		var x strings.Builder
		fmt.Fprintf(&x, "<annotation>\n\t<folder>VOC2007</folder>\n\t<filename>%s.jpg</filename>\n\t<size><width>%d</width><height>%d</height><depth>3</depth></size>\n", im.Name, im.Width, im.Height)
		for _, o := range im.Objects {
			fmt.Fprintf(&x, "\t<object>\n\t\t<name>%s</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n\t\t<difficult>%d</difficult>\n\t\t<bndbox><xmin>%g</xmin><ymin>%g</ymin><xmax>%g</xmax><ymax>%g</ymax></bndbox>\n\t</object>\n",
				o.Name, o.Difficult, o.BBox[0], o.BBox[1], o.BBox[2], o.BBox[3])
		}
		x.WriteString("</annotation>\n")
		if err := os.WriteFile(filepath.Join(gtDir, "Annotations", im.Name+".xml"), []byte(x.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(gtDir, "ImageSets", "Main", "test.txt"), []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	files := map[string]*strings.Builder{}
	for _, d := range dets {
		if files[d.Class] == nil {
			files[d.Class] = &strings.Builder{}
		}
		fmt.Fprintf(files[d.Class], "%s %v %.1f %.1f %.1f %.1f\n", d.Image, d.Score, d.BBox[0], d.BBox[1], d.BBox[2], d.BBox[3])
	}
	for c, b := range files {
		if err := os.WriteFile(filepath.Join(detDir, "comp4_det_test_"+c+".txt"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return gtDir, detDir, g.Classes
}

func TestVOCFixtures(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(fixtures, "voc_*"))
	if len(dirs) == 0 {
		t.Fatal("no fixtures")
	}
	for _, dir := range dirs {
		gtDir, detDir, classes := writeVOCFolder(t, dir)
		var want struct {
			PerClass []struct {
				Class string
				NPos  int
				AP    *float64 `json:"ap"`
				AP07  *float64 `json:"ap_07"`
			} `json:"per_class"`
			MAP   *float64 `json:"map"`
			MAP07 *float64 `json:"map_07"`
		}
		readJSON(t, filepath.Join(dir, "expected.json"), &want)
		for _, metric := range []string{"", "voc07", "voc"} {
			t.Run(filepath.Base(dir)+"/"+metric, func(t *testing.T) {
				out, _, err := run(t, EvalOptions{GT: gtDir, Dets: detDir, Metric: metric, Classes: strings.Join(classes, ","), JSON: true})
				if err != nil {
					t.Fatal(err)
				}
				var got struct {
					Metric   string `json:"metric"`
					PerClass []struct {
						Class string   `json:"class"`
						NPos  int      `json:"npos"`
						AP    *float64 `json:"ap"`
					} `json:"per_class"`
					MAP *float64 `json:"map"`
				}
				if err := json.Unmarshal([]byte(out), &got); err != nil {
					t.Fatalf("output %q: %v", out, err)
				}
				wantMetric := metric
				if metric == "" {
					wantMetric = "voc07"
				}
				if got.Metric != wantMetric || len(got.PerClass) != len(want.PerClass) {
					t.Fatalf("output %s", out)
				}
				same := func(a, b *float64) bool {
					if a == nil || b == nil {
						return a == nil && b == nil
					}
					return math.Abs(*a-*b) <= 1e-9
				}
				for k, w := range want.PerClass {
					wap := w.AP
					if wantMetric == "voc07" {
						wap = w.AP07
					}
					g := got.PerClass[k]
					if g.Class != w.Class || g.NPos != w.NPos || !same(g.AP, wap) {
						t.Errorf("class %d: %s npos %d ap %v, want %s npos %d ap %v", k, g.Class, g.NPos, g.AP, w.Class, w.NPos, wap)
					}
				}
				wmap := want.MAP
				if wantMetric == "voc07" {
					wmap = want.MAP07
				}
				if !same(got.MAP, wmap) {
					t.Errorf("map %v, want %v", got.MAP, wmap)
				}
			})
		}
	}
}

func TestRunEvalDetErrors(t *testing.T) {
	dir := t.TempDir()
	gt := filepath.Join(fixtures, "coco_crowd", "gt.json")
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	vocGT, vocDets, _ := writeVOCFolder(t, filepath.Join(fixtures, "voc_basic"))
	tests := []struct {
		name    string
		o       EvalOptions
		wantErr []string
	}{
		{name: "unknown image id", o: EvalOptions{GT: gt, Dets: write("unknown.json", `[{"image_id":1,"category_id":1,"bbox":[1,1,5,5],"score":0.5},{"image_id":42,"category_id":1,"bbox":[1,1,5,5],"score":0.5}]`)},
			wantErr: []string{"unknown.json", "image id 42"}},
		{name: "NaN score", o: EvalOptions{GT: gt, Dets: write("nan.json", `[{"image_id":1,"category_id":1,"bbox":[1,1,5,5],"score":NaN}]`)},
			wantErr: []string{"nan.json", "entry 0", "score is NaN"}},
		{name: "negative width", o: EvalOptions{GT: gt, Dets: write("neg.json", `[{"image_id":1,"category_id":1,"bbox":[1,1,-5,5],"score":0.1}]`)},
			wantErr: []string{"neg.json", "entry 0", "negative"}},
		{name: "malformed results", o: EvalOptions{GT: gt, Dets: write("bad.json", `[{"image_id":1,`)},
			wantErr: []string{"bad.json", "entry 0"}},
		{name: "malformed gt", o: EvalOptions{GT: write("badgt.json", `{"images": [}`), Dets: write("empty.json", `[]`)},
			wantErr: []string{"badgt.json", "images"}},
		{name: "missing gt", o: EvalOptions{GT: filepath.Join(dir, "nope.json"), Dets: gt}, wantErr: []string{"--gt", "nope.json"}},
		{name: "coco metric on VOC folder", o: EvalOptions{GT: vocGT, Dets: vocDets, Metric: "coco"}, wantErr: []string{"--metric coco", "folder"}},
		{name: "voc metric on JSON", o: EvalOptions{GT: gt, Dets: gt, Metric: "voc"}, wantErr: []string{"--metric voc", "VOC year folder"}},
		{name: "unknown metric", o: EvalOptions{GT: gt, Dets: gt, Metric: "map"}, wantErr: []string{`unknown metric "map"`}},
		{name: "classes with COCO", o: EvalOptions{GT: gt, Dets: gt, Classes: "a,b"}, wantErr: []string{"--classes"}},
		{name: "no result files", o: EvalOptions{GT: vocGT, Dets: t.TempDir(), Classes: "car"}, wantErr: []string{"no result file", "comp4_det_test_car.txt"}},
		{name: "wrong split", o: EvalOptions{GT: vocGT, Dets: vocDets, Split: "val"}, wantErr: []string{"val"}},
		{name: "duplicate class", o: EvalOptions{GT: vocGT, Dets: vocDets, Classes: "car,car"}, wantErr: []string{`"car" is listed twice`}},
		{name: "unknown VOC image", o: EvalOptions{GT: vocGT, Dets: filepath.Dir(write("comp4_det_test_car.txt", "999999 0.5 1 1 5 5\n")), Classes: "car"},
			wantErr: []string{"comp4_det_test_car.txt: detection 1", `image "999999" is not in the image set test`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, tt.o)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRunEvalDetCOCOInputRules(t *testing.T) {
	dir := t.TempDir()
	gt := filepath.Join(fixtures, "coco_perfect_single", "gt.json")
	empty := filepath.Join(dir, "empty.json")
	if err := os.WriteFile(empty, []byte("[]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("empty results", func(t *testing.T) {
		out, _, err := run(t, EvalOptions{GT: gt, Dets: empty, JSON: true})
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Stats []float64 }
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Stats) != 12 || got.Stats[0] != 0 || got.Stats[8] != 0 {
			t.Errorf("stats %v, want AP and AR100 0", got.Stats)
		}
	})
	t.Run("unknown category counted", func(t *testing.T) {
		dets := filepath.Join(dir, "dets.json")
		if err := os.WriteFile(dets, []byte(`[{"image_id":1,"category_id":77,"bbox":[1,1,5,5],"score":0.5}]`), 0o644); err != nil {
			t.Fatal(err)
		}
		_, stderr, err := run(t, EvalOptions{GT: gt, Dets: dets, JSON: true})
		if err != nil || !strings.Contains(stderr, "dropped 1 detections") {
			t.Errorf("err %v, stderr %q", err, stderr)
		}
		out, _, err := run(t, EvalOptions{GT: gt, Dets: dets})
		if err != nil || !strings.Contains(out, "dropped 1 detections of categories not in the ground truth") {
			t.Errorf("err %v, text output %q", err, out)
		}
	})
}

func TestVOCClassesFile(t *testing.T) {
	gtDir, detDir, classes := writeVOCFolder(t, filepath.Join(fixtures, "voc_class_without_dets"))
	list := filepath.Join(t.TempDir(), "classes.txt")
	if err := os.WriteFile(list, []byte(strings.Join(classes, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := run(t, EvalOptions{GT: gtDir, Dets: detDir, Classes: list})
	if err != nil {
		t.Fatal(err)
	}
	// Expected AP_07 values of the fixture: bird 0, cat 0.8485, cow 0; mAP 0.2828.
	for _, w := range []string{"bird", "cat", "cow", "0.8485", "mAP", "0.2828"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if !strings.Contains(stderr, "class cow has no detections") {
		t.Errorf("stderr %q: want a note about the missing cow file", stderr)
	}
}

// TestVOCDevkitReading checks that the VOC ground truth is read as the devkit
// reads it: objects of classes not evaluated are left out, and boxes beyond
// the <size> the XML declares are taken as they are.
func TestVOCDevkitReading(t *testing.T) {
	gtDir, detDir, classes := writeVOCFolder(t, filepath.Join(fixtures, "voc_basic"))
	o := EvalOptions{GT: gtDir, Dets: detDir, Classes: strings.Join(classes, ","), JSON: true}
	want, _, err := run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(gtDir, "Annotations", "*.xml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := regexp.MustCompile(`<width>\d+</width><height>\d+</height>`).ReplaceAllString(string(data), "<width>2</width><height>2</height>")
		s = strings.Replace(s, "</annotation>", "\t<object><name>unicorn</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>\n</annotation>", 1)
		if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := run(t, o)
	if err != nil {
		t.Fatalf("devkit-style annotations refused: %v", err)
	}
	if got != want {
		t.Errorf("results changed:\n got %s\nwant %s", got, want)
	}
}
