package eval

import (
	"fmt"
	"os"

	"resdet/format/coco"
)

// COCOImage is one entry of a COCO instances file's "images" list.
type COCOImage = coco.Image

// COCOCategory is one entry of a COCO instances file's "categories" list.
type COCOCategory = coco.Category

// COCOGroundTruth is what COCO box evaluation reads from an instances file.
// Values are float64 as in pycocotools; segmentations are not read.
type COCOGroundTruth struct {
	Images      []COCOImage
	Categories  []COCOCategory
	Annotations []Annotation // ground truth, file order
}

// ReadCOCOGroundTruth reads a COCO instances JSON file with format/coco
// (whose package doc gives the entry rules: every annotation needs "id",
// "image_id", "category_id" and "bbox"; "area" defaults to w*h, "iscrowd"
// to false; other members such as "info" and "segmentation" are skipped).
// Errors name the file and the entry.
func ReadCOCOGroundTruth(path string) (*COCOGroundTruth, error) {
	return readFile(path, ParseCOCOGroundTruth)
}

// readFile reads path and parses it; errors start with "eval:" and name
// the file.
func readFile[T any](path string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := os.ReadFile(path)
	if err != nil {
		return zero, fmt.Errorf("eval: %w", err)
	}
	v, err := parse(data)
	if err != nil {
		return zero, fmt.Errorf("eval: %s: %w", path, err)
	}
	return v, nil
}

// ParseCOCOGroundTruth parses the bytes of a COCO instances file; see
// ReadCOCOGroundTruth.
func ParseCOCOGroundTruth(data []byte) (*COCOGroundTruth, error) {
	in, err := coco.ParseInstances(data)
	if err != nil {
		return nil, err
	}
	gt := &COCOGroundTruth{Images: in.Images, Categories: in.Categories, Annotations: make([]Annotation, len(in.Annotations))}
	for i, a := range in.Annotations {
		gt.Annotations[i] = Annotation{ID: a.ID, ImageID: a.ImageID, CategoryID: a.CategoryID, BBox: a.BBox, Area: a.Area, Crowd: a.IsCrowd}
	}
	return gt, nil
}

// ReadCOCOResults reads a COCO results JSON list ([{"image_id",
// "category_id", "bbox": [x, y, w, h], "score"}, ...]) with format/coco
// into detections numbered 1..N in file order, with Area = w*h, as
// pycocotools' loadRes. An empty list is valid. NaN or infinite scores or
// coordinates, negative widths or heights and missing fields are errors
// naming the file and the entry (0-based position in the list).
func ReadCOCOResults(path string) ([]Annotation, error) {
	return readFile(path, ParseCOCOResults)
}

// ParseCOCOResults parses the bytes of a COCO results list; see
// ReadCOCOResults.
func ParseCOCOResults(data []byte) ([]Annotation, error) {
	res, err := coco.ParseResults(data)
	if err != nil {
		return nil, err
	}
	dets := make([]Annotation, len(res))
	for i, r := range res {
		dets[i] = Annotation{ID: int64(i + 1), ImageID: r.ImageID, CategoryID: r.CategoryID, BBox: r.BBox,
			Area: r.BBox[2] * r.BBox[3], Score: r.Score}
	}
	return dets, nil
}
