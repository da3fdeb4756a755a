package coco

import (
	"encoding/json"
	"io"
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
// reads back as the same float64. Nothing is checked: ids are written as
// they are.
func WriteInstances(w io.Writer, in *Instances) error {
	b := make([]byte, 0, 1<<16)
	flush := func() error {
		_, err := w.Write(b)
		b = b[:0]
		return err
	}
	b = append(b, "{\"images\": ["...)
	for i, im := range in.Images {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n{\"id\":"...)
		b = strconv.AppendInt(b, im.ID, 10)
		b = append(b, ",\"file_name\":"...)
		b = appendString(b, im.FileName)
		b = append(b, ",\"width\":"...)
		b = strconv.AppendInt(b, int64(im.Width), 10)
		b = append(b, ",\"height\":"...)
		b = strconv.AppendInt(b, int64(im.Height), 10)
		b = append(b, '}')
		if len(b) > 1<<15 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	b = append(b, "],\n\"annotations\": ["...)
	for i, a := range in.Annotations {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n{\"id\":"...)
		b = strconv.AppendInt(b, a.ID, 10)
		b = append(b, ",\"image_id\":"...)
		b = strconv.AppendInt(b, a.ImageID, 10)
		b = append(b, ",\"category_id\":"...)
		b = strconv.AppendInt(b, a.CategoryID, 10)
		b = append(b, ",\"bbox\":"...)
		b = appendBBox(b, a.BBox)
		b = append(b, ",\"area\":"...)
		b = appendNumber(b, a.Area)
		b = append(b, ",\"iscrowd\":"...)
		b = appendFlag(b, a.IsCrowd)
		if a.Difficult {
			b = append(b, ",\"difficult\":1"...)
		}
		if a.Truncated {
			b = append(b, ",\"truncated\":1"...)
		}
		b = append(b, '}')
		if len(b) > 1<<15 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	b = append(b, "],\n\"categories\": ["...)
	for i, c := range in.Categories {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n{\"id\":"...)
		b = strconv.AppendInt(b, c.ID, 10)
		b = append(b, ",\"name\":"...)
		b = appendString(b, c.Name)
		if c.Supercategory != "" {
			b = append(b, ",\"supercategory\":"...)
			b = appendString(b, c.Supercategory)
		}
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	return flush()
}

// WriteResults writes res as a results list, the format pycocotools'
// loadRes reads: [{"image_id", "category_id", "bbox": [x,y,w,h],
// "score"}], one entry a line, numbers as in WriteInstances.
func WriteResults(w io.Writer, res []Result) error {
	b := make([]byte, 0, 1<<16)
	b = append(b, '[')
	for i, r := range res {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n{\"image_id\":"...)
		b = strconv.AppendInt(b, r.ImageID, 10)
		b = append(b, ",\"category_id\":"...)
		b = strconv.AppendInt(b, r.CategoryID, 10)
		b = append(b, ",\"bbox\":"...)
		b = appendBBox(b, r.BBox)
		b = append(b, ",\"score\":"...)
		b = appendNumber(b, r.Score)
		b = append(b, '}')
		if len(b) > 1<<15 {
			if _, err := w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	b = append(b, "]\n"...)
	_, err := w.Write(b)
	return err
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

func appendNumber(b []byte, v float64) []byte { return strconv.AppendFloat(b, v, 'f', -1, 64) }

func appendFlag(b []byte, v bool) []byte {
	if v {
		return append(b, '1')
	}
	return append(b, '0')
}

func appendBBox(b []byte, v [4]float64) []byte {
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNumber(b, x)
	}
	return append(b, ']')
}
