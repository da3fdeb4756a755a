package datasets

import (
	"encoding/xml"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"resdet/box"
	"resdet/format/voc"
)

const vocRoot = "testdata/VOCdevkit/VOC2007"

func TestVOCToBox(t *testing.T) {
	tests := []struct {
		name                   string
		xmin, ymin, xmax, ymax float64
		want                   box.Box
	}{
		{name: "whole 500x375 image", xmin: 1, ymin: 1, xmax: 500, ymax: 375, want: box.Box{X1: 0, Y1: 0, X2: 500, Y2: 375}},
		{name: "single pixel", xmin: 7, ymin: 9, xmax: 7, ymax: 9, want: box.Box{X1: 6, Y1: 8, X2: 7, Y2: 9}},
		{name: "000005 object 0", xmin: 263, ymin: 211, xmax: 324, ymax: 339, want: box.Box{X1: 262, Y1: 210, X2: 324, Y2: 339}},
		{name: "float coordinates", xmin: 52.5, ymin: 1.25, xmax: 471.5, ymax: 420, want: box.Box{X1: 51.5, Y1: 0.25, X2: 471.5, Y2: 420}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := VOCToBox(tt.xmin, tt.ymin, tt.xmax, tt.ymax)
			if got != tt.want {
				t.Fatalf("VOCToBox = %v, want %v", got, tt.want)
			}
			xmin, ymin, xmax, ymax := BoxToVOC(got)
			if xmin != tt.xmin || ymin != tt.ymin || xmax != tt.xmax || ymax != tt.ymax {
				t.Fatalf("BoxToVOC(%v) = %v %v %v %v, want %v %v %v %v", got, xmin, ymin, xmax, ymax, tt.xmin, tt.ymin, tt.xmax, tt.ymax)
			}
		})
	}
}

// Property: BoxToVOC then VOCToBox gives back any float32 box exactly, also
// through the text written by voc.FormatNumber.
func TestBoxToVOCRoundTripProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		var b box.Box
		// anyFloat is any finite float32 whose magnitude is 0 or >= 2^-29,
		// the documented domain of exactness for X1 and Y1.
		anyFloat := func() float32 {
			for {
				v := math.Float32frombits(rng.Uint32())
				if a := math.Abs(float64(v)); !math.IsNaN(a) && !math.IsInf(a, 0) && (a == 0 || a >= 0x1p-29) {
					return v
				}
			}
		}
		switch i % 3 {
		case 0:
			b = box.Box{X1: float32(rng.IntN(4000)), Y1: float32(rng.IntN(4000)), X2: float32(rng.IntN(4000)), Y2: float32(rng.IntN(4000))}
		case 1:
			b = box.Box{X1: rng.Float32() * 3000, Y1: 0x1p-29, X2: rng.Float32() * 5000, Y2: -0x1p-29}
		default:
			b = box.Box{X1: anyFloat(), Y1: anyFloat(), X2: math.Float32frombits(rng.Uint32() & 0x7f7fffff), Y2: anyFloat()}
		}
		xmin, ymin, xmax, ymax := BoxToVOC(b)
		var back [4]float64
		for k, v := range []float64{xmin, ymin, xmax, ymax} {
			if err := parseFloatInto(voc.FormatNumber(v), &back[k]); err != nil {
				t.Fatal(err)
			}
		}
		if got := VOCToBox(back[0], back[1], back[2], back[3]); got != b {
			t.Fatalf("round trip of %v through %v gave %v", b, back, got)
		}
	}
}

func parseFloatInto(s string, v *float64) error {
	f, err := strconv.ParseFloat(s, 64)
	*v = f
	return err
}

func TestReadVOC(t *testing.T) {
	chair, car, horse, person := 8, 6, 12, 14 // positions in VOCClasses
	r005 := Record{ID: 0, Name: "000005", ImagePath: filepath.Join(vocRoot, "JPEGImages", "000005.jpg"), Width: 500, Height: 375,
		Objects: []Object{
			{Box: box.Box{X1: 262, Y1: 210, X2: 324, Y2: 339}, Label: chair, Area: 62 * 129},
			{Box: box.Box{X1: 164, Y1: 263, X2: 253, Y2: 372}, Label: chair, Area: 89 * 109},
			{Box: box.Box{X1: 4, Y1: 243, X2: 67, Y2: 374}, Label: chair, Difficult: true, Truncated: true, Area: 63 * 131},
		}}
	r007 := Record{ID: 1, Name: "000007", ImagePath: filepath.Join(vocRoot, "JPEGImages", "000007.jpg"), Width: 500, Height: 333,
		Objects: []Object{{Box: box.Box{X1: 140, Y1: 49, X2: 500, Y2: 330}, Label: car, Truncated: true, Area: 360 * 281}}}
	r008 := Record{ID: 2, Name: "2008_000008", ImagePath: filepath.Join(vocRoot, "JPEGImages", "2008_000008.jpg"), Width: 500, Height: 442,
		Objects: []Object{
			{Box: box.Box{X1: 51, Y1: 85, X2: 471.5, Y2: 420}, Label: horse, Area: 420.5 * 335},
			{Box: box.Box{X1: 157, Y1: 0, X2: 250, Y2: 67}, Label: person, Truncated: true, Area: 93 * 67},
		}}
	noDifficult := r005
	noDifficult.Objects = r005.Objects[:2]

	relabel := func(r Record, labels ...int) Record {
		r.Objects = append([]Object(nil), r.Objects...)
		for i := range r.Objects {
			r.Objects[i].Label = labels[i]
		}
		return r
	}
	tests := []struct {
		name  string
		split string
		opts  VOCOptions
		want  []Record
	}{
		{name: "drop difficult by default", split: "trainval", want: []Record{noDifficult, r007, r008}},
		{name: "keep difficult", split: "trainval", opts: VOCOptions{KeepDifficult: true}, want: []Record{r005, r007, r008}},
		{name: "class list file with labels column", split: "car_trainval", opts: VOCOptions{KeepDifficult: true},
			want: []Record{r005, r007}},
		{name: "custom classes", split: "trainval", opts: VOCOptions{Classes: []string{"person", "horse", "chair", "car"}, KeepDifficult: true},
			want: []Record{relabel(r005, 2, 2, 2), relabel(r007, 3), relabel(r008, 1, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ReadVOC(vocRoot, tt.split, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			wantClasses := tt.opts.Classes
			if wantClasses == nil {
				wantClasses = VOCClasses()
			}
			if !reflect.DeepEqual(s.Classes, wantClasses) || s.CategoryIDs != nil || len(s.Skipped) != 0 {
				t.Errorf("classes %v, category ids %v, skipped %v", s.Classes, s.CategoryIDs, s.Skipped)
			}
			if !reflect.DeepEqual(s.Records, tt.want) {
				t.Errorf("records:\n got %+v\nwant %+v", s.Records, tt.want)
			}
		})
	}
}

func TestDecodeVOCAnnotationEncodings(t *testing.T) {
	body := "<annotation><owner><name>Ren\xe9</name></owner><size><width>10</width><height>10</height></size>" +
		"<object><name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>"
	tests := []struct {
		name, decl, want string
	}{
		{name: "latin1", decl: `<?xml version="1.0" encoding="ISO-8859-1"?>`},
		{name: "utf-8 declared", decl: `<?xml version="1.0" encoding="utf-8"?>`, want: "parse:"}, // \xe9 alone is not UTF-8
		{name: "unsupported", decl: `<?xml version="1.0" encoding="EBCDIC"?>`, want: `unsupported encoding "EBCDIC"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeVOCAnnotation([]byte(tt.decl+body), "a.xml", []string{"dog"})
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := (box.Box{X1: 0, Y1: 1, X2: 3, Y2: 4}); len(r.Objects) != 1 || r.Objects[0].Box != want {
				t.Errorf("objects %+v", r.Objects)
			}
		})
	}
}

func TestReadVOCCheckImages(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"Annotations/a.xml":          vocXML(500, 375, vocObj("dog", "1", "1", "10", "10")),
		"ImageSets/Main/train.txt":   "a\n",
		"JPEGImages/a.jpg":           "not decoded by the reader",
		"ImageSets/Main/missing.txt": "",
	})
	s, err := ReadVOC(root, "train", VOCOptions{CheckImages: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Records) != 1 || s.Records[0].ImagePath != filepath.Join(root, "JPEGImages", "a.jpg") {
		t.Fatalf("records %+v", s.Records)
	}
	s, err = ReadVOC(root, "missing", VOCOptions{})
	if err != nil || len(s.Records) != 0 {
		t.Fatalf("empty split: %v, %+v", err, s)
	}
}

// vocXML returns a VOC annotation file of a w x h image with the given
// <object> elements.
func vocXML(w, h int, objects ...string) string {
	return "<annotation>\n\t<folder>VOC2007</folder>\n\t<filename>x.jpg</filename>\n\t<size><width>" +
		strconv.Itoa(w) + "</width><height>" + strconv.Itoa(h) + "</height><depth>3</depth></size>\n" +
		strings.Join(objects, "") + "</annotation>\n"
}

// vocObj returns an <object> element with difficult 0 and the given box.
func vocObj(name, xmin, ymin, xmax, ymax string) string {
	return "\t<object>\n\t\t<name>" + name + "</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n" +
		"\t\t<bndbox><xmin>" + xmin + "</xmin><ymin>" + ymin + "</ymin><xmax>" + xmax + "</xmax><ymax>" + ymax + "</ymax></bndbox>\n\t</object>\n"
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadVOCBadInput(t *testing.T) {
	good := vocXML(500, 375, vocObj("dog", "10", "20", "110", "220"))
	tests := []struct {
		name     string
		bad      string // content of Annotations/000002.xml; "" = no file
		noImage  bool   // do not create JPEGImages/000002.jpg
		opts     VOCOptions
		list     string // split list; default "000001\n000002\n000003\n"
		wantErr  []string
		fatal    bool // SkipBad does not help
		wantKept int  // records kept with SkipBad; 0 means 2 (000001, 000003)
	}{
		{name: "malformed XML", bad: "<annotation><size><width>500</width>", wantErr: []string{"voc: ", "Annotations/000002.xml: parse: XML syntax error"}},
		{name: "not XML", bad: "\x00\x01 binary", wantErr: []string{"Annotations/000002.xml: parse:"}},
		{name: "missing annotation file", wantErr: []string{"Annotations/000002.xml:", "no such file"}},
		{name: "missing image file", bad: good, noImage: true, opts: VOCOptions{CheckImages: true},
			wantErr: []string{"Annotations/000002.xml: image:", "JPEGImages/000002.jpg", "no such file"}},
		{name: "xmax < xmin", bad: vocXML(500, 375, vocObj("dog", "1", "1", "5", "5"), vocObj("cat", "1", "1", "5", "5"), vocObj("dog", "20", "5", "10", "30")),
			wantErr: []string{"voc: ", "Annotations/000002.xml: object 2 (dog): xmax 10 < xmin 20"}},
		{name: "ymax < ymin", bad: vocXML(500, 375, vocObj("cat", "1", "40", "5", "30")),
			wantErr: []string{"Annotations/000002.xml: object 0 (cat): ymax 30 < ymin 40"}},
		{name: "box right of the image", bad: vocXML(500, 375, vocObj("dog", "10", "20", "501", "100")),
			wantErr: []string{"Annotations/000002.xml: object 0 (dog): bndbox (10,20)-(501,100) outside the 500x375 image"}},
		{name: "box below the image", bad: vocXML(500, 375, vocObj("dog", "10", "20", "100", "375.5")),
			wantErr: []string{"object 0 (dog): bndbox", "outside the 500x375 image"}},
		{name: "zero-based xmin", bad: vocXML(500, 375, vocObj("dog", "0", "20", "100", "100")),
			wantErr: []string{"object 0 (dog): bndbox (0,20)-(100,100) outside"}},
		{name: "unknown class", bad: vocXML(500, 375, vocObj("dog", "1", "1", "5", "5"), vocObj("dgo", "1", "1", "5", "5")),
			wantErr: []string{`Annotations/000002.xml: object 1 (dgo): unknown class "dgo"`}},
		{name: "class outside custom list", bad: vocXML(500, 375, vocObj("cat", "1", "1", "5", "5")), opts: VOCOptions{Classes: []string{"dog"}},
			wantErr: []string{`object 0 (cat): unknown class "cat"`}},
		{name: "missing name", bad: vocXML(500, 375, "<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>"),
			wantErr: []string{"Annotations/000002.xml: object 0: missing <name>"}},
		{name: "missing bndbox", bad: vocXML(500, 375, "<object><name>dog</name></object>"),
			wantErr: []string{"object 0 (dog): missing <bndbox>"}},
		{name: "missing xmax", bad: vocXML(500, 375, "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><ymax>2</ymax></bndbox></object>"),
			wantErr: []string{"object 0 (dog): missing <xmax>"}},
		{name: "coordinate not a number", bad: vocXML(500, 375, vocObj("dog", "1", "one", "5", "5")),
			wantErr: []string{`object 0 (dog): <ymin> "one" is not a finite number`}},
		{name: "coordinate NaN", bad: vocXML(500, 375, vocObj("dog", "NaN", "1", "5", "5")),
			wantErr: []string{`object 0 (dog): <xmin> "NaN" is not a finite number`}},
		{name: "bad difficult", bad: vocXML(500, 375, strings.Replace(vocObj("dog", "1", "1", "5", "5"), "<difficult>0", "<difficult>yes", 1)),
			wantErr: []string{`object 0 (dog): <difficult> "yes" is not a finite number`}},
		{name: "missing size", bad: "<annotation><object><name>dog</name></object></annotation>",
			wantErr: []string{"Annotations/000002.xml: size: missing <size>"}},
		{name: "missing height", bad: "<annotation><size><width>10</width></size></annotation>",
			wantErr: []string{"Annotations/000002.xml: size: missing <height>"}},
		{name: "zero width", bad: vocXML(0, 375),
			wantErr: []string{"Annotations/000002.xml: size: <width> 0 is not an integer in [1, 1048576]"}},
		{name: "fractional height", bad: "<annotation><size><width>500</width><height>37.5</height></size></annotation>",
			wantErr: []string{"Annotations/000002.xml: size: <height> 37.5 is not an integer"}},
		{name: "valid file without objects", bad: vocXML(500, 375)},
		{name: "wrong root element", bad: "<annotations><size><width>1</width><height>1</height></size></annotations>",
			wantErr: []string{"Annotations/000002.xml: root element <annotations>, want <annotation>"}},
		{name: "duplicate image id in split", bad: good, list: "000001\n000002\n000001\n000003\n", wantKept: 3,
			wantErr: []string{"ImageSets/Main/train.txt: line 3: duplicate image id \"000001\" (first on line 1)"}},
		{name: "missing split list", bad: good, list: "-", fatal: true,
			wantErr: []string{`voc: read split "train"`, "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			files := map[string]string{
				"Annotations/000001.xml": good,
				"Annotations/000003.xml": good,
				"JPEGImages/000001.jpg":  "x",
				"JPEGImages/000003.jpg":  "x",
			}
			switch tt.list {
			case "":
				files["ImageSets/Main/train.txt"] = "000001\n000002\n000003\n"
			case "-":
			default:
				files["ImageSets/Main/train.txt"] = tt.list
			}
			if tt.bad != "" {
				files["Annotations/000002.xml"] = tt.bad
			}
			if !tt.noImage {
				files["JPEGImages/000002.jpg"] = "x"
			}
			writeFiles(t, root, files)

			s, err := ReadVOC(root, "train", tt.opts)
			if tt.wantErr == nil {
				if err != nil || len(s.Records) != 3 {
					t.Fatalf("valid input: err %v, %d records", err, len(s.Records))
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			checkErr(t, err, tt.wantErr, tt.fatal)

			o := tt.opts
			o.SkipBad = true
			s, err = ReadVOC(root, "train", o)
			if tt.fatal {
				if err == nil {
					t.Fatal("SkipBad: no error for a fatal problem")
				}
				return
			}
			if err != nil {
				t.Fatalf("SkipBad: %v", err)
			}
			kept := tt.wantKept
			if kept == 0 {
				kept = 2
			}
			if len(s.Skipped) != 1 || len(s.Records) != kept {
				t.Fatalf("SkipBad: %d records, skipped %v; want %d records, 1 skipped", len(s.Records), s.Skipped, kept)
			}
			checkErr(t, s.Skipped[0], tt.wantErr, false)
			for _, r := range s.Records {
				if r.Name == "000002" && kept == 2 {
					t.Errorf("SkipBad kept %q", r.Name)
				}
			}
		})
	}
}

// checkErr checks that err mentions every part of want and, unless fatal,
// is a *BadSampleError.
func checkErr(t *testing.T, err error, want []string, fatal bool) {
	t.Helper()
	msg := filepath.ToSlash(err.Error())
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	var bse *BadSampleError
	if !fatal && !errors.As(err, &bse) {
		t.Errorf("error %q is %T, want *BadSampleError", err, err)
	}
}

func TestWriteVOCAnnotation(t *testing.T) {
	r := Record{Name: "000042", Width: 353, Height: 500, Objects: []Object{
		{Box: box.Box{X1: 0, Y1: 0, X2: 353, Y2: 500}, Label: 1, Truncated: true},
		{Box: box.Box{X1: 10.5, Y1: 20.25, X2: 30, Y2: 40}, Label: 0, Difficult: true},
		{Box: box.Box{X1: 3, Y1: 4, X2: 4, Y2: 5}, Label: 2},
	}}
	classes := []string{"dog", "person", "a&b"}
	path, got := written(t, "000042.xml", func(path string) error { return WriteVOCAnnotation(path, r, classes) })
	// The devkit's layout, written by hand: element names, nesting and
	// values as in VOC2007's Annotations/*.xml; bndbox 1-based inclusive
	// (xmin = X1+1, xmax = X2). Decoded with encoding/xml into a struct of
	// its own, not our reader.
	type bndbox struct {
		Xmin string `xml:"xmin"`
		Ymin string `xml:"ymin"`
		Xmax string `xml:"xmax"`
		Ymax string `xml:"ymax"`
	}
	type object struct {
		Name      string `xml:"name"`
		Pose      string `xml:"pose"`
		Truncated string `xml:"truncated"`
		Difficult string `xml:"difficult"`
		Bndbox    bndbox `xml:"bndbox"`
	}
	type annotation struct {
		XMLName  xml.Name `xml:"annotation"`
		Folder   string   `xml:"folder"`
		Filename string   `xml:"filename"`
		Size     struct {
			Width  string `xml:"width"`
			Height string `xml:"height"`
			Depth  string `xml:"depth"`
		} `xml:"size"`
		Segmented string   `xml:"segmented"`
		Objects   []object `xml:"object"`
	}
	want := annotation{XMLName: xml.Name{Local: "annotation"}, Folder: "VOC", Filename: "000042.jpg", Segmented: "0",
		Objects: []object{
			{Name: "person", Pose: "Unspecified", Truncated: "1", Difficult: "0", Bndbox: bndbox{"1", "1", "353", "500"}},
			{Name: "dog", Pose: "Unspecified", Truncated: "0", Difficult: "1", Bndbox: bndbox{"11.5", "21.25", "30", "40"}},
			{Name: "a&b", Pose: "Unspecified", Truncated: "0", Difficult: "0", Bndbox: bndbox{"4", "5", "4", "5"}},
		}}
	want.Size.Width, want.Size.Height, want.Size.Depth = "353", "500", "3"
	var gotXML annotation
	if err := xml.Unmarshal(got, &gotXML); err != nil {
		t.Fatalf("written file is not XML: %v\n%s", err, got)
	}
	if !reflect.DeepEqual(gotXML, want) {
		t.Errorf("wrote %+v\nwant %+v", gotXML, want)
	}
	for _, tag := range []string{"<annotation>", "<folder>", "<size>", "<bndbox>"} {
		if n := strings.Count(string(got), tag); n != map[string]int{"<annotation>": 1, "<folder>": 1, "<size>": 1, "<bndbox>": 3}[tag] {
			t.Errorf("%s appears %d times", tag, n)
		}
	}
	back, err := DecodeVOCAnnotation(got, path, classes)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Objects {
		r.Objects[i].Area = r.Objects[i].Box.Area()
	}
	if !reflect.DeepEqual(back.Objects, r.Objects) || back.Width != r.Width || back.Height != r.Height || back.Name != r.Name {
		t.Errorf("read back %+v, want %+v", back, r)
	}
	if err := WriteVOCAnnotation(path, Record{Objects: []Object{{Label: 3}}}, classes); err == nil || !strings.Contains(err.Error(), "object 0: label 3 out of range") {
		t.Errorf("bad label: %v", err)
	}
}

func TestVOCResults(t *testing.T) {
	classes := []string{"cat", "dog", "person"}
	dets := []Detection{
		{Name: "000001", Label: 1, Box: box.Box{X1: 0, Y1: 0, X2: 100, Y2: 50}, Score: 0.9},
		{Name: "000002", Label: 0, Box: box.Box{X1: 9.5, Y1: 19, X2: 30.25, Y2: 40}, Score: 0.123456789},
		{Name: "000001", Label: 1, Box: box.Box{X1: 5, Y1: 6, X2: 7, Y2: 8}, Score: 1e-7},
	}
	dir := filepath.Join(t.TempDir(), "results")
	if err := WriteVOCResults(dir, "test", classes, dets); err != nil {
		t.Fatal(err)
	}
	// Expected lines written by hand: 1-based xmin/ymin, full precision.
	want := map[string]string{
		"comp4_det_test_cat.txt":    "000002 0.12345679 10.5 20 30.25 40\n",
		"comp4_det_test_dog.txt":    "000001 0.9 1 1 100 50\n000001 0.0000001 6 7 7 8\n",
		"comp4_det_test_person.txt": "",
	}
	for name, w := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != w {
			t.Errorf("%s:\n got %q\nwant %q", name, got, w)
		}
	}
	back, missing, err := ReadVOCResults(dir, "test", classes)
	if err != nil || missing != nil {
		t.Fatalf("missing %v, err %v", missing, err)
	}
	wantBack := []Detection{dets[1], dets[0], dets[2]} // class by class
	if !reflect.DeepEqual(back, wantBack) {
		t.Errorf("read back %+v\nwant %+v", back, wantBack)
	}

	bad := []struct {
		name string
		dets []Detection
		want string
	}{
		{name: "label out of range", dets: []Detection{{Name: "a", Label: 3}}, want: "detection 0: label 3 out of range"},
		{name: "no image name", dets: []Detection{dets[0], {Label: 0}}, want: `detection 1: image name "" is not a valid VOC image id`},
		{name: "space in image name", dets: []Detection{{Name: "a b"}}, want: `detection 0: image name "a b"`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteVOCResults(t.TempDir(), "test", classes, tt.dets)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	writeFiles(t, dir, map[string]string{"comp4_det_test_cat.txt": "000001 0.5 1 2 3\n"})
	if _, _, err := ReadVOCResults(dir, "test", classes); err == nil || !strings.Contains(err.Error(), "comp4_det_test_cat.txt: line 1: 5 fields, want 6") {
		t.Errorf("short line: %v", err)
	}
	// A missing class file is no detections for that class, reported back.
	if err := os.Remove(filepath.Join(dir, "comp4_det_test_cat.txt")); err != nil {
		t.Fatal(err)
	}
	back, missing, err = ReadVOCResults(dir, "test", classes)
	if err != nil || !reflect.DeepEqual(missing, []string{"cat"}) || !reflect.DeepEqual(back, []Detection{dets[0], dets[2]}) {
		t.Errorf("without the cat file: dets %+v, missing %v, err %v", back, missing, err)
	}
}
