package coco

import (
	"errors"
	"fmt"
	"io"
	"math"
)

// Field names the keys of an entry, as bits of Image.Fields,
// Category.Fields and Annotation.Fields: the keys the entry had whose
// values could be read (a key given twice counts once; its last value is
// kept).
type Field uint32

const (
	FieldID Field = 1 << iota
	FieldImageID
	FieldCategoryID
	FieldBBox
	FieldArea
	FieldScore
	FieldIsCrowd
	FieldIgnore
	FieldDifficult
	FieldTruncated
	FieldFileName
	FieldWidth
	FieldHeight
	FieldName
	FieldSupercategory
)

// fieldNames lists the fields in the order missing ones are reported.
var fieldNames = []struct {
	bit  Field
	name string
}{
	{FieldID, "id"}, {FieldImageID, "image_id"}, {FieldCategoryID, "category_id"},
	{FieldBBox, "bbox"}, {FieldArea, "area"}, {FieldScore, "score"}, {FieldIsCrowd, "iscrowd"},
	{FieldIgnore, "ignore"}, {FieldDifficult, "difficult"}, {FieldTruncated, "truncated"},
	{FieldFileName, "file_name"}, {FieldWidth, "width"}, {FieldHeight, "height"},
	{FieldName, "name"}, {FieldSupercategory, "supercategory"},
}

// Image is one element of "images".
type Image struct {
	ID            int64
	FileName      string
	Width, Height int // pixels
	Fields        Field
}

// Category is one element of "categories".
type Category struct {
	ID            int64
	Name          string
	Supercategory string
	Fields        Field
}

// Annotation is one element of "annotations".
type Annotation struct {
	ID, ImageID, CategoryID int64
	// BBox is [x, y, w, h] in pixels, continuous: the box covers [x, x+w] x
	// [y, y+h].
	BBox [4]float64
	// Area is the "area" field (e.g. the mask's area, in pixels²), or
	// w*h when the file has none.
	Area    float64
	IsCrowd bool
	// Ignore is the "ignore" field that some tools write; pycocotools'
	// box evaluation replaces it by iscrowd.
	Ignore bool
	// Difficult and Truncated are not COCO fields: WriteInstances writes
	// them (only when true) to keep PASCAL VOC's flags.
	Difficult, Truncated bool
	Fields               Field
}

// Instances is a whole instances file.
type Instances struct {
	Images      []Image
	Categories  []Category
	Annotations []Annotation
}

// EntryError is a malformed entry of a well-formed document.
type EntryError struct {
	Array string // "images", "categories", "annotations", or "" for a results list
	Index int    // 0-based position in the array
	ID    int64  // the entry's "id", when HasID
	HasID bool
	Err   error
}

// Where names the entry: "annotations[12] (id 345)", "images[3]", or
// "entry 7" in a results list.
func (e *EntryError) Where() string {
	switch {
	case e.Array == "":
		return fmt.Sprintf("entry %d", e.Index)
	case e.HasID:
		return fmt.Sprintf("%s[%d] (id %d)", e.Array, e.Index, e.ID)
	}
	return fmt.Sprintf("%s[%d]", e.Array, e.Index)
}

func (e *EntryError) Error() string { return e.Where() + ": " + e.Err.Error() }
func (e *EntryError) Unwrap() error { return e.Err }

// Handler receives the entries of an instances file in file order. err is
// nil or an *EntryError; with an error the entry holds the fields that
// could be read (see Fields). A nil function ignores good entries and
// aborts on bad ones. A non-nil return aborts Scan with that error.
type Handler struct {
	Image      func(im Image, err error) error
	Category   func(c Category, err error) error
	Annotation func(a Annotation, err error) error
}

// Scan parses an instances document: a JSON object with the arrays
// "images" and "categories" (both required) and "annotations" (optional);
// other members are skipped. A null array counts as empty; a repeated
// array key is an error. Errors other than the handler's are syntax errors
// naming the byte offset and the entry, e.g. "images[3]: file_name: offset
// 1042: unterminated string".
func Scan(data []byte, h Handler) error {
	s := &scanner{data: data}
	seen := map[string]bool{}
	err := s.object(func(key []byte) error {
		name := string(key)
		switch name {
		case "images", "categories", "annotations":
		default:
			return s.skip()
		}
		if seen[name] {
			return fmt.Errorf("duplicate key %q", name)
		}
		seen[name] = true
		return entries(s, name, func(i int) error {
			switch name {
			case "images":
				return visit(s, name, i, parseImage, h.Image)
			case "categories":
				return visit(s, name, i, parseCategory, h.Category)
			}
			return visit(s, name, i, parseInstance, h.Annotation)
		})
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return err
	}
	for _, k := range []string{"images", "categories"} {
		if !seen[k] {
			return fmt.Errorf("missing %q", k)
		}
	}
	return nil
}

// visit parses element i of array and hands it to h (see Handler).
func visit[T any](s *scanner, array string, i int, parse func(*scanner, int) (T, error), h func(T, error) error) error {
	v, err := parse(s, i)
	if err != nil && !isEntryError(err) {
		return fmt.Errorf("%s[%d]: %w", array, i, err)
	}
	if h == nil {
		return err
	}
	return h(v, err)
}

func isEntryError(err error) bool {
	var e *EntryError
	return errors.As(err, &e)
}

// ParseInstances parses a whole instances document (Scan) and stops at the
// first bad entry.
func ParseInstances(data []byte) (*Instances, error) {
	in := &Instances{}
	err := Scan(data, Handler{
		Image: func(im Image, err error) error {
			in.Images = append(in.Images, im)
			return err
		},
		Category: func(c Category, err error) error {
			in.Categories = append(in.Categories, c)
			return err
		},
		Annotation: func(a Annotation, err error) error {
			in.Annotations = append(in.Annotations, a)
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	return in, nil
}

// DecodeInstances reads an instances document from r (all of it) and
// parses it with ParseInstances.
func DecodeInstances(r io.Reader) (*Instances, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return ParseInstances(data)
}

// entries walks the array value of key (null = empty), calling elem for
// each element; elem must consume it.
func entries(s *scanner, key string, elem func(i int) error) error {
	switch s.peek() {
	case 'n':
		return s.literal("null")
	case '[':
	default:
		return s.errorf("%q: expected an array, found %s", key, s.describe())
	}
	return s.array(elem)
}

// entryObject parses one array element that should be an object, calling
// field for every member. A value field cannot read (a type mismatch, a
// bad bbox) is skipped when it is valid JSON and its error, prefixed by the
// key when it is a syntaxError, becomes the returned bad; an element that
// is valid JSON but not an object gives bad too. err is a syntax error.
func entryObject(s *scanner, field func(key string) error) (bad, err error) {
	if s.peek() != '{' {
		start := s.pos
		if err := s.skip(); err != nil {
			return nil, err
		}
		return fmt.Errorf("%.20s is not an object", s.data[start:s.pos]), nil
	}
	err = s.object(func(key []byte) error {
		s.ws()
		start := s.pos
		k := string(key)
		ferr := field(k)
		if ferr == nil {
			return nil
		}
		s.pos = start
		if err := s.skip(); err != nil {
			return fmt.Errorf("%s: %w", k, ferr)
		}
		if bad == nil {
			var se *syntaxError
			if errors.As(ferr, &se) {
				ferr = fmt.Errorf("%s: %w", k, ferr)
			}
			bad = ferr
		}
		return nil
	})
	return bad, err
}

// parseEntry parses element i of array: read reads the value of key and
// returns the field's bit (0 for a skipped key), which is added to *fields
// when the value could be read; check runs when every value could be read.
// A bad entry gives an *EntryError; other errors are syntax errors.
func parseEntry(s *scanner, array string, i int, fields *Field, id *int64, read func(key string) (Field, error), check func() error) error {
	bad, err := entryObject(s, func(key string) error {
		bit, err := read(key)
		if err == nil {
			*fields |= bit
		}
		return err
	})
	if err != nil {
		return err
	}
	if bad == nil {
		bad = check()
	}
	if bad != nil {
		return &EntryError{Array: array, Index: i, ID: *id, HasID: *fields&FieldID != 0, Err: bad}
	}
	return nil
}

func parseImage(s *scanner, i int) (im Image, err error) {
	err = parseEntry(s, "images", i, &im.Fields, &im.ID, func(key string) (Field, error) {
		var err error
		var v int64
		switch key {
		case "id":
			im.ID, err = s.integer()
			return FieldID, err
		case "file_name":
			im.FileName, err = s.str()
			return FieldFileName, err
		case "width":
			v, err = s.integer()
			im.Width = int(v)
			return FieldWidth, err
		case "height":
			v, err = s.integer()
			im.Height = int(v)
			return FieldHeight, err
		}
		return 0, s.skip()
	}, func() error { return missing(im.Fields, FieldID) })
	return im, err
}

func parseCategory(s *scanner, i int) (c Category, err error) {
	err = parseEntry(s, "categories", i, &c.Fields, &c.ID, func(key string) (Field, error) {
		var err error
		switch key {
		case "id":
			c.ID, err = s.integer()
			return FieldID, err
		case "name":
			c.Name, err = s.str()
			return FieldName, err
		case "supercategory":
			c.Supercategory, err = s.str()
			return FieldSupercategory, err
		}
		return 0, s.skip()
	}, func() error { return missing(c.Fields, FieldID) })
	return c, err
}

// annotationField reads the value of key of an annotation or a result
// into a or score and returns the field's bit (0 for a skipped key).
func annotationField(s *scanner, key string, a *Annotation, score *float64) (Field, error) {
	var err error
	switch key {
	case "id":
		a.ID, err = s.integer()
		return FieldID, err
	case "image_id":
		a.ImageID, err = s.integer()
		return FieldImageID, err
	case "category_id":
		a.CategoryID, err = s.integer()
		return FieldCategoryID, err
	case "bbox":
		a.BBox, err = s.bbox()
		return FieldBBox, err
	case "area":
		a.Area, err = s.number()
		return FieldArea, err
	case "score":
		*score, err = s.number()
		return FieldScore, err
	case "iscrowd":
		a.IsCrowd, err = s.boolOrInt()
		return FieldIsCrowd, err
	case "ignore":
		a.Ignore, err = s.boolOrInt()
		return FieldIgnore, err
	case "difficult":
		a.Difficult, err = s.boolOrInt()
		return FieldDifficult, err
	case "truncated":
		a.Truncated, err = s.boolOrInt()
		return FieldTruncated, err
	}
	return 0, s.skip()
}

// missing returns an error naming the first field of required (in
// fieldNames order) that has is missing, or nil.
func missing(has, required Field) error {
	for _, f := range fieldNames {
		if required&f.bit != 0 && has&f.bit == 0 {
			return fmt.Errorf("missing %s", f.name)
		}
	}
	return nil
}

func parseInstance(s *scanner, i int) (a Annotation, err error) {
	var score float64
	err = parseEntry(s, "annotations", i, &a.Fields, &a.ID, func(key string) (Field, error) {
		return annotationField(s, key, &a, &score)
	}, func() error {
		if err := missing(a.Fields, FieldID|FieldImageID|FieldCategoryID|FieldBBox); err != nil {
			return err
		}
		if err := checkBBox(a.BBox); err != nil {
			return err
		}
		if a.Fields&FieldArea == 0 {
			a.Area = a.BBox[2] * a.BBox[3]
		} else if math.IsNaN(a.Area) {
			return errors.New("area is NaN")
		}
		return nil
	})
	return a, err
}

// checkBBox checks [x, y, w, h]: finite, w and h >= 0.
func checkBBox(b [4]float64) error {
	for i, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("bbox[%d] is %v", i, v)
		}
	}
	if b[2] < 0 {
		return fmt.Errorf("bbox width %v is negative", b[2])
	}
	if b[3] < 0 {
		return fmt.Errorf("bbox height %v is negative", b[3])
	}
	return nil
}
