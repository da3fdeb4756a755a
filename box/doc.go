// Package box holds the plain-Go geometry of detection: axis-aligned boxes,
// their overlaps, non-maximum suppression (NMS, BatchedNMS, RemoveSmall),
// box coding (BoxCoder), matching (Matcher) and sampling (Sampler), each with
// the semantics of its torchvision counterpart (torchvision/ops/boxes.py,
// torchvision/models/detection/_utils.py). It imports neither gorgonia nor
// cgo, so datasets and eval can use it freely.
//
// # Coordinate convention
//
// Every Box in this project is in absolute pixel coordinates of its image,
// XYXY, continuous: (X1, Y1) is the top-left corner, (X2, Y2) the
// bottom-right one, with X1 <= X2 and Y1 <= Y2 for a valid box. The pixel
// with integer index (i, j) covers [i, i+1) x [j, j+1), so a box covering
// pixel columns 0..9 inclusive is X1=0, X2=10 and its width is X2-X1 = 10:
// there is no "+1". This is torchvision's and Detectron2's convention.
//
// Formats are converted only at the edges:
//   - COCO JSON stores [x, y, w, h] in the same continuous convention:
//     Box{x, y, x+w, y+h}.
//   - PASCAL VOC XML stores 1-based inclusive integer pixel indices
//     xmin..xmax; see datasets for the one place that converts them.
package box
