package eval

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
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
	hasImages, hasCategories := false, false
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "images":
			hasImages = true
			return s.array(func(i int) error {
				img, err := parseImage(s)
				if err != nil {
					return fmt.Errorf("images[%d]: %w", i, err)
				}
				gt.Images = append(gt.Images, img)
				return nil
			})
		case "categories":
			hasCategories = true
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
	if !hasImages {
		return nil, fmt.Errorf(`no "images" list`)
	}
	if !hasCategories {
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

// Bits naming the fields of an annotation object (the seen and accept masks
// of parseAnnotation).
const (
	hasID = 1 << iota
	hasImage
	hasCategory
	hasBBox
	hasArea
	hasScore
	hasCrowd
)

// annotationFields lists the bits in the order missing required fields are
// reported.
var annotationFields = []struct {
	bit  int
	name string
}{
	{hasID, "id"}, {hasImage, "image_id"}, {hasCategory, "category_id"},
	{hasBBox, "bbox"}, {hasArea, "area"}, {hasScore, "score"}, {hasCrowd, "iscrowd"},
}

// parseAnnotation parses one annotation object, reading the fields whose
// bits are in accept and skipping every other key. seen holds the bits of
// the fields read. Errors name the key.
func parseAnnotation(s *scanner, accept int) (a Annotation, seen int, err error) {
	err = s.object(func(key []byte) error {
		var bit int
		switch string(key) {
		case "id":
			bit = hasID
		case "image_id":
			bit = hasImage
		case "category_id":
			bit = hasCategory
		case "bbox":
			bit = hasBBox
		case "area":
			bit = hasArea
		case "score":
			bit = hasScore
		case "iscrowd":
			bit = hasCrowd
		}
		var err error
		switch accept & bit {
		case hasID:
			a.ID, err = s.integer()
		case hasImage:
			a.ImageID, err = s.integer()
		case hasCategory:
			a.CategoryID, err = s.integer()
		case hasBBox:
			a.BBox, err = s.bbox()
		case hasArea:
			a.Area, err = s.number()
		case hasScore:
			a.Score, err = s.number()
		case hasCrowd:
			a.Crowd, err = s.boolOrInt()
		default:
			err = s.skip()
		}
		seen |= accept & bit
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	return a, seen, err
}

// missingField returns the name of the first field (in annotationFields
// order) that is in required but not in seen, or "" if there is none.
func missingField(seen, required int) string {
	for _, f := range annotationFields {
		if required&f.bit != 0 && seen&f.bit == 0 {
			return f.name
		}
	}
	return ""
}

func parseGTAnnotation(s *scanner) (Annotation, error) {
	a, seen, err := parseAnnotation(s, hasID|hasImage|hasCategory|hasBBox|hasArea|hasCrowd)
	if err != nil {
		return a, err
	}
	if f := missingField(seen, hasID|hasImage|hasCategory|hasBBox); f != "" {
		return a, fmt.Errorf("id %d: no %q", a.ID, f)
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
// ReadCOCOResults. Large lists are parsed in GOMAXPROCS chunks in parallel
// (the result is the same as a sequential parse, errors included).
func ParseCOCOResults(data []byte) ([]Annotation, error) {
	if n := runtime.GOMAXPROCS(0); n > 1 && len(data) >= 1<<20 {
		if dets, ok := parseResultsParallel(data, n); ok {
			return dets, nil
		}
	}
	s := &scanner{data: data}
	dets := make([]Annotation, 0, len(data)/64+1) // ~70 bytes per entry in typical files
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

// parseResultsParallel splits the list at n-1 guessed element boundaries
// ("}" "," "{" with optional white space between) and parses the chunks
// concurrently. Each chunk must end exactly at the next guessed boundary,
// which proves (by induction from the start of the list) that every guess
// was a real element boundary. ok is false when a guess was wrong or any
// chunk failed: the caller then parses sequentially, which also reports the
// first error with its global entry number.
func parseResultsParallel(data []byte, n int) (dets []Annotation, ok bool) {
	s0 := &scanner{data: data}
	if s0.peek() != '[' {
		return nil, false
	}
	// cuts[c] is the offset of the ',' ending chunk c; starts[c] where chunk
	// c begins (the '[' for chunk 0, an element's '{' otherwise).
	starts := []int{s0.pos}
	var cuts []int
	for c := 1; c < n; c++ {
		from := max(len(data)*c/n, starts[len(starts)-1]+1)
		comma, next := findBoundary(data, from)
		if comma < 0 {
			break
		}
		cuts = append(cuts, comma)
		starts = append(starts, next)
	}
	chunks := make([][]Annotation, len(starts))
	good := make([]bool, len(starts))
	var wg sync.WaitGroup
	for c := range starts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &scanner{data: data, pos: starts[c]}
			if c == 0 {
				s.pos++ // the '['
				if s.peek() == ']' {
					return
				}
			}
			end := len(data)
			if c < len(cuts) {
				end = cuts[c]
			}
			out := make([]Annotation, 0, (end-starts[c])/64+1)
			for {
				d, err := parseResult(s)
				if err != nil {
					return
				}
				out = append(out, d)
				switch p := s.peek(); {
				case s.pos == end && c < len(cuts):
					chunks[c], good[c] = out, true
					return
				case s.pos > end && c < len(cuts):
					return
				case p == ',':
					s.pos++
				case p == ']' && c == len(cuts):
					s.pos++
					if s.end() == nil {
						chunks[c], good[c] = out, true
					}
					return
				default:
					return
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for c := range chunks {
		if !good[c] {
			return nil, false
		}
		total += len(chunks[c])
	}
	dets = make([]Annotation, 0, total)
	for _, ch := range chunks {
		dets = append(dets, ch...)
	}
	for i := range dets {
		dets[i].ID = int64(i + 1)
	}
	return dets, true
}

// findBoundary finds the first "}" [ws] "," [ws] "{" at or after from and
// returns the offsets of the ',' and of the '{', or -1, -1.
func findBoundary(data []byte, from int) (comma, next int) {
	for i := from; i < len(data); i++ {
		if data[i] != '}' {
			continue
		}
		j := i + 1
		for j < len(data) && isSpace(data[j]) {
			j++
		}
		if j >= len(data) || data[j] != ',' {
			continue
		}
		k := j + 1
		for k < len(data) && isSpace(data[k]) {
			k++
		}
		if k < len(data) && data[k] == '{' {
			return j, k
		}
	}
	return -1, -1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func parseResult(s *scanner) (Annotation, error) {
	required := hasImage | hasCategory | hasBBox | hasScore
	a, seen, err := parseAnnotation(s, required)
	if err != nil {
		return a, err
	}
	if f := missingField(seen, required); f != "" {
		return a, fmt.Errorf("no %q", f)
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
