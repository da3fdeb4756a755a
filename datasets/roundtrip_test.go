package datasets

import (
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"resdet/box"
)

// randomSet builds a set of n records with random integer-coordinate VOC-like
// objects (boxes of at least one pixel inside the image), random flags, and
// (when frac) some fractional coordinates.
func randomSet(rng *rand.Rand, n int, classes []string, frac bool) *Set {
	s := &Set{Classes: classes}
	for i := range n {
		w, h := 16+rng.IntN(600), 16+rng.IntN(600)
		r := Record{ID: int64(i), Name: "img" + strconv.Itoa(1000+i), Width: w, Height: h}
		r.ImagePath = filepath.Join("JPEGImages", r.Name+".jpg")
		for range rng.IntN(6) {
			x1, y1 := rng.IntN(w), rng.IntN(h)
			x2, y2 := x1+1+rng.IntN(w-x1), y1+1+rng.IntN(h-y1)
			b := box.Box{X1: float32(x1), Y1: float32(y1), X2: float32(x2), Y2: float32(y2)}
			if frac && rng.IntN(3) == 0 {
				b.X1 += rng.Float32() * 0.9
				b.Y2 -= rng.Float32() * 0.9
			}
			r.Objects = append(r.Objects, Object{
				Box: b, Label: rng.IntN(len(classes)), Area: b.Area(),
				Difficult: rng.IntN(4) == 0, Truncated: rng.IntN(3) == 0,
			})
		}
		s.Records = append(s.Records, r)
	}
	return s
}

func TestRoundTripVOCAndCOCO(t *testing.T) {
	classes := []string{"circle", "square", "triangle", "ellipse", "star", "cross"}
	for _, frac := range []bool{false, true} {
		t.Run("fractional="+strconv.FormatBool(frac), func(t *testing.T) {
			want := randomSet(rand.New(rand.NewPCG(7, 8)), 60, classes, frac)
			dir := t.TempDir()

			// VOC: ids are the split positions, paths under root.
			root := filepath.Join(dir, "VOC2007")
			if err := WriteVOC(root, "trainval", want); err != nil {
				t.Fatal(err)
			}
			voc, err := ReadVOC(root, "trainval", VOCOptions{Classes: classes, KeepDifficult: true})
			if err != nil {
				t.Fatal(err)
			}
			wantVOC := cloneSet(want)
			for i := range wantVOC.Records {
				wantVOC.Records[i].ImagePath = filepath.Join(root, "JPEGImages", wantVOC.Records[i].Name+".jpg")
			}
			if !reflect.DeepEqual(voc, wantVOC) {
				t.Errorf("VOC round trip:\n got %+v\nwant %+v", voc, wantVOC)
			}

			// COCO: category ids label+1, annotation ids 1..N, names the
			// image file names.
			path := filepath.Join(dir, "instances_trainval.json")
			if err := WriteCOCO(path, want); err != nil {
				t.Fatal(err)
			}
			coco, err := ReadCOCO(path, "images", COCOOptions{})
			if err != nil {
				t.Fatal(err)
			}
			wantCOCO := cloneSet(want)
			wantCOCO.CategoryIDs = []int{1, 2, 3, 4, 5, 6}
			next := int64(1)
			for i := range wantCOCO.Records {
				r := &wantCOCO.Records[i]
				r.Name += ".jpg"
				r.ImagePath = filepath.Join("images", r.Name)
				for j := range r.Objects {
					r.Objects[j].ID = next
					next++
				}
			}
			if !reflect.DeepEqual(coco, wantCOCO) {
				t.Errorf("COCO round trip:\n got %+v\nwant %+v", coco, wantCOCO)
			}

			// Writing the COCO set again keeps its ids and category ids.
			path2 := filepath.Join(dir, "again.json")
			if err := WriteCOCO(path2, coco); err != nil {
				t.Fatal(err)
			}
			again, err := ReadCOCO(path2, "images", COCOOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again, coco) {
				t.Errorf("COCO second round trip differs")
			}
		})
	}
}

func cloneSet(s *Set) *Set {
	c := &Set{Classes: append([]string(nil), s.Classes...), CategoryIDs: append([]int(nil), s.CategoryIDs...)}
	if s.CategoryIDs == nil {
		c.CategoryIDs = nil
	}
	for _, r := range s.Records {
		r.Objects = append([]Object(nil), r.Objects...)
		c.Records = append(c.Records, r)
	}
	return c
}

func TestWriteBadSets(t *testing.T) {
	classes := []string{"a", "b"}
	tests := []struct {
		name  string
		write func(dir string) error
		want  string
	}{
		{name: "voc duplicate names", write: func(dir string) error {
			return WriteVOC(dir, "train", &Set{Classes: classes, Records: []Record{{Name: "x", Width: 1, Height: 1}, {Name: "x", Width: 1, Height: 1}}})
		}, want: `voc: record 1: duplicate image name "x"`},
		{name: "voc empty name", write: func(dir string) error {
			return WriteVOC(dir, "train", &Set{Classes: classes, Records: []Record{{Width: 1, Height: 1}}})
		}, want: `voc: record 0: image name "" is not a valid VOC image id`},
		{name: "coco duplicate image ids", write: func(dir string) error {
			return WriteCOCO(filepath.Join(dir, "x.json"), &Set{Classes: classes, Records: []Record{{ID: 3}, {ID: 3}}})
		}, want: "record 1: duplicate image id 3"},
		{name: "coco label out of range", write: func(dir string) error {
			return WriteCOCO(filepath.Join(dir, "x.json"), &Set{Classes: classes, Records: []Record{{ID: 3, Objects: []Object{{Label: -1}}}}})
		}, want: "record 0 object 0: label -1 out of range [0, 2)"},
		{name: "coco category ids not parallel", write: func(dir string) error {
			return WriteCOCO(filepath.Join(dir, "x.json"), &Set{Classes: classes, CategoryIDs: []int{1}})
		}, want: "1 category ids for 2 classes"},
		{name: "missing directory", write: func(dir string) error {
			return WriteCOCO(filepath.Join(dir, "no", "x.json"), &Set{Classes: classes})
		}, want: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.write(t.TempDir())
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			checkErr(t, err, []string{tt.want}, true)
		})
	}
}
