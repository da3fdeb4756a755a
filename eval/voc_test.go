package eval

import (
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// vocFixtureGT is the fixtures' JSON image of VOC annotation XML files.
type vocFixtureGT struct {
	Classes []string `json:"classes"`
	Images  []struct {
		Name    string `json:"name"`
		Objects []struct {
			Name      string     `json:"name"`
			BBox      [4]float64 `json:"bbox"`
			Difficult int        `json:"difficult"`
		} `json:"objects"`
	} `json:"images"`
}

type vocFixtureDet struct {
	Image string     `json:"image"`
	Class string     `json:"class"`
	Score float64    `json:"score"`
	BBox  [4]float64 `json:"bbox"`
}

type vocExpected struct {
	Kind     string `json:"kind"`
	PerClass []struct {
		Class   string   `json:"class"`
		NPos    int      `json:"npos"`
		NumDets int      `json:"num_dets"`
		AP      *float64 `json:"ap"`
		AP07    *float64 `json:"ap_07"`
	} `json:"per_class"`
	MAP   *float64 `json:"map"`
	MAP07 *float64 `json:"map_07"`
}

// loadVOCFixture reads a VOC fixture case into the evaluator's types.
func loadVOCFixture(t *testing.T, dir string) ([]string, []VOCImage, []VOCDetection, vocExpected) {
	t.Helper()
	var g vocFixtureGT
	readJSON(t, filepath.Join(dir, "gt.json"), &g)
	var fd []vocFixtureDet
	readJSON(t, filepath.Join(dir, "dets.json"), &fd)
	var want vocExpected
	readJSON(t, filepath.Join(dir, "expected.json"), &want)
	if want.Kind != "voc" {
		t.Fatalf("kind %q", want.Kind)
	}
	images := make([]VOCImage, len(g.Images))
	for i, im := range g.Images {
		images[i].Name = im.Name
		for _, o := range im.Objects {
			images[i].Objects = append(images[i].Objects, VOCObject{Class: o.Name, Box: VOCBox(o.BBox), Difficult: o.Difficult != 0})
		}
	}
	dets := make([]VOCDetection, len(fd))
	for i, d := range fd {
		dets[i] = VOCDetection{Image: d.Image, Class: d.Class, Score: d.Score, Box: VOCBox(d.BBox)}
	}
	return g.Classes, images, dets, want
}

// nullable turns the fixtures' null (NaN) into NaN.
func nullable(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func TestVOCFixtures(t *testing.T) {
	for _, dir := range fixtureDirs(t, "voc") {
		classes, images, dets, want := loadVOCFixture(t, dir)
		for _, m := range []VOCMetric{VOC07, VOCArea} {
			t.Run(filepath.Base(dir)+"/"+m.String(), func(t *testing.T) {
				r, err := EvaluateVOC(images, dets, classes, m)
				if err != nil {
					t.Fatal(err)
				}
				if len(r.PerClass) != len(want.PerClass) {
					t.Fatalf("%d classes, want %d", len(r.PerClass), len(want.PerClass))
				}
				for k, w := range want.PerClass {
					g := r.PerClass[k]
					if g.Class != w.Class || g.NPos != w.NPos || g.NumDets != w.NumDets {
						t.Errorf("class %d: %s npos %d dets %d, want %s npos %d dets %d", k, g.Class, g.NPos, g.NumDets, w.Class, w.NPos, w.NumDets)
					}
					wantAP := nullable(w.AP)
					if m == VOC07 {
						wantAP = nullable(w.AP07)
					}
					if !close(g.AP, wantAP) {
						t.Errorf("%s AP = %.17g, want %.17g", g.Class, g.AP, wantAP)
					}
				}
				wantMAP := nullable(want.MAP)
				if m == VOC07 {
					wantMAP = nullable(want.MAP07)
				}
				if !close(r.MAP, wantMAP) {
					t.Errorf("mAP = %.17g, want %.17g", r.MAP, wantMAP)
				}
			})
		}
	}
}

// TestReadVOCGroundTruth reads a VOC folder as the devkit does: objects of
// classes not evaluated are left out, boxes are kept as written even beyond
// <size>, difficult flags are kept.
func TestReadVOCGroundTruth(t *testing.T) {
	xmlFile := func(objs ...string) string {
		return "<annotation><size><width>10</width><height>10</height></size>" + strings.Join(objs, "") + "</annotation>"
	}
	obj := func(name, difficult, bndbox string) string {
		return "<object><name>" + name + "</name><difficult>" + difficult + "</difficult><bndbox>" + bndbox + "</bndbox></object>"
	}
	box := func(c [4]int) string {
		return fmt.Sprintf("<xmin>%d</xmin><ymin>%d</ymin><xmax>%d</xmax><ymax>%d</ymax>", c[0], c[1], c[2], c[3])
	}
	files := map[string]string{
		"Annotations/a.xml":       xmlFile(obj("car", "0", box([4]int{1, 2, 30, 40})), obj("unicorn", "0", box([4]int{1, 1, 2, 2})), obj("dog", "1", box([4]int{3, 3, 4, 4}))),
		"Annotations/b.xml":       xmlFile(),
		"ImageSets/Main/test.txt": "a\n\nb\n",
		"ImageSets/Main/dup.txt":  "a\nb\na\n",
		"ImageSets/Main/gone.txt": "a\nc\n",
	}
	root := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(root, name), content)
	}
	got, err := ReadVOCGroundTruth(root, "test", []string{"dog", "car"})
	want := []VOCImage{
		{Name: "a", Objects: []VOCObject{{Class: "car", Box: VOCBox{1, 2, 30, 40}}, {Class: "dog", Box: VOCBox{3, 3, 4, 4}, Difficult: true}}},
		{Name: "b"},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v (%v)\nwant %+v", got, err, want)
	}
	for _, tt := range []struct{ split, wantErr string }{
		{split: "dup", wantErr: `dup.txt: line 3: duplicate image id "a" (first on line 1)`},
		{split: "gone", wantErr: "Annotations/c.xml: no such file"},
		{split: "none", wantErr: `image set "none"`},
	} {
		if _, err := ReadVOCGroundTruth(root, tt.split, []string{"car"}); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("split %s: error %v, want one containing %q", tt.split, err, tt.wantErr)
		}
	}
}
