package detection

import (
	"fmt"
	"math"

	"resdet/box"
)

// Detections are one image's detections: parallel slices of equal length,
// by decreasing score. Labels count from 1 (0 is the background), as
// torchvision's.
type Detections struct {
	Boxes  []box.Box
	Scores []float32
	Labels []int
}

// Len returns the number of detections.
func (d Detections) Len() int { return len(d.Boxes) }

// PostprocessDetections turns one image's box-head outputs into detections,
// as torchvision's RoIHeads.postprocess_detections: class probabilities are
// the softmax of classLogits; for every proposal and every class j >= 1 the
// class-specific deltas are decoded (weights BoxCoderWeights) and clipped
// to the image; candidates with probability > ScoreThresh and sides >=
// MinSize go through per-class NMS at NMSThresh (box.BatchedNMS), and the
// DetectionsPerImage best are returned.
//
// classLogits is [K, NC] and boxRegression [K, NC*4], row-major, for the K
// proposals (NC counts the background, class 0); img is the size of the
// resized image. With BackgroundLast (Detectron2's layout), the background
// is column NC-1 and boxRegression is [K, (NC-1)*4]; the labels still count
// from 1 (column j is label j+1). It panics if the lengths do not match.
func (c RoIHeadsConfig) PostprocessDetections(classLogits, boxRegression []float32, proposals []box.Box, numClasses int, img Size) Detections {
	k := len(proposals)
	// first is the first foreground column of the logits, boxCols the
	// classes with deltas (column j's deltas are boxCols*i+j in both
	// layouts).
	first, boxCols := 1, numClasses
	if c.BackgroundLast {
		first, boxCols = 0, numClasses-1
	}
	if numClasses < 1 || len(classLogits) != k*numClasses || len(boxRegression) != 4*k*boxCols {
		panic(fmt.Sprintf("detection.PostprocessDetections: %d logits, %d deltas for %d proposals and %d classes",
			len(classLogits), len(boxRegression), k, numClasses))
	}
	coder := c.BoxCoder()
	w, h := float32(img.W), float32(img.H)
	var boxes []box.Box
	var scores []float32
	var labels []int
	probs := make([]float32, numClasses)
	for i, p := range proposals {
		softmax(probs, classLogits[i*numClasses:(i+1)*numClasses])
		for j := first; j < first+numClasses-1; j++ {
			s := probs[j]
			if !(s > c.ScoreThresh) {
				continue
			}
			var d box.Delta
			copy(d[:], boxRegression[(i*boxCols+j)*4:])
			b := coder.DecodeOne(d, p).Clip(w, h)
			if b.X2-b.X1 < c.MinSize || b.Y2-b.Y1 < c.MinSize {
				continue
			}
			boxes = append(boxes, b)
			scores = append(scores, s)
			labels = append(labels, j+1-first)
		}
	}
	keep := box.BatchedNMS(boxes, scores, labels, c.NMSThresh)
	if len(keep) > c.DetectionsPerImage {
		keep = keep[:c.DetectionsPerImage]
	}
	out := Detections{Boxes: make([]box.Box, len(keep)), Scores: make([]float32, len(keep)), Labels: make([]int, len(keep))}
	for n, i := range keep {
		out.Boxes[n], out.Scores[n], out.Labels[n] = boxes[i], scores[i], labels[i]
	}
	return out
}

// boxClasses returns the classes with box deltas among numClasses (NC).
func (c RoIHeadsConfig) boxClasses(numClasses int) int {
	if c.BackgroundLast {
		return numClasses - 1
	}
	return numClasses
}

// Rescale maps detections from the resized image (img) to the original one
// (orig), in place, and returns them: torchvision's transform.postprocess
// (per-axis float32 ratios orig/img) or, with ClipToOriginal,
// Detectron2's detector_postprocess (ratios computed in float64 and
// rounded to float32, boxes clipped to orig, boxes with a side <= 0
// dropped, the order kept).
func (c RoIHeadsConfig) Rescale(det Detections, img, orig Size) Detections {
	if !c.ClipToOriginal {
		sx, sy := float32(orig.W)/float32(img.W), float32(orig.H)/float32(img.H)
		for i, b := range det.Boxes {
			det.Boxes[i] = b.Scale(sx, sy)
		}
		return det
	}
	sx, sy := float32(float64(orig.W)/float64(img.W)), float32(float64(orig.H)/float64(img.H))
	n := 0
	for i, b := range det.Boxes {
		b = b.Scale(sx, sy).Clip(float32(orig.W), float32(orig.H))
		if !(b.X2-b.X1 > 0 && b.Y2-b.Y1 > 0) {
			continue
		}
		det.Boxes[n], det.Scores[n], det.Labels[n] = b, det.Scores[i], det.Labels[i]
		n++
	}
	det.Boxes, det.Scores, det.Labels = det.Boxes[:n], det.Scores[:n], det.Labels[:n]
	return det
}

// softmax writes the softmax of x into dst (same length), subtracting the
// maximum first and multiplying by the reciprocal of the sum, as torch's
// CPU kernel.
func softmax(dst, x []float32) {
	m := x[0]
	for _, v := range x[1:] {
		m = max(m, v)
	}
	var sum float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - m)))
		dst[i] = e
		sum += e
	}
	inv := 1 / sum
	for i := range dst {
		dst[i] *= inv
	}
}
