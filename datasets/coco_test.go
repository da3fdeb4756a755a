package datasets

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"resdet/box"
)

func TestReadCOCOFixture(t *testing.T) {
	// crowd_gt.json comes from the shared detection-eval fixtures
	// (coco_crowd), generated outside this package.
	s, err := ReadCOCO("testdata/coco/crowd_gt.json", "images", COCOOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := &Set{
		Classes:     []string{"cat1", "cat2"},
		CategoryIDs: []int{1, 2},
		Records: []Record{
			{ID: 1, Name: "000000000001.jpg", ImagePath: filepath.Join("images", "000000000001.jpg"), Width: 640, Height: 480, Objects: []Object{
				{ID: 1, Box: box.Box{X1: 50, Y1: 50, X2: 150, Y2: 150}, Label: 0, Area: 10000},
				{ID: 2, Box: box.Box{X1: 300, Y1: 50, X2: 500, Y2: 250}, Label: 0, Area: 30000, Crowd: true},
				{ID: 3, Box: box.Box{X1: 280, Y1: 300, X2: 340, Y2: 360}, Label: 0, Area: 3600},
				{ID: 4, Box: box.Box{X1: 260, Y1: 250, X2: 320, Y2: 310}, Label: 0, Area: 3600},
			}},
			{ID: 2, Name: "000000000002.jpg", ImagePath: filepath.Join("images", "000000000002.jpg"), Width: 640, Height: 480, Objects: []Object{
				{ID: 5, Box: box.Box{X1: 100, Y1: 100, X2: 400, Y2: 300}, Label: 1, Area: 45000, Crowd: true},
				{ID: 6, Box: box.Box{X1: 10, Y1: 10, X2: 50, Y2: 50}, Label: 0, Area: 1600},
			}},
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
}

// A document with the sections in an unusual order, unknown sections,
// category ids with gaps out of order, polygon and RLE segmentations, an
// annotation without area and an image without annotations.
const cocoOddDoc = `{
 "info": {"description": "odd", "nested": [1, [2, {"a": null}]], "year": 2017},
 "annotations": [
  {"segmentation": [[10.5, 20, 30, 20, 30, 40.25, 10.5, 40.25]], "area": 123.5, "iscrowd": 0, "image_id": 397133, "bbox": [10.5, 20, 19.5, 20.25], "category_id": 18, "id": 1768},
  {"segmentation": {"counts": [272, 2, 4, 4, 4, 4, 2, 9, 1], "size": [427, 640]}, "area": 5000, "iscrowd": 1, "image_id": 397133, "bbox": [0, 0, 640, 427], "category_id": 1, "id": 900100397133},
  {"segmentation": {"counts": "PPXh0", "size": [10, 10]}, "image_id": 37777, "bbox": [1, 2, 3, 4], "category_id": 90, "id": 7},
  {"image_id": 397133, "bbox": [100, 100, 0, 0], "category_id": 1, "id": 8, "iscrowd": 0, "area": 0}
 ],
 "licenses": [{"url": "http://x", "id": 1, "name": "y"}],
 "images": [
  {"license": 4, "file_name": "000000397133.jpg", "coco_url": "http://z", "height": 427, "width": 640, "date_captured": "2013-11-14 17:02:52", "id": 397133},
  {"id": 37777, "file_name": "000000037777.jpg", "height": 230, "width": 352},
  {"id": 252219, "file_name": "000000252219.jpg", "height": 428, "width": 640}
 ],
 "categories": [
  {"supercategory": "accessory", "id": 90, "name": "toothbrush"},
  {"supercategory": "person", "id": 1, "name": "person"},
  {"supercategory": "animal", "id": 18, "name": "dog"}
 ]
}`

func TestReadCOCOOddDocument(t *testing.T) {
	path := filepath.Join(t.TempDir(), "instances_odd.json")
	writeFiles(t, filepath.Dir(path), map[string]string{filepath.Base(path): cocoOddDoc})
	s, err := ReadCOCO(path, "", COCOOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := &Set{
		Classes:     []string{"person", "dog", "toothbrush"},
		CategoryIDs: []int{1, 18, 90},
		Records: []Record{
			{ID: 397133, Name: "000000397133.jpg", ImagePath: "000000397133.jpg", Width: 640, Height: 427, Objects: []Object{
				{ID: 1768, Box: box.Box{X1: 10.5, Y1: 20, X2: 30, Y2: 40.25}, Label: 1, Area: 123.5},
				{ID: 900100397133, Box: box.Box{X1: 0, Y1: 0, X2: 640, Y2: 427}, Label: 0, Area: 5000, Crowd: true},
				{ID: 8, Box: box.Box{X1: 100, Y1: 100, X2: 100, Y2: 100}, Label: 0, Area: 0},
			}},
			{ID: 37777, Name: "000000037777.jpg", ImagePath: "000000037777.jpg", Width: 352, Height: 230, Objects: []Object{
				{ID: 7, Box: box.Box{X1: 1, Y1: 2, X2: 4, Y2: 6}, Label: 2, Area: 12},
			}},
			{ID: 252219, Name: "000000252219.jpg", ImagePath: "000000252219.jpg", Width: 640, Height: 428},
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
}

func TestCOCOClasses(t *testing.T) {
	// coco_categories.txt is written by gen_coco_categories.py from
	// torchvision's COCO category list.
	data, err := os.ReadFile("testdata/coco_categories.txt")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		id, name, _ := strings.Cut(line, " ")
		var v float64
		if err := parseFloatInto(id, &v); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, int(v))
		names = append(names, name)
	}
	if got := COCOClasses(); !reflect.DeepEqual(got, names) {
		t.Errorf("COCOClasses = %v\nwant %v", got, names)
	}
	if got := COCOCategoryIDs(); !reflect.DeepEqual(got, ids) {
		t.Errorf("COCOCategoryIDs = %v\nwant %v", got, ids)
	}
	byID := COCOClassesByID()
	if len(byID) != 90 {
		t.Fatalf("COCOClassesByID has %d names, want 90", len(byID))
	}
	want := make(map[int]string)
	for i, id := range ids {
		want[id] = names[i]
	}
	var gaps []int
	for i, n := range byID {
		w, ok := want[i+1]
		if !ok {
			w = COCONoCategory
			gaps = append(gaps, i+1)
		}
		if n != w {
			t.Errorf("COCOClassesByID()[%d] (id %d) = %q, want %q", i, i+1, n, w)
		}
	}
	if want := []int{12, 26, 29, 30, 45, 66, 68, 69, 71, 83}; !reflect.DeepEqual(gaps, want) {
		t.Errorf("ids without a category %v, want %v", gaps, want)
	}
	voc := VOCClasses()
	if len(voc) != 20 || voc[0] != "aeroplane" || voc[14] != "person" || voc[19] != "tvmonitor" {
		t.Errorf("VOCClasses = %v", voc)
	}
}

// cocoDoc assembles an instances document from its three arrays' contents.
func cocoDoc(images, annotations, categories string) string {
	return `{"info": {}, "images": [` + images + `], "annotations": [` + annotations + `], "categories": [` + categories + `]}`
}

const (
	cocoImages = `{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
	{"id": 2, "file_name": "b.jpg", "width": 640, "height": 480},
	{"id": 3, "file_name": "c.jpg", "width": 640, "height": 480}`
	cocoCats = `{"id": 1, "name": "person"}, {"id": 3, "name": "car"}`
	cocoAnn1 = `{"id": 11, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0, "segmentation": [[10, 10, 30, 10, 30, 30]]}`
	cocoAnn3 = `{"id": 13, "image_id": 3, "category_id": 3, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0}`
)

// cocoAnns returns the annotations array content with bad (an annotation of
// image 2) between two valid ones.
func cocoAnns(bad string) string { return cocoAnn1 + ", " + bad + ", " + cocoAnn3 }

func TestReadCOCOBadInput(t *testing.T) {
	okAnn := `{"id": 12, "image_id": 2, "category_id": 3, "bbox": [600, 400, 40.5, 80.5], "iscrowd": 0}`
	tests := []struct {
		name       string
		doc        string
		opts       COCOOptions
		noImage    bool // do not create the file of image 2
		wantErr    []string
		fatal      bool // SkipBad does not help
		wantKept   int  // records kept with SkipBad; 0 means 2 (images 1 and 3)
		wantSkipns int  // entries in Skipped; 0 means 1
	}{
		{name: "valid, box within the 1 px slack", doc: cocoDoc(cocoImages, cocoAnns(okAnn), cocoCats)},
		{name: "truncated JSON", doc: `{"images": [{"id": 1,`, fatal: true, wantErr: []string{"coco: ", "instances.json: images[0]: ", "found end of file"}},
		{name: "syntax error", doc: cocoDoc(cocoImages, cocoAnns(`{"id": 12,, "image_id": 2}`), cocoCats), fatal: true,
			wantErr: []string{"instances.json: annotations[1]: ", "expected an object key, found ','"}},
		{name: "data after the document", doc: cocoDoc(cocoImages, "", cocoCats) + ` {}`, fatal: true,
			wantErr: []string{"instances.json: ", "after the top-level value"}},
		{name: "top level is an array", doc: `[` + cocoDoc(cocoImages, "", cocoCats) + `]`, fatal: true,
			wantErr: []string{"instances.json: ", `expected '{', found '['`}},
		{name: "images not an array", doc: `{"images": {"id": 1}, "categories": []}`, fatal: true,
			wantErr: []string{"instances.json: ", `"images": expected an array, found '{'`}},
		{name: "missing images", doc: `{"annotations": [], "categories": [` + cocoCats + `]}`, fatal: true,
			wantErr: []string{`instances.json: missing "images"`}},
		{name: "missing categories", doc: `{"images": [` + cocoImages + `], "annotations": []}`, fatal: true,
			wantErr: []string{`instances.json: missing "categories"`}},
		{name: "duplicate category id", doc: cocoDoc(cocoImages, "", cocoCats+`, {"id": 1, "name": "again"}`), fatal: true,
			wantErr: []string{"instances.json: categories: duplicate id 1"}},
		{name: "category without name", doc: cocoDoc(cocoImages, "", cocoCats+`, {"id": 7}`), fatal: true,
			wantErr: []string{"instances.json: categories: id 7: missing name"}},
		{name: "duplicate images key", doc: `{"images": [], "images": [], "categories": []}`, fatal: true,
			wantErr: []string{`instances.json: duplicate key "images"`}},
		{name: "duplicate image id", doc: cocoDoc(cocoImages+`, {"id": 2, "file_name": "b2.jpg", "width": 9, "height": 9}`, cocoAnns(okAnn), cocoCats),
			wantErr: []string{"instances.json: images[3] (id 2): duplicate image id 2"}},
		{name: "image without width", doc: cocoDoc(strings.Replace(cocoImages, `"width": 640, "height": 480},
	{"id": 3`, `"height": 480},
	{"id": 3`, 1), cocoAnns(okAnn), cocoCats),
			wantErr: []string{"instances.json: images[1] (id 2): missing width"}},
		{name: "image without file_name", doc: cocoDoc(strings.Replace(cocoImages, `"file_name": "b.jpg", `, "", 1), cocoAnns(okAnn), cocoCats),
			wantErr: []string{"images[1] (id 2): missing file_name"}},
		{name: "image with zero height", doc: cocoDoc(strings.Replace(cocoImages, `"b.jpg", "width": 640, "height": 480`, `"b.jpg", "width": 640, "height": 0`, 1), cocoAnns(okAnn), cocoCats),
			wantErr: []string{"images[1] (id 2): height 0 not in [1, 1048576]"}},
		{name: "image without id", doc: cocoDoc(strings.Replace(cocoImages, `"id": 2, `, "", 1), cocoAnns(okAnn), cocoCats),
			wantErr: []string{"instances.json: images[1]: missing id"}, wantSkipns: 2}, // then annotation 12 has no image
		{name: "image width is a string", doc: cocoDoc(strings.Replace(cocoImages, `"b.jpg", "width": 640`, `"b.jpg", "width": "640"`, 1), cocoAnns(okAnn), cocoCats),
			wantErr: []string{"instances.json: images[1] (id 2): width: ", "expected a number, found '\"'"}},
		{name: "missing image file", doc: cocoDoc(cocoImages, cocoAnns(okAnn), cocoCats), opts: COCOOptions{CheckImages: true}, noImage: true,
			wantErr: []string{"instances.json: images[1] (id 2): image file: stat", "b.jpg", "no such file"}},
		{name: "annotation without image_id", doc: cocoDoc(cocoImages, cocoAnns(`{"id": 12, "category_id": 3, "bbox": [1, 2, 3, 4]}`), cocoCats),
			wantErr: []string{"instances.json: annotations[1] (id 12): missing image_id"}, wantKept: 3},
		{name: "annotation without id", doc: cocoDoc(cocoImages, cocoAnns(`{"image_id": 2, "category_id": 3, "bbox": [1, 2, 3, 4]}`), cocoCats),
			wantErr: []string{"instances.json: annotations[1]: missing id"}},
		{name: "annotation without category_id", doc: cocoDoc(cocoImages, cocoAnns(`{"id": 12, "image_id": 2, "bbox": [1, 2, 3, 4]}`), cocoCats),
			wantErr: []string{"annotations[1] (id 12): missing category_id"}},
		{name: "annotation without bbox", doc: cocoDoc(cocoImages, cocoAnns(`{"id": 12, "image_id": 2, "category_id": 3, "segmentation": [[1, 2, 3, 4, 5, 6]]}`), cocoCats),
			wantErr: []string{"annotations[1] (id 12): missing bbox"}},
		{name: "bbox with 3 numbers", doc: cocoDoc(cocoImages, cocoAnns(`{"id": 12, "image_id": 2, "category_id": 3, "bbox": [1, 2, 3]}`), cocoCats),
			wantErr: []string{"annotations[1] (id 12): bbox has 3 numbers, want 4"}},
		{name: "bbox with negative width", doc: cocoDoc(cocoImages, cocoAnns(`{"id": 12, "image_id": 2, "category_id": 3, "bbox": [20, 2, -3, 4]}`), cocoCats),
			wantErr: []string{"annotations[1] (id 12): bbox width -3 is negative"}},
		{name: "bbox outside the image", doc: cocoDoc(cocoImages, cocoAnns(`{"id": 12, "image_id": 2, "category_id": 3, "bbox": [600, 10, 100, 100]}`), cocoCats),
			wantErr: []string{"instances.json: annotations[1] (id 12): bbox [600 10 100 100] outside the 640x480 image"}},
		{name: "bbox above the image", doc: cocoDoc(cocoImages, cocoAnns(`{"id": 12, "image_id": 2, "category_id": 3, "bbox": [6, -1.5, 10, 10]}`), cocoCats),
			wantErr: []string{"annotations[1] (id 12): bbox [6 -1.5 10 10] outside the 640x480 image"}},
		{name: "unknown image_id", doc: cocoDoc(cocoImages, cocoAnns(`{"id": 12, "image_id": 99, "category_id": 3, "bbox": [1, 2, 3, 4]}`), cocoCats),
			wantErr: []string{"instances.json: annotations[1] (id 12): image_id 99 is not in images"}, wantKept: 3},
		{name: "unknown category_id", doc: cocoDoc(cocoImages, cocoAnns(`{"id": 12, "image_id": 2, "category_id": 2, "bbox": [1, 2, 3, 4]}`), cocoCats),
			wantErr: []string{"instances.json: annotations[1] (id 12): category_id 2 is not in categories"}},
		{name: "duplicate annotation id", doc: cocoDoc(cocoImages, cocoAnns(`{"id": 11, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4]}`), cocoCats),
			wantErr: []string{"instances.json: annotations[1] (id 11): duplicate annotation id 11 (also annotations[0])"}},
		{name: "annotation id is a string", doc: cocoDoc(cocoImages, cocoAnns(`{"id": "12", "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4]}`), cocoCats),
			wantErr: []string{"instances.json: annotations[1]: id: ", "expected a number"}},
		{name: "annotation is a number", doc: cocoDoc(cocoImages, cocoAnns(`12`), cocoCats),
			wantErr: []string{"instances.json: annotations[1]: 12 is not an object"}, wantKept: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"instances.json": tt.doc, "img/a.jpg": "x", "img/c.jpg": "x"}
			if !tt.noImage {
				files["img/b.jpg"] = "x"
			}
			writeFiles(t, dir, files)
			path := filepath.Join(dir, "instances.json")
			s, err := ReadCOCO(path, filepath.Join(dir, "img"), tt.opts)
			if tt.wantErr == nil {
				if err != nil || len(s.Records) != 3 || s.NumObjects() != 3 {
					t.Fatalf("valid input: err %v, set %+v", err, s)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			checkErr(t, err, tt.wantErr, tt.fatal)

			o := tt.opts
			o.SkipBad = true
			s, err = ReadCOCO(path, filepath.Join(dir, "img"), o)
			if tt.fatal {
				if err == nil {
					t.Fatal("SkipBad: no error for a fatal problem")
				}
				return
			}
			if err != nil {
				t.Fatalf("SkipBad: %v", err)
			}
			kept, skipped := tt.wantKept, tt.wantSkipns
			if kept == 0 {
				kept = 2
			}
			if skipped == 0 {
				skipped = 1
			}
			if len(s.Records) != kept || len(s.Skipped) != skipped {
				t.Fatalf("SkipBad: %d records, skipped %v; want %d records, %d skipped", len(s.Records), s.Skipped, kept, skipped)
			}
			checkErr(t, s.Skipped[0], tt.wantErr, false)
			for _, r := range s.Records {
				if r.ID == 1 && (len(r.Objects) != 1 || r.Objects[0].ID != 11) || r.ID == 3 && (len(r.Objects) != 1 || r.Objects[0].ID != 13) {
					t.Errorf("SkipBad changed a good record: %+v", r)
				}
				if r.ID == 2 && kept == 2 {
					t.Errorf("SkipBad kept image 2: %+v", r)
				}
			}
		})
	}
}

func TestCOCOResults(t *testing.T) {
	// crowd_dets.json comes from the shared detection-eval fixtures.
	gt, err := ReadCOCO("testdata/coco/crowd_gt.json", "", COCOOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dets, err := ReadCOCOResults("testdata/coco/crowd_dets.json", gt)
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 9 {
		t.Fatalf("%d detections, want 9", len(dets))
	}
	first := Detection{ImageID: 1, Name: "000000000001.jpg", Label: 0, Box: box.Box{X1: 50, Y1: 50, X2: 150, Y2: 150}, Score: 0.9}
	last := Detection{ImageID: 2, Name: "000000000002.jpg", Label: 1, Box: box.Box{X1: 500, Y1: 400, X2: 550, Y2: 450}, Score: 0.4}
	if dets[0] != first || dets[8] != last {
		t.Errorf("first %+v, last %+v", dets[0], dets[8])
	}

	// Write with a gapped category mapping; check the entries and read
	// back.
	s := &Set{Classes: []string{"person", "dog"}, CategoryIDs: []int{1, 18}}
	out := []Detection{
		{ImageID: 42, Label: 1, Box: box.Box{X1: 10, Y1: 20, X2: 30, Y2: 60}, Score: 0.75},
		{ImageID: 7, Label: 0, Box: box.Box{X1: 0.1, Y1: 1.5, X2: 100.3, Y2: 2}, Score: 0.0123},
	}
	path, got := written(t, "results.json", func(path string) error { return WriteCOCOResults(path, s, out) })
	// Expected entries written by hand from the COCO results format:
	// category ids through the gapped mapping, bbox [x, y, X2-X1, Y2-Y1]
	// with the float32 coordinates' float64 values, scores as the shortest
	// decimal of the float32. Decoded with encoding/json, not our reader.
	type entry struct {
		ImageID    int64      `json:"image_id"`
		CategoryID int64      `json:"category_id"`
		BBox       [4]float64 `json:"bbox"`
		Score      float64    `json:"score"`
	}
	wantEntries := []entry{
		{ImageID: 42, CategoryID: 18, BBox: [4]float64{10, 20, 20, 40}, Score: 0.75},
		{ImageID: 7, CategoryID: 1, BBox: [4]float64{float64(float32(0.1)), 1.5, float64(float32(100.3)) - float64(float32(0.1)), 0.5}, Score: 0.0123},
	}
	var gotEntries []entry
	dec := json.NewDecoder(bytes.NewReader(got))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&gotEntries); err != nil {
		t.Fatalf("%s is not a results list: %v\n%s", path, err, got)
	}
	if !reflect.DeepEqual(gotEntries, wantEntries) {
		t.Errorf("wrote %+v\nwant %+v", gotEntries, wantEntries)
	}
	back, err := ReadCOCOResults(path, s)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, out) {
		t.Errorf("read back %+v\nwant %+v", back, out)
	}
	if err := WriteCOCOResults(path, s, []Detection{{Label: 2}}); err == nil || !strings.Contains(err.Error(), "detection 0: label 2 out of range") {
		t.Errorf("bad label: %v", err)
	}
	writeFiles(t, filepath.Dir(path), map[string]string{"bad.json": `[{"image_id": 1, "category_id": 5, "bbox": [1, 2, 3, 4], "score": 1}]`})
	if _, err := ReadCOCOResults(filepath.Join(filepath.Dir(path), "bad.json"), s); err == nil || !strings.Contains(err.Error(), "bad.json: entry 0: category_id 5 is not in the set") {
		t.Errorf("unknown category: %v", err)
	}
}

func TestSetFilter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd.json")
	writeFiles(t, filepath.Dir(path), map[string]string{"odd.json": cocoOddDoc})
	s, err := ReadCOCO(path, "", COCOOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Image 397133 has a plain object, 37777 one object, 252219 none.
	got := s.Filter(func(r Record) bool { return len(r.Objects) > 0 })
	if len(got.Records) != 2 || got.Records[0].ID != 397133 || got.Records[1].ID != 37777 || !reflect.DeepEqual(got.Classes, s.Classes) {
		t.Errorf("filtered %+v", got)
	}
}

// written calls write with a path in a new temporary folder and returns
// the path and the file's content.
func written(t *testing.T, name string, write func(path string) error) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := write(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, data
}
