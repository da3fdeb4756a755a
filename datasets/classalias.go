package datasets

import "strings"

// vocToCOCO maps the PASCAL VOC class names that COCO spells differently to
// COCO's spelling. The other 14 VOC classes (bicycle, bird, boat, bottle,
// bus, car, cat, chair, cow, dog, horse, person, sheep, train) have the same
// name in both, so each of the 20 VOC classes names exactly one of COCO's
// 80: the 20 VOC classes are a subset of COCO's, the COCO -> VOC fine-tuning
// case of train-det --init.
var vocToCOCO = map[string]string{
	"aeroplane":   "airplane",
	"diningtable": "dining table",
	"motorbike":   "motorcycle",
	"pottedplant": "potted plant",
	"sofa":        "couch",
	"tvmonitor":   "tv",
}

// VOCToCOCO returns the six VOC class names spelled differently in COCO,
// each with COCO's spelling ("aeroplane" -> "airplane", "diningtable" ->
// "dining table", "motorbike" -> "motorcycle", "pottedplant" -> "potted
// plant", "sofa" -> "couch", "tvmonitor" -> "tv"). The map is new on every
// call.
func VOCToCOCO() map[string]string {
	m := make(map[string]string, len(vocToCOCO))
	for k, v := range vocToCOCO {
		m[k] = v
	}
	return m
}

// SameClass reports whether class names a and b name the same class: they
// are equal ignoring case and surrounding spaces, or one is a VOC name and
// the other its COCO spelling (VOCToCOCO), in either order.
func SameClass(a, b string) bool {
	a, b = strings.ToLower(strings.TrimSpace(a)), strings.ToLower(strings.TrimSpace(b))
	if a == b {
		return true
	}
	if c, ok := vocToCOCO[a]; ok && c == b {
		return true
	}
	c, ok := vocToCOCO[b]
	return ok && c == a
}
