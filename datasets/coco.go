package datasets

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"resdet/box"
)

// COCOOptions configures ReadCOCO. The zero value aborts on the first bad
// sample and does not look at image files.
type COCOOptions struct {
	// CheckImages makes a missing image file (imageDir/file_name) an error
	// (the file is only checked to exist, not decoded).
	CheckImages bool
	// SkipBad drops bad samples instead of failing, listing each error in
	// Set.Skipped: a bad image entry drops that image, a bad annotation drops
	// its image (or only itself when its image_id is unusable).
	SkipBad bool
}

// cocoBoxSlack is how far (in pixels) a COCO box may reach outside its image
// before it is an error: COCO boxes come from polygons and their float
// rounding. Boxes are kept as written, not clipped.
const cocoBoxSlack = 1

// ReadCOCO reads a COCO instances file (instances_*.json, or any file with
// "images", "categories" and optionally "annotations"). imageDir is joined to
// each file_name to make Record.ImagePath. See DecodeCOCO.
func ReadCOCO(annotationFile, imageDir string, o COCOOptions) (*Set, error) {
	f, err := os.Open(annotationFile)
	if err != nil {
		return nil, fmt.Errorf("coco: %w", err)
	}
	defer f.Close()
	return DecodeCOCO(bufio.NewReaderSize(f, 1<<20), annotationFile, imageDir, o)
}

// cocoImageJSON is one element of "images". Pointers tell missing fields.
type cocoImageJSON struct {
	ID       *int64  `json:"id"`
	FileName *string `json:"file_name"`
	Width    *int    `json:"width"`
	Height   *int    `json:"height"`
}

// cocoAnnJSON is one element of "annotations". Missing integer fields keep
// the missingID sentinel and a missing area stays NaN (neither can come from
// JSON), so no field needs a pointer. "segmentation" has no field: the
// decoder skips it without building it.
type cocoAnnJSON struct {
	ID         int64     `json:"id"`
	ImageID    int64     `json:"image_id"`
	CategoryID int64     `json:"category_id"`
	BBox       []float64 `json:"bbox"`
	Area       float64   `json:"area"`
	IsCrowd    int       `json:"iscrowd"`
	// Difficult and Truncated are not COCO fields: WriteCOCO adds them to
	// keep VOC flags, and reads ignore them when absent.
	Difficult int `json:"difficult"`
	Truncated int `json:"truncated"`
}

type cocoCatJSON struct {
	ID   *int64  `json:"id"`
	Name *string `json:"name"`
}

const missingID = math.MinInt64

// cocoAnn is a checked annotation waiting for its image and category.
type cocoAnn struct {
	id, imageID, catID int64
	box                box.Box
	area               float32
	crowd, difficult   bool
	truncated          bool
	index              int // position in "annotations"
}

// DecodeCOCO reads a COCO instances JSON document from r; file names it in
// errors. It streams: one array element is decoded at a time and polygon or
// RLE segmentations are skipped, never built, so a COCO-train2017-sized file
// (860k annotations, ~450 MB) loads in a few hundred MB.
//
// Records follow the order of "images"; Record.Name is file_name,
// ImagePath is imageDir joined with it (file_name alone if imageDir is "").
// Labels are contiguous in the order of category ids (Set.CategoryIDs,
// Set.Classes from the categories' names). Each record's objects keep the
// order of "annotations"; bbox [x, y, w, h] becomes Box{x, y, x+w, y+h}
// (float64 sums, rounded once), area defaults to w*h when absent, iscrowd
// sets Crowd. Required: image id, file_name, width, height (positive);
// annotation id, image_id (of an image in the file), category_id (of a
// category), bbox (4 finite numbers, w, h >= 0, inside the image up to
// cocoBoxSlack); category id and name. Duplicate image, annotation or
// category ids are errors. Bad samples give a *BadSampleError (see
// COCOOptions.SkipBad); malformed JSON, a document that is not an object, a
// missing "images" or "categories" array and bad categories always abort.
func DecodeCOCO(r io.Reader, file, imageDir string, o COCOOptions) (*Set, error) {
	fatal := func(format string, args ...any) error {
		return fmt.Errorf("coco: %s: %s", file, fmt.Sprintf(format, args...))
	}
	bad := func(where string, err error) error {
		return &BadSampleError{Format: "coco", File: file, Where: where, Err: err}
	}
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return nil, fatal("%v", err)
	}

	s := &Set{}
	var (
		records   []Record
		imageIdx  = make(map[int64]int) // image id -> index in records
		badImage  = make(map[int64]bool)
		anns      []cocoAnn
		annIDs    = make(map[int64]int) // annotation id -> index in "annotations"
		cats      []cocoCatJSON
		seenKey   = make(map[string]bool)
		annIssues []annIssue // bad annotations met while streaming (SkipBad only)
	)
	// skipImage drops image id (already known or still to come) for err.
	skipImage := func(id int64, err error) {
		if !badImage[id] {
			badImage[id] = true
			s.Skipped = append(s.Skipped, err)
		}
	}

	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fatal("%v", err)
		}
		key, _ := tok.(string)
		if seenKey[key] && (key == "images" || key == "annotations" || key == "categories") {
			return nil, fatal("duplicate key %q", key)
		}
		seenKey[key] = true
		switch key {
		case "images":
			var im cocoImageJSON
			err = decodeArray(dec, key, func(i int) error {
				im = cocoImageJSON{}
				if err := dec.Decode(&im); err != nil {
					if !isElementError(err) {
						return err
					}
					e := bad(entryName("images", i, im.ID), err)
					if !o.SkipBad {
						return e
					}
					if im.ID != nil {
						skipImage(*im.ID, e)
					} else {
						s.Skipped = append(s.Skipped, e)
					}
					return nil
				}
				rec, err := checkCOCOImage(im, imageDir, o.CheckImages)
				if im.ID != nil {
					_, dup := imageIdx[*im.ID]
					if err == nil && (dup || badImage[*im.ID]) {
						// A duplicate drops both entries: which one the
						// annotations mean is unknown.
						err = fmt.Errorf("duplicate image id %d", *im.ID)
					}
				}
				if err != nil {
					e := bad(entryName("images", i, im.ID), err)
					if !o.SkipBad {
						return e
					}
					if im.ID != nil {
						skipImage(*im.ID, e)
					} else {
						s.Skipped = append(s.Skipped, e)
					}
					return nil
				}
				imageIdx[rec.ID] = len(records)
				records = append(records, rec)
				return nil
			})
		case "annotations":
			var a cocoAnnJSON
			err = decodeArray(dec, key, func(i int) error {
				a = cocoAnnJSON{ID: missingID, ImageID: missingID, CategoryID: missingID, Area: math.NaN()}
				decErr := dec.Decode(&a)
				if decErr != nil && !isElementError(decErr) {
					return decErr
				}
				ann, err := checkCOCOAnn(&a, i)
				if decErr != nil {
					err = decErr
				}
				if err == nil && a.ID != missingID {
					if prev, dup := annIDs[a.ID]; dup {
						err = fmt.Errorf("duplicate annotation id %d (also annotations[%d])", a.ID, prev)
					}
				}
				if a.ID != missingID {
					if _, dup := annIDs[a.ID]; !dup {
						annIDs[a.ID] = i
					}
				}
				if err != nil {
					var id *int64
					if a.ID != missingID {
						id = &a.ID
					}
					e := bad(entryName("annotations", i, id), err)
					if !o.SkipBad {
						return e
					}
					annIssues = append(annIssues, annIssue{imageID: a.ImageID, err: e})
					return nil
				}
				anns = append(anns, ann)
				return nil
			})
		case "categories":
			err = decodeArray(dec, key, func(i int) error {
				var c cocoCatJSON
				if err := dec.Decode(&c); err != nil {
					return fmt.Errorf("categories[%d]: %w", i, err)
				}
				cats = append(cats, c)
				return nil
			})
		default:
			err = skipValue(dec)
		}
		if err != nil {
			var bse *BadSampleError
			if errors.As(err, &bse) {
				return nil, err
			}
			return nil, fatal("%v", err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fatal("%v", err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		return nil, fatal("data after the top-level object (%v, %v)", tok, err)
	}
	if !seenKey["images"] {
		return nil, fatal(`missing "images"`)
	}
	if !seenKey["categories"] {
		return nil, fatal(`missing "categories"`)
	}

	// Categories: contiguous labels in id order.
	catLabel := make(map[int64]int, len(cats))
	slices.SortStableFunc(cats, func(a, b cocoCatJSON) int {
		switch {
		case a.ID == nil || b.ID == nil:
			return 0
		case *a.ID < *b.ID:
			return -1
		case *a.ID > *b.ID:
			return 1
		}
		return 0
	})
	for i, c := range cats {
		if c.ID == nil {
			return nil, fatal("categories: an entry has no id")
		}
		if c.Name == nil || *c.Name == "" {
			return nil, fatal("categories: id %d: missing name", *c.ID)
		}
		if *c.ID < math.MinInt32 || *c.ID > math.MaxInt32 {
			return nil, fatal("categories: id %d out of range", *c.ID)
		}
		if _, dup := catLabel[*c.ID]; dup {
			return nil, fatal("categories: duplicate id %d", *c.ID)
		}
		catLabel[*c.ID] = i
		s.Classes = append(s.Classes, *c.Name)
		s.CategoryIDs = append(s.CategoryIDs, int(*c.ID))
	}

	// Annotations whose problems were met while streaming drop their image
	// when it exists, otherwise they are reported alone.
	for _, is := range annIssues {
		if _, ok := imageIdx[is.imageID]; ok {
			skipImage(is.imageID, is.err)
		} else if !badImage[is.imageID] {
			s.Skipped = append(s.Skipped, is.err)
		}
	}
	// Resolve images and categories, check boxes against image sizes.
	counts := make([]int, len(records))
	keep := anns[:0]
	for _, a := range anns {
		ri, ok := imageIdx[a.imageID]
		var err error
		switch {
		case !ok && badImage[a.imageID]:
			continue // its image was dropped and reported
		case !ok:
			err = fmt.Errorf("image_id %d is not in images", a.imageID)
		case badImage[a.imageID]:
			continue
		}
		if err == nil {
			if _, ok := catLabel[a.catID]; !ok {
				err = fmt.Errorf("category_id %d is not in categories", a.catID)
			}
		}
		if err == nil {
			if e := checkBox(a.box, records[ri].Width, records[ri].Height, cocoBoxSlack); e != nil {
				xywh := a.box.XYWH()
				err = fmt.Errorf("bbox %v outside the %dx%d image", xywh, records[ri].Width, records[ri].Height)
			}
		}
		if err != nil {
			e := bad(entryName("annotations", a.index, &a.id), err)
			if !o.SkipBad {
				return nil, e
			}
			if ok {
				skipImage(a.imageID, e)
			} else {
				s.Skipped = append(s.Skipped, e)
			}
			continue
		}
		counts[ri]++
		keep = append(keep, a)
	}
	for i := range records {
		if counts[i] > 0 {
			records[i].Objects = make([]Object, 0, counts[i])
		}
	}
	for _, a := range keep {
		if badImage[a.imageID] {
			continue
		}
		ri := imageIdx[a.imageID]
		records[ri].Objects = append(records[ri].Objects, Object{
			Box: a.box, Label: catLabel[a.catID], Crowd: a.crowd, Area: a.area, ID: a.id,
			Difficult: a.difficult, Truncated: a.truncated,
		})
	}
	s.Records = make([]Record, 0, len(records))
	for _, r := range records {
		if !badImage[r.ID] {
			s.Records = append(s.Records, r)
		}
	}
	return s, nil
}

// entryName names element i of array key, with its id when known:
// "annotations[12] (id 345)".
func entryName(key string, i int, id *int64) string {
	if id == nil {
		return fmt.Sprintf("%s[%d]", key, i)
	}
	return fmt.Sprintf("%s[%d] (id %d)", key, i, *id)
}

type annIssue struct {
	imageID int64
	err     error
}

// checkCOCOImage checks one "images" element and makes its record.
func checkCOCOImage(im cocoImageJSON, imageDir string, checkFile bool) (Record, error) {
	switch {
	case im.ID == nil:
		return Record{}, errors.New("missing id")
	case im.FileName == nil || *im.FileName == "":
		return Record{}, errors.New("missing file_name")
	case im.Width == nil:
		return Record{}, errors.New("missing width")
	case im.Height == nil:
		return Record{}, errors.New("missing height")
	case *im.Width < 1 || *im.Width > maxImageSide:
		return Record{}, fmt.Errorf("width %d not in [1, %d]", *im.Width, maxImageSide)
	case *im.Height < 1 || *im.Height > maxImageSide:
		return Record{}, fmt.Errorf("height %d not in [1, %d]", *im.Height, maxImageSide)
	}
	r := Record{ID: *im.ID, Name: *im.FileName, ImagePath: *im.FileName, Width: *im.Width, Height: *im.Height}
	if imageDir != "" {
		r.ImagePath = filepath.Join(imageDir, *im.FileName)
	}
	if checkFile {
		if _, err := os.Stat(r.ImagePath); err != nil {
			return Record{}, fmt.Errorf("image file: %w", err)
		}
	}
	return r, nil
}

// checkCOCOAnn checks the fields of one "annotations" element that need
// nothing else, and converts its bbox.
func checkCOCOAnn(a *cocoAnnJSON, index int) (cocoAnn, error) {
	switch {
	case a.ID == missingID:
		return cocoAnn{}, errors.New("missing id")
	case a.ImageID == missingID:
		return cocoAnn{}, errors.New("missing image_id")
	case a.CategoryID == missingID:
		return cocoAnn{}, errors.New("missing category_id")
	case a.BBox == nil:
		return cocoAnn{}, errors.New("missing bbox")
	case len(a.BBox) != 4:
		return cocoAnn{}, fmt.Errorf("bbox has %d numbers, want 4", len(a.BBox))
	}
	x, y, w, h := a.BBox[0], a.BBox[1], a.BBox[2], a.BBox[3]
	for _, v := range a.BBox {
		if math.Abs(v) > maxImageSide {
			return cocoAnn{}, fmt.Errorf("bbox %v out of range", a.BBox)
		}
	}
	if w < 0 || h < 0 {
		return cocoAnn{}, fmt.Errorf("bbox %v has a negative size", a.BBox)
	}
	area := a.Area
	if math.IsNaN(area) {
		area = w * h
	}
	return cocoAnn{
		id: a.ID, imageID: a.ImageID, catID: a.CategoryID,
		box:   box.Box{X1: float32(x), Y1: float32(y), X2: float32(x + w), Y2: float32(y + h)},
		area:  float32(area),
		crowd: a.IsCrowd != 0, difficult: a.Difficult != 0, truncated: a.Truncated != 0,
		index: index,
	}, nil
}

// isElementError reports whether err from Decode concerns only the value
// just decoded (a JSON type mismatch), after which the stream is still good.
func isElementError(err error) bool {
	var te *json.UnmarshalTypeError
	return errors.As(err, &te)
}

// expectDelim reads the next token and checks it is d.
func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if got, ok := tok.(json.Delim); !ok || got != d {
		return fmt.Errorf("found %v, want %q", tok, string(d))
	}
	return nil
}

// decodeArray reads a JSON array, calling elem(i) to decode each element
// from dec. A null counts as an empty array.
func decodeArray(dec *json.Decoder, key string, elem func(i int) error) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("%q is %v, want an array", key, tok)
	}
	for i := 0; dec.More(); i++ {
		if err := elem(i); err != nil {
			return err
		}
	}
	_, err = dec.Token() // ']'
	return err
}

// skipValue consumes one JSON value token by token, so an unknown large
// value is never held whole.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			default:
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

func appendFloat64(b []byte, v float64) []byte { return strconv.AppendFloat(b, v, 'f', -1, 64) }
func appendFloat32(b []byte, v float32) []byte {
	return strconv.AppendFloat(b, float64(v), 'f', -1, 32)
}

// appendXYWH appends box b as COCO's [x,y,w,h], w and h computed in float64
// so that x+w reads back as exactly X2.
func appendXYWH(b []byte, bx box.Box) []byte {
	b = append(b, '[')
	b = appendFloat64(b, float64(bx.X1))
	b = append(b, ',')
	b = appendFloat64(b, float64(bx.Y1))
	b = append(b, ',')
	b = appendFloat64(b, float64(bx.X2)-float64(bx.X1))
	b = append(b, ',')
	b = appendFloat64(b, float64(bx.Y2)-float64(bx.Y1))
	return append(b, ']')
}

// WriteCOCO writes s as a COCO instances JSON file (atomically): "images"
// (id = Record.ID, file_name = base of ImagePath or Name when ImagePath is
// empty, width, height), "annotations" (id, image_id, category_id, bbox
// [x,y,w,h], area, iscrowd, plus "difficult": 1 / "truncated": 1 for VOC
// flags, which pycocotools ignores and ReadCOCO reads back) and
// "categories" (id, name). Category ids are s.CategoryIDs, or label+1 when
// nil (a VOC set). Annotation ids are Object.ID when all are non-zero and
// unique, else 1..N in record order. Area is Object.Area, or the box area
// when Area is 0. Duplicate image ids and labels out of range are errors.
func WriteCOCO(path string, s *Set) error {
	fail := func(err error) error { return fmt.Errorf("coco: write %s: %w", path, err) }
	for l := range s.Classes {
		if _, err := s.categoryID(l); err != nil {
			return fail(err)
		}
	}
	renumber := false
	annIDs := make(map[int64]bool)
	imageIDs := make(map[int64]bool, len(s.Records))
	for i, r := range s.Records {
		if imageIDs[r.ID] {
			return fail(fmt.Errorf("record %d: duplicate image id %d", i, r.ID))
		}
		imageIDs[r.ID] = true
		for j, o := range r.Objects {
			if o.Label < 0 || o.Label >= len(s.Classes) {
				return fail(fmt.Errorf("record %d object %d: label %d out of range [0, %d)", i, j, o.Label, len(s.Classes)))
			}
			if o.ID == 0 || annIDs[o.ID] {
				renumber = true
			}
			annIDs[o.ID] = true
		}
	}
	err := writeFileAtomic(path, func(w *bufio.Writer) error {
		b := make([]byte, 0, 512)
		w.WriteString("{\"images\": [")
		for i, r := range s.Records {
			b = b[:0]
			if i > 0 {
				b = append(b, ',')
			}
			name := r.Name
			if r.ImagePath != "" {
				name = filepath.Base(r.ImagePath)
			}
			b = append(b, "\n{\"id\":"...)
			b = strconv.AppendInt(b, r.ID, 10)
			b = append(b, ",\"file_name\":"...)
			b = appendJSONString(b, name)
			b = append(b, ",\"width\":"...)
			b = strconv.AppendInt(b, int64(r.Width), 10)
			b = append(b, ",\"height\":"...)
			b = strconv.AppendInt(b, int64(r.Height), 10)
			b = append(b, '}')
			w.Write(b)
		}
		w.WriteString("],\n\"annotations\": [")
		next := int64(1)
		first := true
		for _, r := range s.Records {
			for _, o := range r.Objects {
				id := o.ID
				if renumber {
					id = next
					next++
				}
				b = b[:0]
				if !first {
					b = append(b, ',')
				}
				first = false
				cat, _ := s.categoryID(o.Label)
				area := o.Area
				if area == 0 {
					area = o.Box.Area()
				}
				b = append(b, "\n{\"id\":"...)
				b = strconv.AppendInt(b, id, 10)
				b = append(b, ",\"image_id\":"...)
				b = strconv.AppendInt(b, r.ID, 10)
				b = append(b, ",\"category_id\":"...)
				b = strconv.AppendInt(b, int64(cat), 10)
				b = append(b, ",\"bbox\":"...)
				b = appendXYWH(b, o.Box)
				b = append(b, ",\"area\":"...)
				b = appendFloat32(b, area)
				b = append(b, ",\"iscrowd\":"...)
				b = strconv.AppendInt(b, int64(b2i(o.Crowd)), 10)
				if o.Difficult {
					b = append(b, ",\"difficult\":1"...)
				}
				if o.Truncated {
					b = append(b, ",\"truncated\":1"...)
				}
				b = append(b, '}')
				w.Write(b)
			}
		}
		w.WriteString("],\n\"categories\": [")
		for l, name := range s.Classes {
			b = b[:0]
			if l > 0 {
				b = append(b, ',')
			}
			cat, _ := s.categoryID(l)
			b = append(b, "\n{\"id\":"...)
			b = strconv.AppendInt(b, int64(cat), 10)
			b = append(b, ",\"name\":"...)
			b = appendJSONString(b, name)
			b = append(b, '}')
			w.Write(b)
		}
		_, err := w.WriteString("]}\n")
		return err
	})
	if err != nil {
		return fail(err)
	}
	return nil
}

// WriteCOCOResults writes dets as a COCO results JSON file (atomically), the
// format pycocotools' loadRes reads: [{"image_id", "category_id", "bbox":
// [x,y,w,h], "score"}], in the order of dets. category_id comes from
// Detection.Label through s (s.CategoryIDs, or label+1 for a set without
// them); numbers are written in full precision.
func WriteCOCOResults(path string, s *Set, dets []Detection) error {
	fail := func(err error) error { return fmt.Errorf("coco: write %s: %w", path, err) }
	for i, d := range dets {
		if _, err := s.categoryID(d.Label); err != nil {
			return fail(fmt.Errorf("detection %d: %w", i, err))
		}
	}
	err := writeFileAtomic(path, func(w *bufio.Writer) error {
		b := make([]byte, 0, 256)
		w.WriteByte('[')
		for i, d := range dets {
			b = b[:0]
			if i > 0 {
				b = append(b, ',')
			}
			cat, _ := s.categoryID(d.Label)
			b = append(b, "\n{\"image_id\":"...)
			b = strconv.AppendInt(b, d.ImageID, 10)
			b = append(b, ",\"category_id\":"...)
			b = strconv.AppendInt(b, int64(cat), 10)
			b = append(b, ",\"bbox\":"...)
			b = appendXYWH(b, d.Box)
			b = append(b, ",\"score\":"...)
			b = appendFloat32(b, d.Score)
			b = append(b, '}')
			w.Write(b)
		}
		_, err := w.WriteString("]\n")
		return err
	})
	if err != nil {
		return fail(err)
	}
	return nil
}

type cocoResultJSON struct {
	ImageID    *int64    `json:"image_id"`
	CategoryID *int64    `json:"category_id"`
	BBox       []float64 `json:"bbox"`
	Score      *float64  `json:"score"`
}

// ReadCOCOResults reads a COCO results JSON file (WriteCOCOResults' format):
// category ids are mapped to labels through s (an id not in s is an error),
// Detection.Name is the file_name of the image in s with that id ("" when s
// has none), boxes convert as Box{x, y, x+w, y+h}. Every entry needs
// image_id, category_id, bbox (4 finite numbers, w, h >= 0) and score;
// errors name the entry's index.
func ReadCOCOResults(path string, s *Set) ([]Detection, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("coco: %w", err)
	}
	defer f.Close()
	catLabel := make(map[int64]int, len(s.Classes))
	for l := range s.Classes {
		id, err := s.categoryID(l)
		if err != nil {
			return nil, fmt.Errorf("coco: results %s: %w", path, err)
		}
		catLabel[int64(id)] = l
	}
	names := make(map[int64]string, len(s.Records))
	for _, r := range s.Records {
		names[r.ID] = r.Name
	}
	dec := json.NewDecoder(bufio.NewReaderSize(f, 1<<20))
	var dets []Detection
	err = decodeArray(dec, "results", func(i int) error {
		var e cocoResultJSON
		if err := dec.Decode(&e); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		switch {
		case e.ImageID == nil:
			return fmt.Errorf("entry %d: missing image_id", i)
		case e.CategoryID == nil:
			return fmt.Errorf("entry %d: missing category_id", i)
		case e.Score == nil:
			return fmt.Errorf("entry %d: missing score", i)
		case len(e.BBox) != 4:
			return fmt.Errorf("entry %d: bbox has %d numbers, want 4", i, len(e.BBox))
		case e.BBox[2] < 0 || e.BBox[3] < 0:
			return fmt.Errorf("entry %d: bbox %v has a negative size", i, e.BBox)
		}
		label, ok := catLabel[*e.CategoryID]
		if !ok {
			return fmt.Errorf("entry %d: category_id %d is not in the set", i, *e.CategoryID)
		}
		x, y, w, h := e.BBox[0], e.BBox[1], e.BBox[2], e.BBox[3]
		dets = append(dets, Detection{
			ImageID: *e.ImageID, Name: names[*e.ImageID], Label: label, Score: float32(*e.Score),
			Box: box.Box{X1: float32(x), Y1: float32(y), X2: float32(x + w), Y2: float32(y + h)},
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("coco: results %s: %w", path, err)
	}
	return dets, nil
}
