package coco

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"resdet/box"
)

// results returns a results list of n entries, each with extra appended
// inside the object.
func results(n int, extra string) []byte {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `{"image_id":%d,"category_id":%d,"bbox":[%d.5,2,3,4],"score":0.%d%s}`, i, i%7, i%100, i%1000, extra)
	}
	b.WriteString("]")
	return []byte(b.String())
}

// TestParseResultsParallel checks the chunked parser against the
// sequential one, including inputs where the guessed chunk boundaries are
// wrong (inside strings or nested objects) and errors in late chunks.
func TestParseResultsParallel(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{name: "plain", data: results(20000, "")},
		{name: "boundary-like text in strings", data: results(20000, `,"note":"},{ x },  {"`)},
		{name: "nested objects", data: results(20000, `,"extra":{"a":{"b":[{},{}]},"c":"}, {"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.data) < 1<<20 {
				t.Fatalf("case too small (%d bytes) to take the parallel path", len(tt.data))
			}
			if _, ok := parseResultsParallel(tt.data, 4); !ok && tt.name == "plain" {
				t.Fatal("the parallel parser declined a plain list")
			}
			par, err := ParseResults(tt.data) // parallel, or sequential after a wrong guess
			if err != nil {
				t.Fatal(err)
			}
			s := &scanner{data: tt.data}
			n := 0
			err = s.array(func(i int) error {
				r, err := parseResult(s)
				if err != nil {
					return err
				}
				if i >= len(par) || par[i] != r {
					return fmt.Errorf("entry %d differs", i)
				}
				n++
				return nil
			})
			if err != nil || n != len(par) || n != 20000 {
				t.Fatalf("sequential parse: %v, %d entries vs %d", err, n, len(par))
			}
			if par[12345] != (Result{ImageID: 12345, CategoryID: 12345 % 7, BBox: [4]float64{45.5, 2, 3, 4}, Score: 0.345}) {
				t.Errorf("entry 12345 = %+v", par[12345])
			}
		})
	}
	t.Run("error in the last chunk", func(t *testing.T) {
		data := string(results(20000, ""))
		i := strings.LastIndex(data, `"score":0.`)
		bad := data[:i] + `"score":NaN` + data[i+len(`"score":0.999`):]
		_, err := ParseResults([]byte(bad))
		if err == nil || !strings.Contains(err.Error(), "entry 19999") || !strings.Contains(err.Error(), "score is NaN") {
			t.Fatalf("error %v, want entry 19999: score is NaN", err)
		}
	})
}

func TestParseResultsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantErr string
	}{
		{name: "NaN score", data: `[{"image_id":7,"category_id":1,"bbox":[1,2,3,4],"score":0.5},{"image_id":7,"category_id":1,"bbox":[1,2,3,4],"score":NaN}]`, wantErr: "entry 1: score is NaN"},
		{name: "overflowing score", data: `[{"image_id":7,"category_id":1,"bbox":[1,2,3,4],"score":1e400}]`, wantErr: "entry 0: score is +Inf"},
		{name: "negative height", data: `[{"image_id":7,"category_id":1,"bbox":[1,2,3,-0.5],"score":0.5}]`, wantErr: "entry 0: bbox height -0.5 is negative"},
		{name: "NaN coordinate", data: `[{"image_id":7,"category_id":1,"bbox":[NaN,2,3,4],"score":0.5}]`, wantErr: "entry 0: bbox[0] is NaN"},
		{name: "five numbers", data: `[{"image_id":7,"category_id":1,"bbox":[1,2,3,4,5],"score":0.5}]`, wantErr: "entry 0: bbox has more than 4 numbers"},
		{name: "missing category", data: `[{"image_id":7,"bbox":[1,2,3,4],"score":0.5}]`, wantErr: "entry 0: missing category_id"},
		{name: "string id", data: `[{"image_id":"7","category_id":1,"bbox":[1,2,3,4],"score":1}]`, wantErr: `entry 0: image_id: offset 13: expected a number, found '"'`},
		{name: "leading zero", data: `[{"image_id":07,"category_id":1,"bbox":[1,2,3,4],"score":1}]`, wantErr: `entry 0: image_id: offset 13: "07" is not an integer`},
		{name: "number without digits after the dot", data: `[{"image_id":7,"category_id":1,"bbox":[1.,2,3,4],"score":1}]`, wantErr: `bad number "1."`},
		{name: "invalid JSON in a skipped value", data: `[{"image_id":7,"x":[1,,2],"category_id":1,"bbox":[1,2,3,4],"score":1}]`, wantErr: "entry 0: offset 22: expected a number, found ','"},
		{name: "bad escape in a skipped string", data: `[{"image_id":7,"x":"\q","category_id":1,"bbox":[1,2,3,4],"score":1}]`, wantErr: "bad escape"},
		{name: "not a list", data: `{"image_id":7}`, wantErr: "expected '['"},
		{name: "trailing garbage", data: `[] x`, wantErr: "after the top-level value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseResults([]byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

const goodImages = `[{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}, {"id": 2, "file_name": "b.jpg", "width": 10, "height": 20}]`
const goodCats = `[{"id": 3, "name": "dog", "supercategory": "animal"}]`

// doc makes an instances document with one extra annotation between two
// good ones.
func doc(images, ann, cats string) string {
	return `{"info": {"year": 2017, "x": [1.5e3, null, true]}, "images": ` + images +
		`, "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "segmentation": [[1, 2, 3]]}, ` + ann +
		`, {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 1, 1], "area": 0.5, "iscrowd": 1}], "categories": ` + cats + `}`
}

func TestScanEntries(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		want    Annotation // the middle annotation, as the handler gets it
		wantErr string     // its entry error; "" = none
	}{
		{name: "good", doc: doc(goodImages, `{"id": 2, "image_id": 1, "category_id": 3, "bbox": [1.5, 2, 0, 4], "iscrowd": true, "ignore": 0, "difficult": 1, "truncated": 0.5}`, goodCats),
			want: Annotation{ID: 2, ImageID: 1, CategoryID: 3, BBox: [4]float64{1.5, 2, 0, 4}, IsCrowd: true, Difficult: true, Truncated: true,
				Fields: FieldID | FieldImageID | FieldCategoryID | FieldBBox | FieldIsCrowd | FieldIgnore | FieldDifficult | FieldTruncated}},
		{name: "area kept", doc: doc(goodImages, `{"id": 2.0, "image_id": 1e0, "category_id": 3, "bbox": [1, 2, 3, 4], "area": 7.25}`, goodCats),
			want: Annotation{ID: 2, ImageID: 1, CategoryID: 3, BBox: [4]float64{1, 2, 3, 4}, Area: 7.25, Fields: FieldID | FieldImageID | FieldCategoryID | FieldBBox | FieldArea}},
		{name: "missing bbox", doc: doc(goodImages, `{"id": 2, "image_id": 1, "category_id": 3}`, goodCats),
			want:    Annotation{ID: 2, ImageID: 1, CategoryID: 3, Fields: FieldID | FieldImageID | FieldCategoryID},
			wantErr: "annotations[1] (id 2): missing bbox"},
		{name: "string image_id, id after it", doc: doc(goodImages, `{"image_id": "1", "category_id": 3, "bbox": [1, 2, 3, 4], "id": 2}`, goodCats),
			want:    Annotation{ID: 2, CategoryID: 3, BBox: [4]float64{1, 2, 3, 4}, Fields: FieldID | FieldCategoryID | FieldBBox},
			wantErr: `annotations[1] (id 2): image_id: offset`},
		{name: "NaN area", doc: doc(goodImages, `{"id": 2, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "area": NaN}`, goodCats),
			want:    Annotation{ID: 2, ImageID: 1, CategoryID: 3, BBox: [4]float64{1, 2, 3, 4}, Area: math.NaN(), Fields: FieldID | FieldImageID | FieldCategoryID | FieldBBox | FieldArea},
			wantErr: "annotations[1] (id 2): area is NaN"},
		{name: "not an object", doc: doc(goodImages, `[1, {"a": 2}]`, goodCats), wantErr: `annotations[1]: [1, {"a": 2}] is not an object`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Annotation
			var errs []error
			var images []Image
			var cats []Category
			err := Scan([]byte(tt.doc), Handler{
				Image:    func(im Image, err error) error { images = append(images, im); return err },
				Category: func(c Category, err error) error { cats = append(cats, c); return err },
				Annotation: func(a Annotation, err error) error {
					got = append(got, a)
					errs = append(errs, err)
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 || errs[0] != nil || errs[2] != nil || got[0].Area != 12 || !got[2].IsCrowd || got[2].Area != 0.5 {
				t.Fatalf("good annotations: %+v, errors %v", got, errs)
			}
			wantImages := []Image{{ID: 1, FileName: "a.jpg", Width: 640, Height: 480, Fields: FieldID | FieldFileName | FieldWidth | FieldHeight},
				{ID: 2, FileName: "b.jpg", Width: 10, Height: 20, Fields: FieldID | FieldFileName | FieldWidth | FieldHeight}}
			if !reflect.DeepEqual(images, wantImages) || !reflect.DeepEqual(cats, []Category{{ID: 3, Name: "dog", Supercategory: "animal", Fields: FieldID | FieldName | FieldSupercategory}}) {
				t.Errorf("images %+v, categories %+v", images, cats)
			}
			if tt.wantErr == "" {
				if errs[1] != nil {
					t.Fatalf("entry error %v", errs[1])
				}
				if tt.want.Area == 0 {
					tt.want.Area = tt.want.BBox[2] * tt.want.BBox[3]
				}
			} else {
				var ee *EntryError
				if !errors.As(errs[1], &ee) || !strings.Contains(errs[1].Error(), tt.wantErr) || ee.Array != "annotations" || ee.Index != 1 {
					t.Fatalf("entry error %v (%T), want an *EntryError containing %q", errs[1], errs[1], tt.wantErr)
				}
			}
			if tt.want.Fields != 0 && !reflect.DeepEqual(fmt.Sprint(got[1]), fmt.Sprint(tt.want)) {
				t.Errorf("entry %+v\nwant  %+v", got[1], tt.want)
			}
		})
	}
}

func TestScanDocumentErrors(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{name: "missing images", doc: `{"categories": []}`, wantErr: `missing "images"`},
		{name: "missing categories", doc: `{"images": null}`, wantErr: `missing "categories"`},
		{name: "duplicate key", doc: `{"images": [], "images": [], "categories": []}`, wantErr: `duplicate key "images"`},
		{name: "images not an array", doc: `{"images": {}, "categories": []}`, wantErr: `"images": expected an array, found '{'`},
		{name: "truncated in an image", doc: `{"images": [{"id": 1, "file_name": "a`, wantErr: "images[0]: file_name: offset 35: unterminated string"},
		{name: "syntax error in an annotation", doc: `{"images": [], "annotations": [{"id": 1,, "x": 2}], "categories": []}`, wantErr: "annotations[0]: offset 40: expected an object key, found ','"},
		{name: "syntax error inside a bad value", doc: `{"images": [{"id": "x}], "categories": []}`, wantErr: "images[0]: offset 26: expected ',' or '}' in object, found 'c'"},
		{name: "top level is an array", doc: `[]`, wantErr: "offset 0: expected '{', found '['"},
		{name: "invalid skipped member", doc: `{"info": {"a": tru}, "images": [], "categories": []}`, wantErr: "expected true"},
		{name: "image without id", doc: `{"images": [{"width": 3}], "categories": []}`, wantErr: "images[0]: missing id"},
		{name: "category id not an integer", doc: `{"images": [], "categories": [{"id": 1.5}]}`, wantErr: `categories[0]: id: offset 37: "1.5" is not an integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInstances([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestWriteRead writes instances and results, checks them with
// encoding/json (an independent reader) and reads them back.
func TestWriteRead(t *testing.T) {
	in := &Instances{
		Images: []Image{{ID: 1, FileName: `a "quoted" name.jpg`, Width: 640, Height: 480}, {ID: 1 << 40, FileName: "é.png", Width: 1, Height: 1}},
		Annotations: []Annotation{
			{ID: 5, ImageID: 1, CategoryID: 18, BBox: [4]float64{0.1, 1e-7, 100.25, 3}, Area: 0.5, IsCrowd: true},
			{ID: 6, ImageID: 1 << 40, CategoryID: 1, BBox: [4]float64{0, 0, 1, 1}, Area: 1, Difficult: true, Truncated: true},
		},
		Categories: []Category{{ID: 1, Name: "person"}, {ID: 18, Name: "dog", Supercategory: "animal"}},
	}
	var buf bytes.Buffer
	if err := WriteInstances(&buf, in); err != nil {
		t.Fatal(err)
	}
	var generic struct {
		Images      []map[string]any `json:"images"`
		Annotations []map[string]any `json:"annotations"`
		Categories  []map[string]any `json:"categories"`
	}
	if err := json.Unmarshal(buf.Bytes(), &generic); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.Bytes())
	}
	wantAnn0 := map[string]any{"id": 5.0, "image_id": 1.0, "category_id": 18.0, "bbox": []any{0.1, 1e-7, 100.25, 3.0}, "area": 0.5, "iscrowd": 1.0}
	wantAnn1 := map[string]any{"id": 6.0, "image_id": float64(1 << 40), "category_id": 1.0, "bbox": []any{0.0, 0.0, 1.0, 1.0}, "area": 1.0, "iscrowd": 0.0, "difficult": 1.0, "truncated": 1.0}
	if !reflect.DeepEqual(generic.Annotations, []map[string]any{wantAnn0, wantAnn1}) ||
		generic.Images[0]["file_name"] != `a "quoted" name.jpg` || generic.Images[1]["file_name"] != "é.png" ||
		!reflect.DeepEqual(generic.Categories[1], map[string]any{"id": 18.0, "name": "dog", "supercategory": "animal"}) ||
		len(generic.Categories[0]) != 2 {
		t.Errorf("encoding/json reads %+v", generic)
	}
	back, err := ParseInstances(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for i := range back.Images {
		back.Images[i].Fields = 0
	}
	for i := range back.Annotations {
		back.Annotations[i].Fields = 0
	}
	for i := range back.Categories {
		back.Categories[i].Fields = 0
	}
	if !reflect.DeepEqual(back, in) {
		t.Errorf("read back %+v\nwant %+v", back, in)
	}

	res := []Result{{ImageID: 1, CategoryID: 18, BBox: [4]float64{1, 2, 3, 4}, Score: 0.9}, {ImageID: -3, CategoryID: 0, BBox: [4]float64{0.5, 0, 0, 1e6}, Score: -1}}
	buf.Reset()
	if err := WriteResults(&buf, res); err != nil {
		t.Fatal(err)
	}
	var generic2 []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &generic2); err != nil || len(generic2) != 2 ||
		!reflect.DeepEqual(generic2[0], map[string]any{"image_id": 1.0, "category_id": 18.0, "bbox": []any{1.0, 2.0, 3.0, 4.0}, "score": 0.9}) {
		t.Errorf("encoding/json reads %+v (%v)", generic2, err)
	}
	back2, err := DecodeResults(&buf)
	if err != nil || !reflect.DeepEqual(back2, res) {
		t.Errorf("read back %+v (%v), want %+v", back2, err, res)
	}
	buf.Reset()
	if err := WriteResults(&buf, nil); err != nil || buf.String() != "[]\n" {
		t.Errorf("empty list written as %q (%v)", buf.String(), err)
	}
	res[1].Score = math.NaN()
	if err := WriteResults(&buf, res); err == nil || !strings.Contains(err.Error(), "entry 1: NaN is not a JSON number") {
		t.Errorf("NaN score: %v", err)
	}
	in.Annotations[0].BBox[2] = math.Inf(1)
	if err := WriteInstances(&buf, in); err == nil || !strings.Contains(err.Error(), "annotations[0]: +Inf is not a JSON number") {
		t.Errorf("infinite width: %v", err)
	}
}

// Property: a box written as COCO [x,y,w,h] (BoxToXYWH, WriteResults) reads
// back exactly (ParseResults, XYWHToBox), for pixel-range float32
// coordinates.
func TestBoxRoundTripProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	coord := func() float32 {
		switch rng.IntN(3) {
		case 0:
			return float32(rng.IntN(10000))
		case 1:
			return rng.Float32() * 100000
		}
		return (rng.Float32() - 0.1) * 10
	}
	res := make([]Result, 50000)
	boxes := make([]box.Box, len(res))
	for i := range res {
		x1, y1 := coord(), coord()
		w, h := coord(), coord()
		boxes[i] = box.Box{X1: x1, Y1: y1, X2: x1 + max(w, -w), Y2: y1 + max(h, -h)}
		res[i] = Result{ImageID: 1, CategoryID: 1, BBox: BoxToXYWH(boxes[i]), Score: 1}
	}
	var buf bytes.Buffer
	if err := WriteResults(&buf, res); err != nil {
		t.Fatal(err)
	}
	back, err := ParseResults(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for i := range back {
		if got := XYWHToBox(back[i].BBox); got != boxes[i] {
			t.Fatalf("%v written as %v read back as %v", boxes[i], res[i].BBox, got)
		}
	}
}

// Property: validNumber agrees with encoding/json on number-like tokens.
func TestValidNumberMatchesJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	const alphabet = "0123456789-+.eE"
	for range 100000 {
		tok := make([]byte, 1+rng.IntN(8))
		for i := range tok {
			tok[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if got, want := validNumber(tok), json.Valid(tok); got != want {
			t.Fatalf("validNumber(%q) = %v, encoding/json says %v", tok, got, want)
		}
	}
}
