package datasets

import (
	"fmt"

	"resdet/box"
)

// Object is one annotated object of an image.
type Object struct {
	// Box is in the project convention (package box). VOC files convert
	// through VOCToBox, COCO's [x, y, w, h] as Box{x, y, x+w, y+h}.
	Box       box.Box
	Label     int     // 0-based index into Set.Classes
	Difficult bool    // VOC <difficult>; false for COCO
	Truncated bool    // VOC <truncated>; false for COCO
	Crowd     bool    // COCO iscrowd; false for VOC
	Area      float32 // COCO "area" (w*h when absent); VOC: Box.Area(), in square pixels
	ID        int64   // COCO annotation id; 0 for VOC
}

// Record is one image and its objects.
type Record struct {
	ID   int64  // COCO image id; VOC: 0-based position in the split list
	Name string // VOC image id ("000005"); COCO file_name
	// ImagePath is the path of the image file (directory joined). The readers
	// check that it exists only when their CheckImages option is set.
	ImagePath     string
	Width, Height int // image size in pixels, from the annotation
	Objects       []Object
}

// Set is a whole annotated split.
type Set struct {
	Classes []string // label -> class name
	// CategoryIDs maps label -> COCO category id (gaps allowed); nil for VOC.
	CategoryIDs []int
	Records     []Record
	// Skipped lists the samples dropped because the reader's SkipBad option
	// was set, each a *BadSampleError naming the file and entry.
	Skipped []error
}

// Len returns the number of records. Set implements Dataset.
func (s *Set) Len() int { return len(s.Records) }

// Record returns record i. It panics if i is out of range.
func (s *Set) Record(i int) Record { return s.Records[i] }

// NumObjects returns the number of objects over all records.
func (s *Set) NumObjects() int {
	n := 0
	for _, r := range s.Records {
		n += len(r.Objects)
	}
	return n
}

// Filter returns a set with the records for which keep returns true, in
// order, sharing s's classes and category ids. Training usually drops images
// without usable objects, as torchvision's and Detectron2's COCO training
// do:
//
//	train := s.Filter(func(r Record) bool {
//		return slices.ContainsFunc(r.Objects, func(o Object) bool { return !o.Crowd && !o.Box.Empty() })
//	})
func (s *Set) Filter(keep func(Record) bool) *Set {
	out := &Set{Classes: s.Classes, CategoryIDs: s.CategoryIDs, Skipped: s.Skipped}
	for _, r := range s.Records {
		if keep(r) {
			out.Records = append(out.Records, r)
		}
	}
	return out
}

// categoryID returns the COCO category id of label: s.CategoryIDs[label], or
// label+1 when the set has no category ids (a VOC set).
func (s *Set) categoryID(label int) (int, error) {
	if label < 0 || label >= len(s.Classes) {
		return 0, fmt.Errorf("label %d out of range [0, %d)", label, len(s.Classes))
	}
	if s.CategoryIDs == nil {
		return label + 1, nil
	}
	if len(s.CategoryIDs) != len(s.Classes) {
		return 0, fmt.Errorf("%d category ids for %d classes", len(s.CategoryIDs), len(s.Classes))
	}
	return s.CategoryIDs[label], nil
}

// Detection is one detected object, as written to and read from result files.
type Detection struct {
	ImageID int64   // COCO image id (Record.ID)
	Name    string  // VOC image id (Record.Name)
	Label   int     // 0-based index into the class list
	Box     box.Box // project convention
	Score   float32
}

// Dataset is what samplers and loaders read through: a fixed number of
// records, addressed by index 0..Len()-1.
type Dataset interface {
	Len() int
	Record(i int) Record
}

// BadSampleError reports a problem with one sample of a data set.
type BadSampleError struct {
	Format string // "voc" or "coco"
	File   string // the file holding the bad entry
	Where  string // the entry, e.g. "object 2 (dog)" or "annotations[12] (id 345)"; may be empty
	Err    error  // what is wrong, e.g. "xmax 10 < xmin 20"
}

func (e *BadSampleError) Error() string {
	if e.Where == "" {
		return fmt.Sprintf("%s: %s: %v", e.Format, e.File, e.Err)
	}
	return fmt.Sprintf("%s: %s: %s: %v", e.Format, e.File, e.Where, e.Err)
}

func (e *BadSampleError) Unwrap() error { return e.Err }

// checkBox returns an error when b is inverted or lies outside the w x h
// image by more than slack pixels.
func checkBox(b box.Box, w, h int, slack float32) error {
	fw, fh := float32(w), float32(h)
	switch {
	case b.X1 < -slack || b.Y1 < -slack || b.X2 > fw+slack || b.Y2 > fh+slack:
		return fmt.Errorf("box %v outside the %dx%d image", b, w, h)
	}
	return nil
}
