package datasets

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"resdet/format/coco"
	"resdet/internal/atomicfile"
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
	data, err := os.ReadFile(annotationFile) // sized from the file: no buffer growth
	if err != nil {
		return nil, fmt.Errorf("coco: %w", err)
	}
	return decodeCOCO(data, annotationFile, imageDir, o)
}

// missingID marks an annotation's image_id the file does not give.
const missingID = math.MinInt64

// cocoAnn is a checked annotation waiting for its image and category.
type cocoAnn struct {
	coco.Annotation
	index int // position in "annotations"
}

type annIssue struct {
	imageID int64
	err     error
}

// DecodeCOCO reads a COCO instances JSON document from r with format/coco
// (its package doc gives the syntax and entry rules); file names it in
// errors. The document is read whole into memory; polygon and RLE
// segmentations are skipped, never built (a synthetic train2017-sized file,
// 460 MB with 860k annotations, peaks at 0.95 GB RSS in
// BenchmarkReadCOCOTrain2017Size).
//
// Records follow the order of "images"; Record.Name is file_name,
// ImagePath is imageDir joined with it (file_name alone if imageDir is "").
// Labels are contiguous in the order of category ids (Set.CategoryIDs,
// Set.Classes from the categories' names). Each record's objects keep the
// order of "annotations"; bbox [x, y, w, h] becomes coco.XYWHToBox's
// Box{x, y, x+w, y+h}, area defaults to w*h when absent, iscrowd sets
// Crowd. Required beyond the format's rules: image file_name, width, height
// (in [1, 2^20]); every annotation's image_id of an image in the file and
// category_id of a category, bbox numbers within ±2^20 and the box inside
// the image up to cocoBoxSlack; category names. Duplicate image, annotation
// or category ids are errors. Bad samples give a *BadSampleError (see
// COCOOptions.SkipBad); malformed JSON, a document that is not an object, a
// missing "images" or "categories" array and bad categories always abort.
func DecodeCOCO(r io.Reader, file, imageDir string, o COCOOptions) (*Set, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("coco: %s: %w", file, err)
	}
	return decodeCOCO(data, file, imageDir, o)
}

// decodeCOCO is DecodeCOCO on the document's bytes.
func decodeCOCO(data []byte, file, imageDir string, o COCOOptions) (*Set, error) {
	fatal := func(err error) error { return fmt.Errorf("coco: %s: %w", file, err) }
	bad := func(where string, err error) error {
		return &BadSampleError{Format: "coco", File: file, Where: where, Err: err}
	}
	// asBad turns a format entry error into a *BadSampleError.
	asBad := func(err error) error {
		var ee *coco.EntryError
		if errors.As(err, &ee) {
			return bad(ee.Where(), ee.Err)
		}
		return err
	}
	s := &Set{}
	var (
		records   []Record
		imageIdx  = make(map[int64]int) // image id -> index in records
		badImage  = make(map[int64]bool)
		anns      []cocoAnn
		annIDs    = make(map[int64]int) // annotation id -> index in "annotations"
		cats      []coco.Category
		annIssues []annIssue // bad annotations met while scanning (SkipBad only)
		nImages   int
		nAnns     int
	)
	// skipImage drops image id (already known or still to come) for err.
	skipImage := func(id int64, err error) {
		if !badImage[id] {
			badImage[id] = true
			s.Skipped = append(s.Skipped, err)
		}
	}
	err := coco.Scan(data, coco.Handler{
		Image: func(im coco.Image, err error) error {
			i := nImages
			nImages++
			hasID := im.Fields&coco.FieldID != 0
			var rec Record
			if err == nil {
				rec, err = checkCOCOImage(im, imageDir, o.CheckImages)
				if err == nil {
					if _, dup := imageIdx[im.ID]; dup || badImage[im.ID] {
						// A duplicate drops both entries: which one the
						// annotations mean is unknown.
						err = fmt.Errorf("duplicate image id %d", im.ID)
					}
				}
				if err != nil {
					err = &coco.EntryError{Array: "images", Index: i, ID: im.ID, HasID: hasID, Err: err}
				}
			}
			if err != nil {
				e := asBad(err)
				if !o.SkipBad {
					return e
				}
				if hasID {
					skipImage(im.ID, e)
				} else {
					s.Skipped = append(s.Skipped, e)
				}
				return nil
			}
			imageIdx[rec.ID] = len(records)
			records = append(records, rec)
			return nil
		},
		Annotation: func(a coco.Annotation, err error) error {
			i := nAnns
			nAnns++
			hasID := a.Fields&coco.FieldID != 0
			if err == nil {
				err = checkCOCOAnn(a)
				if err == nil {
					if prev, dup := annIDs[a.ID]; dup {
						err = fmt.Errorf("duplicate annotation id %d (also annotations[%d])", a.ID, prev)
					}
				}
				if err != nil {
					err = &coco.EntryError{Array: "annotations", Index: i, ID: a.ID, HasID: true, Err: err}
				}
			}
			if hasID {
				if _, dup := annIDs[a.ID]; !dup {
					annIDs[a.ID] = i
				}
			}
			if err != nil {
				e := asBad(err)
				if !o.SkipBad {
					return e
				}
				imageID := a.ImageID
				if a.Fields&coco.FieldImageID == 0 {
					imageID = missingID
				}
				annIssues = append(annIssues, annIssue{imageID: imageID, err: e})
				return nil
			}
			anns = append(anns, cocoAnn{Annotation: a, index: i})
			return nil
		},
		Category: func(c coco.Category, err error) error {
			cats = append(cats, c)
			return err
		},
	})
	if err != nil {
		var bse *BadSampleError
		if errors.As(err, &bse) {
			return nil, err
		}
		return nil, fatal(err)
	}

	// Categories: contiguous labels in id order.
	catLabel := make(map[int64]int, len(cats))
	slices.SortStableFunc(cats, func(a, b coco.Category) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	for i, c := range cats {
		if c.Name == "" {
			return nil, fatal(fmt.Errorf("categories: id %d: missing name", c.ID))
		}
		if c.ID < math.MinInt32 || c.ID > math.MaxInt32 {
			return nil, fatal(fmt.Errorf("categories: id %d out of range", c.ID))
		}
		if _, dup := catLabel[c.ID]; dup {
			return nil, fatal(fmt.Errorf("categories: duplicate id %d", c.ID))
		}
		catLabel[c.ID] = i
		s.Classes = append(s.Classes, c.Name)
		s.CategoryIDs = append(s.CategoryIDs, int(c.ID))
	}

	// Annotations whose problems were met while scanning drop their image
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
		ri, ok := imageIdx[a.ImageID]
		var err error
		switch {
		case !ok && badImage[a.ImageID]:
			continue // its image was dropped and reported
		case !ok:
			err = fmt.Errorf("image_id %d is not in images", a.ImageID)
		case badImage[a.ImageID]:
			continue
		}
		if err == nil {
			if _, ok := catLabel[a.CategoryID]; !ok {
				err = fmt.Errorf("category_id %d is not in categories", a.CategoryID)
			}
		}
		if err == nil {
			if e := checkBox(coco.XYWHToBox(a.BBox), records[ri].Width, records[ri].Height, cocoBoxSlack); e != nil {
				err = fmt.Errorf("bbox %v outside the %dx%d image", a.BBox, records[ri].Width, records[ri].Height)
			}
		}
		if err != nil {
			e := bad(fmt.Sprintf("annotations[%d] (id %d)", a.index, a.ID), err)
			if !o.SkipBad {
				return nil, e
			}
			if ok {
				skipImage(a.ImageID, e)
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
		if badImage[a.ImageID] {
			continue
		}
		ri := imageIdx[a.ImageID]
		records[ri].Objects = append(records[ri].Objects, Object{
			Box: coco.XYWHToBox(a.BBox), Label: catLabel[a.CategoryID], Crowd: a.IsCrowd, Area: float32(a.Area), ID: a.ID,
			Difficult: a.Difficult, Truncated: a.Truncated,
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

// checkCOCOImage checks what training needs of one "images" element beyond
// the format's rules and makes its record.
func checkCOCOImage(im coco.Image, imageDir string, checkFile bool) (Record, error) {
	switch {
	case im.Fields&coco.FieldFileName == 0 || im.FileName == "":
		return Record{}, errors.New("missing file_name")
	case im.Fields&coco.FieldWidth == 0:
		return Record{}, errors.New("missing width")
	case im.Fields&coco.FieldHeight == 0:
		return Record{}, errors.New("missing height")
	case im.Width < 1 || im.Width > maxImageSide:
		return Record{}, fmt.Errorf("width %d not in [1, %d]", im.Width, maxImageSide)
	case im.Height < 1 || im.Height > maxImageSide:
		return Record{}, fmt.Errorf("height %d not in [1, %d]", im.Height, maxImageSide)
	}
	r := Record{ID: im.ID, Name: im.FileName, ImagePath: im.FileName, Width: im.Width, Height: im.Height}
	if imageDir != "" {
		r.ImagePath = filepath.Join(imageDir, im.FileName)
	}
	if checkFile {
		if _, err := os.Stat(r.ImagePath); err != nil {
			return Record{}, fmt.Errorf("image file: %w", err)
		}
	}
	return r, nil
}

// checkCOCOAnn checks what training needs of one "annotations" element
// beyond the format's rules, without its image or category.
func checkCOCOAnn(a coco.Annotation) error {
	for _, v := range a.BBox {
		if math.Abs(v) > maxImageSide {
			return fmt.Errorf("bbox %v out of range", a.BBox)
		}
	}
	return nil
}

// WriteCOCO writes s as a COCO instances JSON file (atomically) with
// format/coco's WriteInstances: "images" (id = Record.ID, file_name = base
// of ImagePath or Name when ImagePath is empty, width, height),
// "annotations" (id, image_id, category_id, bbox [x,y,w,h], area, iscrowd,
// plus "difficult": 1 / "truncated": 1 for VOC flags, which pycocotools
// ignores and ReadCOCO reads back) and "categories" (id, name). Category
// ids are s.CategoryIDs, or label+1 when nil (a VOC set). Annotation ids
// are Object.ID when all are non-zero and unique, else 1..N in record
// order. Area is Object.Area, or the box area when Area is 0, written as
// the shortest decimal that reads back as the same float32. Duplicate image
// ids and labels out of range are errors.
func WriteCOCO(path string, s *Set) error {
	fail := func(err error) error { return fmt.Errorf("coco: write %s: %w", path, err) }
	in := &coco.Instances{Images: make([]coco.Image, len(s.Records)), Categories: make([]coco.Category, len(s.Classes))}
	for l, name := range s.Classes {
		id, err := s.categoryID(l)
		if err != nil {
			return fail(err)
		}
		in.Categories[l] = coco.Category{ID: int64(id), Name: name}
	}
	renumber := false
	annIDs := make(map[int64]bool)
	imageIDs := make(map[int64]bool, len(s.Records))
	for i, r := range s.Records {
		if imageIDs[r.ID] {
			return fail(fmt.Errorf("record %d: duplicate image id %d", i, r.ID))
		}
		imageIDs[r.ID] = true
		name := r.Name
		if r.ImagePath != "" {
			name = filepath.Base(r.ImagePath)
		}
		in.Images[i] = coco.Image{ID: r.ID, FileName: name, Width: r.Width, Height: r.Height}
		for j, o := range r.Objects {
			if o.Label < 0 || o.Label >= len(s.Classes) {
				return fail(fmt.Errorf("record %d object %d: label %d out of range [0, %d)", i, j, o.Label, len(s.Classes)))
			}
			if o.ID == 0 || annIDs[o.ID] {
				renumber = true
			}
			annIDs[o.ID] = true
			area := o.Area
			if area == 0 {
				area = o.Box.Area()
			}
			in.Annotations = append(in.Annotations, coco.Annotation{
				ID: o.ID, ImageID: r.ID, CategoryID: in.Categories[o.Label].ID, BBox: coco.BoxToXYWH(o.Box),
				Area: decimal32(area), IsCrowd: o.Crowd, Difficult: o.Difficult, Truncated: o.Truncated,
			})
		}
	}
	if renumber {
		for i := range in.Annotations {
			in.Annotations[i].ID = int64(i + 1)
		}
	}
	if err := atomicfile.Write(path, func(w io.Writer) error { return coco.WriteInstances(w, in) }); err != nil {
		return fail(err)
	}
	return nil
}

// WriteCOCOResults writes dets as a COCO results JSON file (atomically)
// with format/coco's WriteResults, the format pycocotools' loadRes reads:
// [{"image_id", "category_id", "bbox": [x,y,w,h], "score"}], in the order
// of dets. category_id comes from Detection.Label through s (s.CategoryIDs,
// or label+1 for a set without them); boxes convert with coco.BoxToXYWH,
// scores are written as the shortest decimal that reads back as the same
// float32.
func WriteCOCOResults(path string, s *Set, dets []Detection) error {
	fail := func(err error) error { return fmt.Errorf("coco: write %s: %w", path, err) }
	res := make([]coco.Result, len(dets))
	for i, d := range dets {
		cat, err := s.categoryID(d.Label)
		if err != nil {
			return fail(fmt.Errorf("detection %d: %w", i, err))
		}
		res[i] = coco.Result{ImageID: d.ImageID, CategoryID: int64(cat), BBox: coco.BoxToXYWH(d.Box), Score: decimal32(d.Score)}
	}
	if err := atomicfile.Write(path, func(w io.Writer) error { return coco.WriteResults(w, res) }); err != nil {
		return fail(err)
	}
	return nil
}

// ReadCOCOResults reads a COCO results JSON file (WriteCOCOResults' format)
// with format/coco's DecodeResults: category ids are mapped to labels
// through s (an id not in s is an error), Detection.Name is the file_name
// of the image in s with that id ("" when s has none), boxes convert with
// coco.XYWHToBox. Every entry needs image_id, category_id, bbox (4 finite
// numbers, w, h >= 0) and a finite score; errors name the entry's index.
func ReadCOCOResults(path string, s *Set) ([]Detection, error) {
	fail := func(err error) error { return fmt.Errorf("coco: results %s: %w", path, err) }
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("coco: %w", err)
	}
	defer f.Close()
	catLabel := make(map[int64]int, len(s.Classes))
	for l := range s.Classes {
		id, err := s.categoryID(l)
		if err != nil {
			return nil, fail(err)
		}
		catLabel[int64(id)] = l
	}
	names := make(map[int64]string, len(s.Records))
	for _, r := range s.Records {
		names[r.ID] = r.Name
	}
	res, err := coco.DecodeResults(f)
	if err != nil {
		return nil, fail(err)
	}
	dets := make([]Detection, len(res))
	for i, r := range res {
		label, ok := catLabel[r.CategoryID]
		if !ok {
			return nil, fail(fmt.Errorf("entry %d: category_id %d is not in the set", i, r.CategoryID))
		}
		dets[i] = Detection{ImageID: r.ImageID, Name: names[r.ImageID], Label: label, Score: float32(r.Score), Box: coco.XYWHToBox(r.BBox)}
	}
	return dets, nil
}
