package voc

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"resdet/box"
)

func TestDecodeAnnotation(t *testing.T) {
	obj := func(name, extra, xmin, ymin, xmax, ymax string) string {
		return "<object><name>" + name + "</name>" + extra + "<bndbox><xmin>" + xmin + "</xmin><ymin>" + ymin + "</ymin><xmax>" + xmax +
			"</xmax><ymax>" + ymax + "</ymax></bndbox></object>"
	}
	ann := func(size string, objs ...string) string {
		return "<annotation><folder>VOC2007</folder><filename>000005.jpg</filename>" + size + strings.Join(objs, "") + "</annotation>"
	}
	size := "<size><width>500</width><height>375</height><depth>3</depth></size>"
	tests := []struct {
		name    string
		data    string
		want    *Annotation
		wantErr string
	}{
		{name: "devkit file", data: ann(size+"<segmented>0</segmented>",
			obj(" chair ", "<pose>Rear</pose><truncated>0</truncated><difficult>0</difficult>", "263", "211", "324", "339"),
			obj("dog", "<difficult>1</difficult><truncated></truncated>", "1.5", "2", "500", "375")),
			want: &Annotation{Folder: "VOC2007", Filename: "000005.jpg", Width: 500, Height: 375, Depth: 3, Objects: []Object{
				{Name: "chair", Pose: "Rear", Box: Box{263, 211, 324, 339}},
				{Name: "dog", Difficult: true, Box: Box{1.5, 2, 500, 375}},
			}}},
		{name: "no objects, float size", data: ann("<size><width>1e3</width><height>5.0</height></size><segmented>1</segmented>"),
			want: &Annotation{Folder: "VOC2007", Filename: "000005.jpg", Width: 1000, Height: 5, Segmented: true}},
		{name: "latin-1", data: `<?xml version="1.0" encoding="ISO-8859-1"?>` + ann(size, obj("caf\xe9", "", "1", "1", "2", "2")),
			want: &Annotation{Folder: "VOC2007", Filename: "000005.jpg", Width: 500, Height: 375, Depth: 3, Objects: []Object{{Name: "café", Box: Box{1, 1, 2, 2}}}}},
		{name: "unsupported encoding", data: `<?xml version="1.0" encoding="EBCDIC"?><annotation/>`, wantErr: `a.xml: parse: xml: opening charset "EBCDIC": unsupported encoding "EBCDIC"`},
		{name: "malformed", data: "<annotation><size>", wantErr: "a.xml: parse: XML syntax error"},
		{name: "wrong root", data: "<annotations/>", wantErr: "a.xml: root element <annotations>, want <annotation>"},
		{name: "no size", data: ann(""), wantErr: "a.xml: size: missing <size>"},
		{name: "zero width", data: ann("<size><width>0</width><height>5</height></size>"), wantErr: "a.xml: size: <width> 0 is not an integer in [1, 1048576]"},
		{name: "fractional height", data: ann("<size><width>3</width><height>37.5</height></size>"), wantErr: "size: <height> 37.5 is not an integer"},
		{name: "bad depth", data: ann("<size><width>3</width><height>3</height><depth>x</depth></size>"), wantErr: `size: <depth> "x" is not a small integer`},
		{name: "no name", data: ann(size, obj(" ", "", "1", "1", "2", "2")), wantErr: "a.xml: object 0: missing <name>"},
		{name: "inverted x", data: ann(size, obj("a", "", "1", "1", "2", "2"), obj("dog", "", "20", "1", "10", "2")), wantErr: "a.xml: object 1 (dog): xmax 10 < xmin 20"},
		{name: "inverted y", data: ann(size, obj("cat", "", "1", "40", "2", "30")), wantErr: "object 0 (cat): ymax 30 < ymin 40"},
		{name: "NaN", data: ann(size, obj("cat", "", "NaN", "1", "2", "2")), wantErr: `object 0 (cat): <xmin> "NaN" is not a finite number`},
		{name: "word", data: ann(size, obj("cat", "", "1", "one", "2", "2")), wantErr: `object 0 (cat): <ymin> "one" is not a finite number`},
		{name: "bad flag", data: ann(size, obj("cat", "<difficult>yes</difficult>", "1", "1", "2", "2")), wantErr: `object 0 (cat): <difficult> "yes" is not a finite number`},
		{name: "no bndbox", data: ann(size, "<object><name>cat</name></object>"), wantErr: "object 0 (cat): missing <bndbox>"},
		{name: "no xmax", data: ann(size, "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><ymax>1</ymax></bndbox></object>"), wantErr: "object 0 (cat): missing <xmax>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeAnnotation(strings.NewReader(tt.data), "a.xml")
			if tt.wantErr != "" {
				var ve *Error
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ve) || ve.File != "a.xml" {
					t.Fatalf("error %v (%T), want an *Error containing %q", err, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestEncodeAnnotation checks the written file with encoding/xml (an
// independent reader) against the devkit's layout, and reads it back.
func TestEncodeAnnotation(t *testing.T) {
	a := &Annotation{Folder: "VOC", Filename: "a<b>.jpg", Width: 353, Height: 500, Depth: 3, Objects: []Object{
		{Name: "person", Truncated: true, Box: Box{1, 1, 353, 500}},
		{Name: "a&b", Pose: "Left", Difficult: true, Box: Box{1e-7, 21.25, 30, 40}},
	}}
	var buf bytes.Buffer
	if err := EncodeAnnotation(&buf, a); err != nil {
		t.Fatal(err)
	}
	type object struct {
		Name      string    `xml:"name"`
		Pose      string    `xml:"pose"`
		Truncated string    `xml:"truncated"`
		Difficult string    `xml:"difficult"`
		Box       [4]string // xmin, ymin, xmax, ymax
		Xmin      string    `xml:"bndbox>xmin"`
		Ymin      string    `xml:"bndbox>ymin"`
		Xmax      string    `xml:"bndbox>xmax"`
		Ymax      string    `xml:"bndbox>ymax"`
	}
	var x struct {
		XMLName   xml.Name `xml:"annotation"`
		Folder    string   `xml:"folder"`
		Filename  string   `xml:"filename"`
		Width     string   `xml:"size>width"`
		Height    string   `xml:"size>height"`
		Depth     string   `xml:"size>depth"`
		Segmented string   `xml:"segmented"`
		Objects   []object `xml:"object"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &x); err != nil {
		t.Fatalf("not XML: %v\n%s", err, buf.Bytes())
	}
	wantObjects := []object{
		{Name: "person", Pose: "Unspecified", Truncated: "1", Difficult: "0", Box: [4]string{"1", "1", "353", "500"}},
		{Name: "a&b", Pose: "Left", Truncated: "0", Difficult: "1", Box: [4]string{"0.0000001", "21.25", "30", "40"}},
	}
	for i := range x.Objects {
		o := &x.Objects[i]
		o.Box, o.Xmin, o.Ymin, o.Xmax, o.Ymax = [4]string{o.Xmin, o.Ymin, o.Xmax, o.Ymax}, "", "", "", ""
	}
	if x.Folder != "VOC" || x.Filename != "a<b>.jpg" || x.Width != "353" || x.Height != "500" || x.Depth != "3" || x.Segmented != "0" ||
		!reflect.DeepEqual(x.Objects, wantObjects) {
		t.Errorf("encoding/xml reads %+v", x)
	}
	back, err := DecodeAnnotation(&buf, "a.xml")
	if err != nil {
		t.Fatal(err)
	}
	a.Objects[0].Pose = "Unspecified"
	if !reflect.DeepEqual(back, a) {
		t.Errorf("read back %+v\nwant %+v", back, a)
	}
}

func TestImageSet(t *testing.T) {
	got, err := ReadImageSet(strings.NewReader("000005\n\n  000007  1\r\n000009 -1\n000005"))
	want := []ImageSetEntry{{"000005", 1}, {"000007", 3}, {"000009", 4}, {"000005", 5}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ReadImageSet = %v, %v; want %v", got, err, want)
	}
	var buf bytes.Buffer
	if err := WriteImageSet(&buf, []string{"a", "2008_000008"}); err != nil || buf.String() != "a\n2008_000008\n" {
		t.Errorf("WriteImageSet wrote %q (%v)", buf.String(), err)
	}
	for _, bad := range []string{"", "a b", "a/b", "..", "a\tb"} {
		if err := WriteImageSet(&buf, []string{"ok", bad}); err == nil || !strings.Contains(err.Error(), "entry 1") {
			t.Errorf("name %q: error %v", bad, err)
		}
	}
}

func TestResults(t *testing.T) {
	dir := t.TempDir()
	classes := []string{"boat", "car", "train"}
	dets := [][]Detection{
		{{Image: "2008_000008", Score: 0.125, Box: Box{0.5, 2, 3.75, 4e5}}},
		{{Image: "a", Score: 1, Box: Box{-1, 1, 100, 50}}, {Image: "b", Score: 2.5e-8, Box: Box{6, 7, 7, 8}}},
		nil,
	}
	if err := WriteResultsDir(dir, "test", classes, dets); err != nil {
		t.Fatal(err)
	}
	// Written by hand: the devkit's "<image> <score> <xmin> <ymin> <xmax>
	// <ymax>", numbers in full precision, no exponent.
	for name, want := range map[string]string{
		"comp4_det_test_boat.txt":  "2008_000008 0.125 0.5 2 3.75 400000\n",
		"comp4_det_test_car.txt":   "a 1 -1 1 100 50\nb 0.000000025 6 7 7 8\n",
		"comp4_det_test_train.txt": "",
	} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != want {
			t.Errorf("%s: %q (%v), want %q", name, got, err, want)
		}
	}
	back, missing, err := ReadResultsDir(dir, "test", classes)
	dets[2] = []Detection(nil)
	if err != nil || missing != nil || !reflect.DeepEqual(back, dets) {
		t.Errorf("read back %+v, missing %v, err %v", back, missing, err)
	}
	if err := os.Remove(ResultsFile(dir, "test", "car")); err != nil {
		t.Fatal(err)
	}
	back, missing, err = ReadResultsDir(dir, "test", append(classes, "bird"))
	if err != nil || !reflect.DeepEqual(missing, []string{"car", "bird"}) || len(back) != 4 || back[1] != nil || len(back[0]) != 1 {
		t.Errorf("with missing files: %+v, missing %v, err %v", back, missing, err)
	}
	if err := WriteResultsDir(dir, "test", classes, [][]Detection{nil, {{Image: "a b"}}, nil}); err == nil || !strings.Contains(err.Error(), `class car: detection 0: image name "a b"`) {
		t.Errorf("bad image name: %v", err)
	}

	bad := []struct {
		name, line, wantErr string
	}{
		{name: "too few fields", line: "000001 0.5 1 2 3", wantErr: "r.txt: line 2: 5 fields, want 6"},
		{name: "bad number", line: "000001 0.5 1 2 3 x", wantErr: `r.txt: line 2: field 6: bad number "x"`},
		{name: "NaN score", line: "000001 nan 1 2 3 4", wantErr: "line 2: field 2 is NaN"},
		{name: "infinite coordinate", line: "000001 0.5 1 2 inf 4", wantErr: "line 2: field 5 is +Inf"},
		{name: "overflow", line: "000001 0.5 1 2 1e999 4", wantErr: "line 2: field 5 is +Inf"},
		{name: "inverted box", line: "000001 0.5 10 2 3 4", wantErr: "line 2: box [10 2 3 4] has xmax < xmin or ymax < ymin"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadResults(strings.NewReader("000001 0.9 1 1 5 5\n"+tt.line+"\n"), "r.txt")
			var ve *Error
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ve) || ve.Where != "line 2" {
				t.Errorf("error %v, want an *Error containing %q", err, tt.wantErr)
			}
		})
	}
}

// Property: ToBox(FromBox(b)) == b for integer and fractional pixel
// coordinates, and FromBox is VOC's 1-based inclusive convention.
func TestBoxConversion(t *testing.T) {
	tests := []struct {
		name string
		voc  Box
		box  box.Box
	}{
		{name: "whole 500x375 image", voc: Box{1, 1, 500, 375}, box: box.Box{X1: 0, Y1: 0, X2: 500, Y2: 375}},
		{name: "single pixel", voc: Box{7, 9, 7, 9}, box: box.Box{X1: 6, Y1: 8, X2: 7, Y2: 9}},
		{name: "fractions", voc: Box{52.5, 1.25, 471.5, 420}, box: box.Box{X1: 51.5, Y1: 0.25, X2: 471.5, Y2: 420}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ToBox(tt.voc); got != tt.box {
				t.Errorf("ToBox = %v, want %v", got, tt.box)
			}
			if got := FromBox(tt.box); got != tt.voc {
				t.Errorf("FromBox = %v, want %v", got, tt.voc)
			}
		})
	}
}

func TestReadFiles(t *testing.T) {
	root := t.TempDir()
	for name, content := range map[string]string{
		"ImageSets/Main/val.txt": "x\n",
		"Annotations/x.xml":      "<annotation><size><width>3</width><height>4</height></size></annotation>",
		"Annotations/bad.xml":    "<annotation>",
	} {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	list, err := ReadImageSetFile(root, "val")
	if err != nil || !reflect.DeepEqual(list, []ImageSetEntry{{"x", 1}}) {
		t.Errorf("ReadImageSetFile = %v, %v", list, err)
	}
	if _, err := ReadImageSetFile(root, "test"); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "test.txt") {
		t.Errorf("missing list: %v", err)
	}
	a, err := ReadAnnotationFile(AnnotationPath(root, "x"))
	if err != nil || a.Width != 3 || a.Height != 4 {
		t.Errorf("ReadAnnotationFile = %+v, %v", a, err)
	}
	var ve *Error
	if _, err := ReadAnnotationFile(AnnotationPath(root, "bad")); !errors.As(err, &ve) || ve.File != AnnotationPath(root, "bad") {
		t.Errorf("malformed file: %v", err)
	}
	if _, err := ReadAnnotationFile(AnnotationPath(root, "y")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
