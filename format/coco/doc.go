// Package coco reads and writes COCO's detection JSON: instances files
// (instances_*.json: "images", "categories", "annotations") and results
// lists ([{"image_id", "category_id", "bbox", "score"}]). It is the COCO
// reader of both datasets (training data) and eval (COCO mAP).
//
// # Reading
//
// Both readers parse a whole document held in memory with a small
// hand-written pull parser that reads only the fields it needs and walks
// over the rest (segmentations, "info", "licenses") without building them,
// which is several times faster than encoding/json on COCO-sized files.
// Large results lists are parsed in parallel chunks. Input must be valid
// JSON, except that numbers may also be Python's json extensions NaN,
// Infinity and -Infinity, so that a NaN score or area is reported by name
// rather than as a syntax error.
//
// Scan hands each entry of an instances file to the caller in file order,
// with a per-entry *EntryError when the entry is malformed but the document
// is not (a field of the wrong type, a missing field, a bad bbox), so that
// callers may skip bad entries; syntax errors abort. ParseInstances
// collects everything and stops at the first bad entry.
//
// Entry rules: an image needs "id"; a category needs "id"; an annotation
// needs "id", "image_id", "category_id" and "bbox" (4 finite numbers, w and
// h >= 0); "area" defaults to w*h and must not be NaN; "iscrowd",
// "ignore", "difficult" and "truncated" are booleans or numbers (non-zero
// is true, as Python's truthiness). Ids are integers (1.0 and 1e3 are
// accepted, as Python compares 1.0 == 1). A results entry needs
// "image_id", "category_id", "bbox" (as above) and a finite "score".
// Whether ids are unique and refer to each other, and whether boxes lie in
// their images, is for the caller to decide.
//
// # Coordinates
//
// Boxes stay as COCO writes them: [x, y, w, h] in continuous pixel
// coordinates (the box covers [x, x+w] x [y, y+h]), float64. XYWHToBox and
// BoxToXYWH convert to and from the project's box.Box (box/doc.go).
//
// Imports: the standard library and box.
package coco
