package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzReadVOCAnnotation feeds arbitrary bytes to the VOC annotation parser:
// it must not panic, and must return either a *BadSampleError naming the
// file or a record that satisfies the documented invariants and survives a
// write/read round trip.
func FuzzReadVOCAnnotation(f *testing.F) {
	for _, name := range []string{"000005.xml", "000007.xml", "2008_000008.xml"} {
		data, err := os.ReadFile(filepath.Join(vocRoot, "Annotations", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(vocXML(500, 375, vocObj("dog", "1.5", "2", "500", "375"), vocObj("cat", "7", "7", "7", "7"))))
	f.Add([]byte(vocXML(10, 10, vocObj("dog", "20", "5", "10", "30"))))
	f.Add([]byte("<annotation><size><width>1e3</width><height>5</height></size><object><name> person </name><difficult>2</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>1000</xmax><ymax>5</ymax></bndbox></object></annotation>"))
	f.Add([]byte("<annotation><size>"))
	f.Add([]byte(""))
	classes := VOCClasses()
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeVOCAnnotation(data, "fuzz.xml", classes)
		if err != nil {
			var bse *BadSampleError
			if !errors.As(err, &bse) || bse.File != "fuzz.xml" || bse.Format != "voc" {
				t.Fatalf("error %v (%T) is not a *BadSampleError naming fuzz.xml", err, err)
			}
			return
		}
		if r.Width < 1 || r.Height < 1 {
			t.Fatalf("size %dx%d", r.Width, r.Height)
		}
		for i, o := range r.Objects {
			b := o.Box
			if o.Label < 0 || o.Label >= len(classes) || b.X1 < 0 || b.Y1 < 0 || b.X2 > float32(r.Width) || b.Y2 > float32(r.Height) ||
				b.X2 < b.X1 || b.Y2 < b.Y1 || o.Area != b.Area() {
				t.Fatalf("object %d breaks the invariants: %+v in %dx%d", i, o, r.Width, r.Height)
			}
		}
		enc, err := encodeVOCAnnotation(r, classes)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeVOCAnnotation(enc, "fuzz.xml", classes)
		if err != nil {
			t.Fatalf("re-read of the written file: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(back.Objects, r.Objects) || back.Width != r.Width || back.Height != r.Height {
			t.Fatalf("round trip changed the record:\n got %+v\nwant %+v", back, r)
		}
	})
}

// FuzzReadCOCO feeds arbitrary bytes to the COCO reader (aborting and
// skipping): it must not panic, and must return either an error or a set
// that satisfies the documented invariants, read from JSON (with Python's
// NaN and Infinity literals, which format/coco accepts as numbers).
func FuzzReadCOCO(f *testing.F) {
	for _, name := range []string{"testdata/coco/crowd_gt.json"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, false)
	}
	f.Add([]byte(cocoOddDoc), false)
	f.Add([]byte(cocoDoc(cocoImages, cocoAnns(`{"id": 11, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4]}`), cocoCats)), true)
	f.Add([]byte(cocoDoc(cocoImages, cocoAnns(`{"id": "12", "image_id": 2, "category_id": 1, "bbox": [1e400, 2, 3, 4]}`), cocoCats)), true)
	f.Add([]byte(cocoDoc(cocoImages+`, {"id": 2, "file_name": "b2.jpg", "width": 9, "height": 9}`, cocoAnns(`{"id": 12, "image_id": 99, "category_id": 3, "bbox": [1, 2, 3, 4]}`), cocoCats)), true)
	f.Add([]byte(`{"images": null, "categories": [], "annotations": [null]}`), true)
	f.Add([]byte(`[]`), false)
	f.Fuzz(func(t *testing.T, data []byte, skipBad bool) {
		s, err := DecodeCOCO(bytes.NewReader(data), "fuzz.json", "", COCOOptions{SkipBad: skipBad})
		if err != nil {
			if s != nil {
				t.Fatal("both a set and an error")
			}
			return
		}
		// format/coco accepts Python's NaN and Infinity literals as numbers.
		valid := data
		for _, lit := range []string{"-Infinity", "Infinity", "NaN"} {
			valid = bytes.ReplaceAll(valid, []byte(lit), []byte("0"))
		}
		if !json.Valid(valid) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if len(s.Classes) != len(s.CategoryIDs) {
			t.Fatalf("%d classes, %d category ids", len(s.Classes), len(s.CategoryIDs))
		}
		for l := 1; l < len(s.CategoryIDs); l++ {
			if s.CategoryIDs[l] <= s.CategoryIDs[l-1] {
				t.Fatalf("category ids not increasing: %v", s.CategoryIDs)
			}
		}
		if !skipBad && len(s.Skipped) != 0 {
			t.Fatalf("skipped %v without SkipBad", s.Skipped)
		}
		images := make(map[int64]bool)
		anns := make(map[int64]bool)
		for _, r := range s.Records {
			if images[r.ID] || r.Width < 1 || r.Height < 1 || r.Name == "" {
				t.Fatalf("bad record %+v", r)
			}
			images[r.ID] = true
			for _, o := range r.Objects {
				b := o.Box
				if anns[o.ID] || o.Label < 0 || o.Label >= len(s.Classes) || b.X2 < b.X1 || b.Y2 < b.Y1 ||
					b.X1 < -cocoBoxSlack || b.Y1 < -cocoBoxSlack || b.X2 > float32(r.Width)+cocoBoxSlack || b.Y2 > float32(r.Height)+cocoBoxSlack {
					t.Fatalf("bad object %+v in %dx%d", o, r.Width, r.Height)
				}
				anns[o.ID] = true
			}
		}
		for _, e := range s.Skipped {
			var bse *BadSampleError
			if !errors.As(e, &bse) || bse.File != "fuzz.json" {
				t.Fatalf("skipped %v (%T) is not a *BadSampleError naming fuzz.json", e, e)
			}
		}
	})
}
