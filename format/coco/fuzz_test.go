package coco

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

// FuzzParseResults: the results parser never panics, the chunked parallel
// parser either declines or agrees with the sequential one, and what is
// accepted is JSON (Python's NaN and Infinity aside).
func FuzzParseResults(f *testing.F) {
	f.Add([]byte(`[{"image_id":1,"category_id":1,"bbox":[1,2,3,4],"score":0.5},{"image_id":2,"category_id":3,"bbox":[1e2,2.5,3,4],"score":-1}]`))
	f.Add([]byte(`[{"image_id":1,"x":{"a":"},{"},"category_id":1,"bbox":[1,2,3,4],"score":NaN}, {}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		seq, err := ParseResults(data) // below 1 MiB: sequential
		if err == nil && !validJSON(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		for _, n := range []int{2, 3} {
			par, ok := parseResultsParallel(data, n)
			if !ok {
				continue
			}
			if err != nil {
				t.Fatalf("parallel parse accepted what the sequential one rejects: %v", err)
			}
			if !slices.Equal(par, seq) {
				t.Fatalf("parallel (%d chunks) and sequential parses differ", n)
			}
		}
	})
}

// FuzzScan: Scan never panics, entry errors name their array and index,
// and what is accepted is JSON (Python's NaN and Infinity aside).
func FuzzScan(f *testing.F) {
	f.Add([]byte(doc(goodImages, `{"id": 2, "image_id": 1, "category_id": 3, "bbox": [1.5, 2, 0, 4]}`, goodCats)))
	f.Add([]byte(doc(goodImages, `{"image_id": "1", "bbox": [1, 2, 3, 4, 5], "id": 2}`, goodCats)))
	f.Add([]byte(`{"images": null, "categories": [{"id": 1.0}], "annotations": [null, 12, {"area": NaN}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(array string, n *int) func(err error) error {
			return func(err error) error {
				i := *n
				*n++
				if err == nil {
					return nil
				}
				var ee *EntryError
				if !errors.As(err, &ee) || ee.Array != array || ee.Index != i {
					t.Fatalf("entry error %v (%T) for %s[%d]", err, err, array, i)
				}
				return nil
			}
		}
		var ni, nc, na int
		ci, cc, ca := check("images", &ni), check("categories", &nc), check("annotations", &na)
		err := Scan(data, Handler{
			Image:      func(_ Image, err error) error { return ci(err) },
			Category:   func(_ Category, err error) error { return cc(err) },
			Annotation: func(_ Annotation, err error) error { return ca(err) },
		})
		if err == nil && !validJSON(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
	})
}

// validJSON reports whether data is JSON once Python's NaN, Infinity and
// -Infinity literals are replaced by 0.
func validJSON(data []byte) bool {
	for _, lit := range []string{"-Infinity", "Infinity", "NaN"} {
		data = bytes.ReplaceAll(data, []byte(lit), []byte("0"))
	}
	return json.Valid(data)
}
