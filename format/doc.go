// Package format is the parent of the file-format packages: coco (COCO
// instances and results JSON), voc (PASCAL VOC annotation XML, ImageSets
// lists and the devkit's result files) and classlist (class lists given on
// command lines). They read from io.Reader and write to io.Writer; the
// path-taking helpers only open files around them.
//
// The format packages own the syntax and the well-formedness of each format
// (required fields, numbers that must be finite, boxes that must not be
// inverted) and report bad entries by position. They keep each format's own
// coordinates (COCO [x, y, w, h], VOC 1-based inclusive corners): converting
// to the project's box convention (box/doc.go) and deciding policy (unknown
// classes, boxes outside the image, skipping bad samples) is left to their
// users, datasets and eval.
//
// Imports: the standard library, box (for the conversions to box.Box) and
// internal/atomicfile (for the helpers that write files). Never gorgonia,
// gocv, datasets or eval.
package format
