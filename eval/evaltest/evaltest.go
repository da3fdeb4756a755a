// Package evaltest generates synthetic COCO detection-evaluation cases
// (instances JSON and results JSON) for eval's tests and benchmarks.
package evaltest

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// COCOOptions sizes a synthetic case.
type COCOOptions struct {
	Images        int     // number of images (ids 1..Images)
	Categories    int     // number of categories (ids 1..Categories, with a gap after 11 like COCO's)
	GTPerImage    float64 // mean number of GT boxes per image (uniform 0..2*mean)
	DetsPerImage  int     // detections per image
	CrowdFraction float64 // fraction of GT boxes marked iscrowd
	// ScoreDecimals rounds scores to this many decimals (0 = full
	// precision); few decimals create many ties.
	ScoreDecimals int
	// Jitter is the relative size of the noise added to GT boxes for the
	// detections that find them.
	Jitter float64
	// Segmentation adds a polygon to each GT annotation, as real COCO files
	// have, so readers must skip it.
	Segmentation bool
}

// Val2017 is a case the size of COCO val2017 with a typical detector's output:
// 5000 images, 80 categories, ~36k GT, 100 detections per image.
func Val2017() COCOOptions {
	return COCOOptions{Images: 5000, Categories: 80, GTPerImage: 7.3, DetsPerImage: 100,
		CrowdFraction: 0.01, Jitter: 0.1, Segmentation: true}
}

type box struct{ x, y, w, h float64 }

// COCO returns the bytes of an instances file and of a results file.
func COCO(rng *rand.Rand, o COCOOptions) (gt, dets []byte) {
	catID := func(k int) int {
		if k >= 11 {
			return k + 2 // COCO's ids skip 12
		}
		return k + 1
	}
	gt = append(gt, `{"info": {"description": "synthetic"}, "images": [`...)
	for i := 1; i <= o.Images; i++ {
		if i > 1 {
			gt = append(gt, ", "...)
		}
		gt = append(gt, `{"id": `...)
		gt = strconv.AppendInt(gt, int64(i), 10)
		gt = append(gt, `, "width": 640, "height": 480, "file_name": "`...)
		gt = strconv.AppendInt(gt, int64(i), 10)
		gt = append(gt, `.jpg"}`...)
	}
	gt = append(gt, `], "categories": [`...)
	for k := 0; k < o.Categories; k++ {
		if k > 0 {
			gt = append(gt, ", "...)
		}
		gt = append(gt, `{"id": `...)
		gt = strconv.AppendInt(gt, int64(catID(k)), 10)
		gt = append(gt, `, "name": "class`...)
		gt = strconv.AppendInt(gt, int64(k), 10)
		gt = append(gt, `", "supercategory": "thing"}`...)
	}
	gt = append(gt, `], "annotations": [`...)
	dets = append(dets, '[')
	annID := 1
	firstDet := true
	num := func(b []byte, v float64, dec int) []byte {
		if dec > 0 {
			v = math.Round(v*math.Pow(10, float64(dec))) / math.Pow(10, float64(dec))
		}
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	randBox := func() box {
		// log-uniform sizes from 4 to 400 px so all area ranges occur
		w := math.Exp(math.Log(4) + rng.Float64()*math.Log(100))
		h := w * math.Exp((rng.Float64()-0.5)*1.4)
		w, h = min(w, 639), min(h, 479)
		return box{rng.Float64() * (640 - w), rng.Float64() * (480 - h), w, h}
	}
	for i := 1; i <= o.Images; i++ {
		nGT := rng.IntN(int(2*o.GTPerImage) + 1)
		type obj struct {
			b   box
			cat int
		}
		objs := make([]obj, nGT)
		// a few categories per image, skewed towards the first ones (COCO's person)
		for j := range objs {
			k := int(float64(o.Categories) * math.Pow(rng.Float64(), 2.5))
			objs[j] = obj{randBox(), catID(min(k, o.Categories-1))}
			b := objs[j].b
			if annID > 1 {
				gt = append(gt, ",\n"...)
			}
			gt = append(gt, `{"id": `...)
			gt = strconv.AppendInt(gt, int64(annID), 10)
			annID++
			gt = append(gt, `, "image_id": `...)
			gt = strconv.AppendInt(gt, int64(i), 10)
			gt = append(gt, `, "category_id": `...)
			gt = strconv.AppendInt(gt, int64(objs[j].cat), 10)
			if o.Segmentation {
				gt = append(gt, `, "segmentation": [[`...)
				for v, c := range []float64{b.x, b.y, b.x + b.w, b.y, b.x + b.w, b.y + b.h, b.x, b.y + b.h} {
					if v > 0 {
						gt = append(gt, ", "...)
					}
					gt = num(gt, c, 2)
				}
				gt = append(gt, `]]`...)
			}
			gt = append(gt, `, "area": `...)
			gt = num(gt, b.w*b.h*(0.6+0.3*rng.Float64()), 3) // mask area, below the box area
			gt = append(gt, `, "bbox": [`...)
			for v, c := range []float64{b.x, b.y, b.w, b.h} {
				if v > 0 {
					gt = append(gt, ", "...)
				}
				gt = num(gt, c, 2)
			}
			crowd := 0
			if rng.Float64() < o.CrowdFraction {
				crowd = 1
			}
			gt = append(gt, `], "iscrowd": `...)
			gt = strconv.AppendInt(gt, int64(crowd), 10)
			gt = append(gt, '}')
		}
		for d := 0; d < o.DetsPerImage; d++ {
			var b box
			var cat int
			var score float64
			if len(objs) > 0 && d < 3*len(objs) && rng.Float64() < 0.8 {
				ob := objs[rng.IntN(len(objs))]
				j := o.Jitter * rng.NormFloat64()
				b = box{ob.b.x + j*ob.b.w, ob.b.y + o.Jitter*rng.NormFloat64()*ob.b.h,
					ob.b.w * math.Exp(o.Jitter*rng.NormFloat64()), ob.b.h * math.Exp(o.Jitter*rng.NormFloat64())}
				cat = ob.cat
				if rng.Float64() < 0.1 {
					cat = catID(rng.IntN(o.Categories))
				}
				score = 0.3 + 0.7*rng.Float64()
			} else {
				b = randBox()
				cat = catID(int(float64(o.Categories) * math.Pow(rng.Float64(), 1.5)))
				score = 0.5 * math.Pow(rng.Float64(), 2)
			}
			if !firstDet {
				dets = append(dets, ",\n"...)
			}
			firstDet = false
			dets = append(dets, `{"image_id": `...)
			dets = strconv.AppendInt(dets, int64(i), 10)
			dets = append(dets, `, "category_id": `...)
			dets = strconv.AppendInt(dets, int64(cat), 10)
			dets = append(dets, `, "bbox": [`...)
			for v, c := range []float64{b.x, b.y, b.w, b.h} {
				if v > 0 {
					dets = append(dets, ", "...)
				}
				dets = num(dets, c, 2)
			}
			dets = append(dets, `], "score": `...)
			dets = num(dets, score, o.ScoreDecimals)
			dets = append(dets, '}')
		}
	}
	gt = append(gt, "]}\n"...)
	dets = append(dets, "]\n"...)
	return gt, dets
}
