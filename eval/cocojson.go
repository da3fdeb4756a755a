package eval

import (
	"fmt"
	"math"
	"os"
)

// COCOImage is one entry of a COCO instances file's "images" list.
type COCOImage struct {
	ID            int64
	Width, Height int
	FileName      string
}

// COCOCategory is one entry of a COCO instances file's "categories" list.
type COCOCategory struct {
	ID            int64
	Name          string
	Supercategory string
}

// COCOGroundTruth is what COCO box evaluation reads from an instances file.
// Values are float64 as in pycocotools; segmentations are not read.
type COCOGroundTruth struct {
	Images      []COCOImage
	Categories  []COCOCategory
	Annotations []Annotation // ground truth, file order
}

// ReadCOCOGroundTruth reads a COCO instances JSON file (images, categories,
// annotations; other members such as "info" and "segmentation" are
// skipped). Every annotation needs "id", "image_id", "category_id", "bbox"
// ([x, y, w, h], finite, w, h >= 0); "area" defaults to w*h and "iscrowd" to
// 0. Errors name the file and the entry.
func ReadCOCOGroundTruth(path string) (*COCOGroundTruth, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	gt, err := ParseCOCOGroundTruth(data)
	if err != nil {
		return nil, fmt.Errorf("eval: %s: %w", path, err)
	}
	return gt, nil
}

// ParseCOCOGroundTruth parses the bytes of a COCO instances file; see
// ReadCOCOGroundTruth.
func ParseCOCOGroundTruth(data []byte) (*COCOGroundTruth, error) {
	s := &scanner{data: data}
	gt := &COCOGroundTruth{}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "images":
			return s.array(func(i int) error {
				img, err := parseImage(s)
				if err != nil {
					return fmt.Errorf("images[%d]: %w", i, err)
				}
				gt.Images = append(gt.Images, img)
				return nil
			})
		case "categories":
			return s.array(func(i int) error {
				c, err := parseCategory(s)
				if err != nil {
					return fmt.Errorf("categories[%d]: %w", i, err)
				}
				gt.Categories = append(gt.Categories, c)
				return nil
			})
		case "annotations":
			return s.array(func(i int) error {
				a, err := parseGTAnnotation(s)
				if err != nil {
					return fmt.Errorf("annotations[%d]: %w", i, err)
				}
				gt.Annotations = append(gt.Annotations, a)
				return nil
			})
		default:
			return s.skip()
		}
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, err
	}
	if gt.Images == nil {
		return nil, fmt.Errorf(`no "images" list`)
	}
	if gt.Categories == nil {
		return nil, fmt.Errorf(`no "categories" list`)
	}
	return gt, nil
}

func parseImage(s *scanner) (COCOImage, error) {
	var img COCOImage
	hasID := false
	err := s.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "id":
			img.ID, err = s.integer()
			hasID = true
		case "width":
			var v int64
			v, err = s.integer()
			img.Width = int(v)
		case "height":
			var v int64
			v, err = s.integer()
			img.Height = int(v)
		case "file_name":
			img.FileName, err = s.str()
		default:
			err = s.skip()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	if err == nil && !hasID {
		err = fmt.Errorf(`no "id"`)
	}
	return img, err
}

func parseCategory(s *scanner) (COCOCategory, error) {
	var c COCOCategory
	hasID := false
	err := s.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "id":
			c.ID, err = s.integer()
			hasID = true
		case "name":
			c.Name, err = s.str()
		case "supercategory":
			c.Supercategory, err = s.str()
		default:
			err = s.skip()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	if err == nil && !hasID {
		err = fmt.Errorf(`no "id"`)
	}
	return c, err
}

const (
	hasID = 1 << iota
	hasImage
	hasCategory
	hasBBox
	hasArea
	hasScore
)

func parseGTAnnotation(s *scanner) (Annotation, error) {
	var a Annotation
	var seen int
	err := s.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "id":
			a.ID, err = s.integer()
			seen |= hasID
		case "image_id":
			a.ImageID, err = s.integer()
			seen |= hasImage
		case "category_id":
			a.CategoryID, err = s.integer()
			seen |= hasCategory
		case "bbox":
			a.BBox, err = s.bbox()
			seen |= hasBBox
		case "area":
			a.Area, err = s.number()
			seen |= hasArea
		case "iscrowd":
			a.Crowd, err = s.boolOrInt()
		default:
			err = s.skip()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return a, err
	}
	for _, f := range []struct {
		bit  int
		name string
	}{{hasID, "id"}, {hasImage, "image_id"}, {hasCategory, "category_id"}, {hasBBox, "bbox"}} {
		if seen&f.bit == 0 {
			return a, fmt.Errorf("id %d: no %q", a.ID, f.name)
		}
	}
	if err := checkBBox(a.BBox); err != nil {
		return a, fmt.Errorf("id %d: %w", a.ID, err)
	}
	if seen&hasArea == 0 {
		a.Area = a.BBox[2] * a.BBox[3]
	} else if math.IsNaN(a.Area) {
		return a, fmt.Errorf("id %d: area is NaN", a.ID)
	}
	return a, nil
}

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

// ReadCOCOResults reads a COCO results JSON list ([{"image_id",
// "category_id", "bbox": [x, y, w, h], "score"}, ...]) into detections
// numbered 1..N in file order, with Area = w*h, as pycocotools' loadRes.
// An empty list is valid. NaN or infinite scores or coordinates, negative
// widths or heights and missing fields are errors naming the file and the
// entry (0-based position in the list).
func ReadCOCOResults(path string) ([]Annotation, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	dets, err := ParseCOCOResults(data)
	if err != nil {
		return nil, fmt.Errorf("eval: %s: %w", path, err)
	}
	return dets, nil
}

// ParseCOCOResults parses the bytes of a COCO results list; see
// ReadCOCOResults.
func ParseCOCOResults(data []byte) ([]Annotation, error) {
	s := &scanner{data: data}
	// ~70 bytes per entry in typical files: size the slice once.
	dets := make([]Annotation, 0, len(data)/64+1)
	err := s.array(func(i int) error {
		d, err := parseResult(s)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		d.ID = int64(i + 1)
		dets = append(dets, d)
		return nil
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, err
	}
	return dets, nil
}

func parseResult(s *scanner) (Annotation, error) {
	var a Annotation
	var seen int
	err := s.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "image_id":
			a.ImageID, err = s.integer()
			seen |= hasImage
		case "category_id":
			a.CategoryID, err = s.integer()
			seen |= hasCategory
		case "bbox":
			a.BBox, err = s.bbox()
			seen |= hasBBox
		case "score":
			a.Score, err = s.number()
			seen |= hasScore
		default:
			err = s.skip()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return a, err
	}
	for _, f := range []struct {
		bit  int
		name string
	}{{hasImage, "image_id"}, {hasCategory, "category_id"}, {hasBBox, "bbox"}, {hasScore, "score"}} {
		if seen&f.bit == 0 {
			return a, fmt.Errorf("no %q", f.name)
		}
	}
	if math.IsNaN(a.Score) || math.IsInf(a.Score, 0) {
		return a, fmt.Errorf("score is %v", a.Score)
	}
	if err := checkBBox(a.BBox); err != nil {
		return a, err
	}
	a.Area = a.BBox[2] * a.BBox[3]
	return a, nil
}
