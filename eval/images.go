package eval

import (
	"fmt"
	"math"
	"strconv"

	"resdet/box"
	"resdet/format/coco"
	"resdet/format/voc"
)

// GTObject is one ground-truth object of an image, in the project box
// convention (box/doc.go: absolute pixels, XYXY, continuous, no +1).
type GTObject struct {
	Box       box.Box
	Label     int     // 0-based class index
	Crowd     bool    // COCO iscrowd: ignored, may absorb many detections
	Difficult bool    // VOC difficult: neither counted nor penalised
	Area      float64 // COCO "area" (e.g. the mask area); 0 means the box area
}

// Detection is one detection of an image, in the project box convention.
type Detection struct {
	Box   box.Box
	Label int // 0-based class index
	Score float32
}

// ImageResult is one image's ground truth and detections, the input of
// training-time evaluation (no JSON round trip).
type ImageResult struct {
	ID   int64  // unique image id (COCO: evaluated in ascending order)
	Name string // VOC image id; defaults to the decimal ID
	GT   []GTObject
	Dets []Detection
}

// EvaluateCOCOImages evaluates per-image detections with COCO's box
// metrics (EvaluateCOCO), categories being the labels 0..len(classes)-1 with
// ids label+1. Boxes convert to [x, y, w, h] as X1, Y1, X2-X1, Y2-Y1 in
// float64 (format/coco's BoxToXYWH, as datasets.WriteCOCOResults writes them), scores to float64;
// detections are numbered 1..N in image order. A label outside the classes,
// a NaN score or a box with X2 < X1 or Y2 < Y1 is an error naming the image
// and entry.
func EvaluateCOCOImages(images []ImageResult, classes []string) (*COCOReport, error) {
	gt := &COCOGroundTruth{Images: make([]COCOImage, len(images)), Categories: make([]COCOCategory, len(classes))}
	for k, c := range classes {
		gt.Categories[k] = COCOCategory{ID: int64(k + 1), Name: c}
	}
	var dets []Annotation
	seen := make(map[int64]bool, len(images))
	for i := range images {
		im := &images[i]
		if seen[im.ID] {
			return nil, fmt.Errorf("eval: image %d: duplicate id", im.ID)
		}
		seen[im.ID] = true
		gt.Images[i] = COCOImage{ID: im.ID, FileName: im.Name}
		for j, o := range im.GT {
			if err := checkImageBox(o.Box, o.Label, len(classes), 0); err != nil {
				return nil, fmt.Errorf("eval: image %d: gt %d: %w", im.ID, j, err)
			}
			a := Annotation{ID: int64(len(gt.Annotations) + 1), ImageID: im.ID, CategoryID: int64(o.Label + 1),
				BBox: coco.BoxToXYWH(o.Box), Crowd: o.Crowd, Area: o.Area}
			if a.Area == 0 {
				a.Area = a.BBox[2] * a.BBox[3]
			}
			gt.Annotations = append(gt.Annotations, a)
		}
		for j, d := range im.Dets {
			if err := checkImageBox(d.Box, d.Label, len(classes), d.Score); err != nil {
				return nil, fmt.Errorf("eval: image %d: detection %d: %w", im.ID, j, err)
			}
			a := Annotation{ID: int64(len(dets) + 1), ImageID: im.ID, CategoryID: int64(d.Label + 1),
				BBox: coco.BoxToXYWH(d.Box), Score: float64(d.Score)}
			a.Area = a.BBox[2] * a.BBox[3]
			dets = append(dets, a)
		}
	}
	return EvaluateCOCO(gt, dets)
}

func checkImageBox(b box.Box, label, numClasses int, score float32) error {
	if label < 0 || label >= numClasses {
		return fmt.Errorf("label %d outside 0..%d", label, numClasses-1)
	}
	s := float64(score)
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return fmt.Errorf("score is %v", s)
	}
	for _, v := range [4]float32{b.X1, b.Y1, b.X2, b.Y2} {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("box %v is not finite", b)
		}
	}
	if b.X2 < b.X1 || b.Y2 < b.Y1 {
		return fmt.Errorf("box %v has a negative width or height", b)
	}
	return nil
}

// VOCBoxFrom converts a box in the project convention to the devkit's
// inclusive coordinates with format/voc's FromBox (the inverse of how VOC
// XML is read): xmin = X1+1, ymin = Y1+1, xmax = X2, ymax = Y2.
func VOCBoxFrom(b box.Box) VOCBox {
	v := voc.FromBox(b)
	return VOCBox{v.Xmin, v.Ymin, v.Xmax, v.Ymax}
}

// EvaluateVOCImages evaluates per-image detections with the VOC metric m
// (EvaluateVOC) for classes (label -> name). GT and detection boxes convert
// with VOCBoxFrom, scores to float64. Errors as EvaluateCOCOImages.
func EvaluateVOCImages(images []ImageResult, classes []string, m VOCMetric) (*VOCReport, error) {
	vimgs := make([]VOCImage, len(images))
	var dets []VOCDetection
	seen := make(map[string]bool, len(images))
	for i := range images {
		im := &images[i]
		name := im.Name
		if name == "" {
			name = strconv.FormatInt(im.ID, 10)
		}
		if seen[name] {
			return nil, fmt.Errorf("eval: image %s: duplicate name", name)
		}
		seen[name] = true
		vimgs[i].Name = name
		for j, o := range im.GT {
			if err := checkImageBox(o.Box, o.Label, len(classes), 0); err != nil {
				return nil, fmt.Errorf("eval: image %s: gt %d: %w", name, j, err)
			}
			vimgs[i].Objects = append(vimgs[i].Objects, VOCObject{Class: classes[o.Label], Box: VOCBoxFrom(o.Box), Difficult: o.Difficult})
		}
		for j, d := range im.Dets {
			if err := checkImageBox(d.Box, d.Label, len(classes), d.Score); err != nil {
				return nil, fmt.Errorf("eval: image %s: detection %d: %w", name, j, err)
			}
			dets = append(dets, VOCDetection{Image: name, Class: classes[d.Label], Score: float64(d.Score), Box: VOCBoxFrom(d.Box)})
		}
	}
	return EvaluateVOC(vimgs, dets, classes, m)
}
