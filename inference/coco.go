package inference

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"resdet/datasets"
)

// COCOResults collects detections for a COCO results file.
type COCOResults struct {
	set    *datasets.Set
	ids    map[string]int64 // file name -> image id (with a ground truth)
	labels []int            // our class j (1-based) -> set label, index j-1
	dets   []datasets.Detection
}

// NewCOCOResults prepares the results of a detector with the given
// classes: with gtPath (a COCO instances file), image ids come from its
// images by file name and categories from its categories by name (every
// class must be one of them); without, the ids are the numbers in the file
// names (000000397133.jpg -> 397133) and the category ids COCO's (COCO's
// classes: CategoryIDs) or the class numbers 1..K. Detections of a
// datasets.COCONoCategory class (torchvision's gaps) are not written.
func NewCOCOResults(gtPath string, classes []string) (*COCOResults, error) {
	c := &COCOResults{labels: make([]int, len(classes))}
	if gtPath == "" {
		c.set = &datasets.Set{Classes: classes}
		c.set.CategoryIDs = CategoryIDs(classes)
		for i := range classes {
			c.labels[i] = i
			if c.set.CategoryIDs != nil && c.set.CategoryIDs[i] == 0 {
				c.labels[i] = -1 // an id without a category: not written
			}
		}
		return c, nil
	}
	gt, err := datasets.ReadCOCO(gtPath, "", datasets.COCOOptions{})
	if err != nil {
		return nil, fmt.Errorf("--coco-gt: %w", err)
	}
	c.set = gt
	c.ids = make(map[string]int64, len(gt.Records))
	for _, r := range gt.Records {
		c.ids[filepath.Base(r.Name)] = r.ID
	}
	byName := make(map[string]int, len(gt.Classes))
	for i, n := range gt.Classes {
		byName[n] = i
	}
	for i, n := range classes {
		l, ok := byName[n]
		if !ok && n == datasets.COCONoCategory && CategoryIDs(classes) != nil {
			c.labels[i] = -1
			continue
		}
		if !ok {
			return nil, fmt.Errorf("--coco-gt %s: class %q (class_id %d) is not one of its categories", gtPath, n, i+1)
		}
		c.labels[i] = l
	}
	return c, nil
}

// Add records one image's detections, in their order. The image id comes
// from the base name of r.Image.
func (c *COCOResults) Add(r Result) error {
	name := filepath.Base(r.Image)
	var id int64
	if c.ids != nil {
		var ok bool
		if id, ok = c.ids[name]; !ok {
			return fmt.Errorf("--coco-gt has no image with file_name %q", name)
		}
	} else {
		n, err := strconv.ParseInt(strings.TrimSuffix(name, filepath.Ext(name)), 10, 64)
		if err != nil {
			return fmt.Errorf("--coco-results without --coco-gt needs numeric file names for image ids, got %q", name)
		}
		id = n
	}
	for _, d := range r.Detections {
		if c.labels[d.ClassID-1] < 0 {
			continue // a COCO id without a category
		}
		c.dets = append(c.dets, datasets.Detection{ImageID: id, Name: name, Label: c.labels[d.ClassID-1], Box: d.BoxValue(), Score: d.Score})
	}
	return nil
}

// Write writes the results added so far as a COCO results JSON file
// (atomically), in the order they were added.
func (c *COCOResults) Write(path string) error {
	if err := datasets.WriteCOCOResults(path, c.set, c.dets); err != nil {
		return fmt.Errorf("--coco-results: %w", err)
	}
	return nil
}
