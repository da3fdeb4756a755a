package voc

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeAnnotation: the decoder never panics, errors are *Error naming
// the file, and what it accepts survives EncodeAnnotation and a second
// decode unchanged.
func FuzzDecodeAnnotation(f *testing.F) {
	f.Add([]byte("<annotation><folder>VOC2007</folder><filename>000005.jpg</filename><size><width>500</width><height>375</height><depth>3</depth></size>" +
		"<object><name>chair</name><pose>Rear</pose><truncated>0</truncated><difficult>0</difficult><bndbox><xmin>263</xmin><ymin>211</ymin><xmax>324</xmax><ymax>339</ymax></bndbox></object></annotation>"))
	f.Add([]byte("<annotation><size><width>1e3</width><height>5</height></size><object><name> person </name><difficult>2</difficult><bndbox><xmin>1.5</xmin><ymin>-1</ymin><xmax>1000</xmax><ymax>5</ymax></bndbox></object></annotation>"))
	f.Add([]byte("<annotation><size>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeAnnotation(bytes.NewReader(data), "fuzz.xml")
		if err != nil {
			var ve *Error
			if !errors.As(err, &ve) || ve.File != "fuzz.xml" {
				t.Fatalf("error %v (%T) is not an *Error naming fuzz.xml", err, err)
			}
			return
		}
		var buf bytes.Buffer
		if err := EncodeAnnotation(&buf, a); err != nil {
			t.Fatal(err)
		}
		back, err := DecodeAnnotation(&buf, "fuzz.xml")
		if err != nil {
			t.Fatalf("re-read of the written file: %v\n%s", err, buf.Bytes())
		}
		for i := range a.Objects {
			if a.Objects[i].Pose == "" {
				a.Objects[i].Pose = "Unspecified"
			}
		}
		if !reflect.DeepEqual(back, a) {
			t.Fatalf("round trip changed the annotation:\n got %+v\nwant %+v", back, a)
		}
	})
}
