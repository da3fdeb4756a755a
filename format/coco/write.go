package coco

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"

	"resdet/box"
)

// XYWHToBox converts COCO's [x, y, w, h] to the project convention:
// Box{x, y, x+w, y+h}, the sums computed in float64 and rounded once to
// float32.
func XYWHToBox(b [4]float64) box.Box {
	return box.Box{X1: float32(b[0]), Y1: float32(b[1]), X2: float32(b[0] + b[2]), Y2: float32(b[1] + b[3])}
}

// BoxToXYWH converts a box in the project convention to COCO's [x, y, w,
// h], w = X2-X1 and h = Y2-Y1 computed in float64, so that XYWHToBox gives
// b back exactly.
func BoxToXYWH(b box.Box) [4]float64 {
	return [4]float64{float64(b.X1), float64(b.Y1), float64(b.X2) - float64(b.X1), float64(b.Y2) - float64(b.Y1)}
}

// WriteInstances writes in as an instances document: "images" (id,
// file_name, width, height), "annotations" (id, image_id, category_id,
// bbox, area, iscrowd, and "difficult": 1 / "truncated": 1 when set) and
// "categories" (id, name, and supercategory when not empty), one entry a
// line, in slice order. Numbers are written as the shortest decimal that
// reads back as the same float64. Ids are written as they are, unchecked;
// a NaN or infinite number is an error naming the entry.
func WriteInstances(w io.Writer, in *Instances) error {
	j := &jsonWriter{w: w}
	j.raw("{\"images\": [")
	for i, im := range in.Images {
		j.begin(i)
		j.int("id", im.ID)
		j.str("file_name", im.FileName)
		j.int("width", int64(im.Width))
		j.int("height", int64(im.Height))
		j.end()
	}
	j.raw("],\n\"annotations\": [")
	for i, a := range in.Annotations {
		j.begin(i)
		j.int("id", a.ID)
		j.int("image_id", a.ImageID)
		j.int("category_id", a.CategoryID)
		j.bbox(a.BBox)
		j.num("area", a.Area)
		j.flag("iscrowd", a.IsCrowd)
		if a.Difficult {
			j.flag("difficult", true)
		}
		if a.Truncated {
			j.flag("truncated", true)
		}
		j.end()
		if j.err != nil {
			return fmt.Errorf("annotations[%d]: %w", i, j.err)
		}
	}
	j.raw("],\n\"categories\": [")
	for i, c := range in.Categories {
		j.begin(i)
		j.int("id", c.ID)
		j.str("name", c.Name)
		if c.Supercategory != "" {
			j.str("supercategory", c.Supercategory)
		}
		j.end()
	}
	j.raw("]}\n")
	return j.flush()
}

// WriteResults writes res as a results list, the format pycocotools'
// loadRes reads: [{"image_id", "category_id", "bbox": [x,y,w,h],
// "score"}], one entry a line, numbers as in WriteInstances.
func WriteResults(w io.Writer, res []Result) error {
	j := &jsonWriter{w: w}
	j.raw("[")
	for i, r := range res {
		j.begin(i)
		j.int("image_id", r.ImageID)
		j.int("category_id", r.CategoryID)
		j.bbox(r.BBox)
		j.num("score", r.Score)
		j.end()
		if j.err != nil {
			return fmt.Errorf("entry %d: %w", i, j.err)
		}
	}
	j.raw("]\n")
	return j.flush()
}

// jsonWriter writes the one-entry-a-line layout of WriteInstances and
// WriteResults, buffering up to 32 KiB. err holds the first error.
type jsonWriter struct {
	w     io.Writer
	b     []byte
	first bool // no member written yet in the current entry
	err   error
}

func (j *jsonWriter) raw(s string) { j.b = append(j.b, s...) }

// begin starts the entry at index i of its list.
func (j *jsonWriter) begin(i int) {
	if i > 0 {
		j.b = append(j.b, ',')
	}
	j.b = append(j.b, "\n{"...)
	j.first = true
}

func (j *jsonWriter) end() {
	j.b = append(j.b, '}')
	if len(j.b) > 1<<15 {
		j.flush()
	}
}

func (j *jsonWriter) key(k string) {
	if !j.first {
		j.b = append(j.b, ',')
	}
	j.first = false
	j.b = append(j.b, '"')
	j.b = append(j.b, k...)
	j.b = append(j.b, '"', ':')
}

func (j *jsonWriter) int(k string, v int64) {
	j.key(k)
	j.b = strconv.AppendInt(j.b, v, 10)
}

func (j *jsonWriter) str(k, v string) {
	j.key(k)
	q, _ := json.Marshal(v) // a string always marshals
	j.b = append(j.b, q...)
}

func (j *jsonWriter) flag(k string, v bool) {
	j.key(k)
	if v {
		j.b = append(j.b, '1')
	} else {
		j.b = append(j.b, '0')
	}
}

func (j *jsonWriter) number(v float64) {
	if (math.IsNaN(v) || math.IsInf(v, 0)) && j.err == nil {
		j.err = fmt.Errorf("%v is not a JSON number", v)
	}
	j.b = strconv.AppendFloat(j.b, v, 'f', -1, 64)
}

func (j *jsonWriter) num(k string, v float64) {
	j.key(k)
	j.number(v)
}

func (j *jsonWriter) bbox(v [4]float64) {
	j.key("bbox")
	j.b = append(j.b, '[')
	for i, x := range v {
		if i > 0 {
			j.b = append(j.b, ',')
		}
		j.number(x)
	}
	j.b = append(j.b, ']')
}

func (j *jsonWriter) flush() error {
	if j.err == nil {
		_, j.err = j.w.Write(j.b)
	}
	j.b = j.b[:0]
	return j.err
}
