// Package datasets reads and writes object-detection annotations: PASCAL VOC
// (a VOCdevkit year folder of XML files) and COCO (instances_*.json), the
// detection result files of both, and the sampling and prefetching loader
// that training reads through. The files themselves are parsed and written
// by format/voc and format/coco (shared with eval); datasets converts their
// entries to its Set/Record model and applies the training policy (known
// classes, boxes inside their images, unique ids, skipping bad samples).
// Files are written atomically through internal/atomicfile. It is plain Go:
// no cgo, no gorgonia. Image decoding lives in the subpackage imageio.
//
// # Coordinates
//
// Every box in memory follows the project convention of package box:
// absolute pixel XYXY, continuous, width = X2-X1. Formats are converted once,
// at the edges:
//
//   - VOC XML stores 1-based inclusive pixel indices xmin..xmax. VOCToBox
//     converts them (X1 = xmin-1, Y1 = ymin-1, X2 = xmax, Y2 = ymax, as
//     Detectron2 does), BoxToVOC converts back. Both are exact for integer
//     coordinates.
//   - COCO JSON stores [x, y, w, h] in the continuous convention already:
//     Box{x, y, x+w, y+h}, the sum computed in float64 and rounded once to
//     float32; the writers compute w = X2-X1 in float64 too, so writing and
//     reading back is exact for pixel coordinates.
//
// # Labels
//
// Object.Label is a 0-based contiguous index into Set.Classes. For COCO,
// Set.CategoryIDs[label] is the category id of the file (ids may have gaps:
// COCO's 80 classes use ids 1..90); labels follow the categories sorted by id,
// as Detectron2 does.
//
// # Bad input
//
// Problems with one sample (a malformed annotation file, a box outside its
// image, an unknown class, a duplicate id, a missing field or image file) are
// reported as a *BadSampleError that names the file and the entry, e.g.
//
//	voc: VOC2007/Annotations/000005.xml: object 2 (dog): xmax 10 < xmin 20
//
// The readers stop at the first one, or, with the SkipBad option, drop the
// sample (the whole image) and list the error in Set.Skipped. Problems that
// make the rest unreadable (a missing split list, JSON syntax errors, bad
// categories) always abort.
package datasets
