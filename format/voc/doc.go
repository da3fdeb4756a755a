// Package voc reads and writes the PASCAL VOC formats: annotation XML
// (Annotations/<id>.xml), image-set lists (ImageSets/Main/<split>.txt) and
// the devkit's detection result files (comp4_det_<split>_<class>.txt). It is
// used by datasets (training data) and eval (VOC AP) alike.
//
// # Coordinates
//
// Boxes stay in the format's own convention: Box holds 1-based inclusive
// pixel indices as written (xmin..xmax, 1..width for the whole image), not
// the project's continuous XYXY. ToBox and FromBox convert (datasets'
// VOCToBox and BoxToVOC wrap them); the devkit's AP compares these numbers
// as they are.
//
// # Missing result files
//
// ReadResultsDir treats a missing comp4_det_<split>_<class>.txt as "no
// detections for that class" and returns the names of such classes, so that
// callers can say so (eval-det prints one line per missing class); any other
// problem opening or reading a file is an error.
//
// # Errors
//
// Problems of one file are *Error values naming the file and the entry
// ("object 2 (dog)", "line 7", "size").
//
// Imports: the standard library, box and internal/atomicfile.
package voc
