package datasets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"resdet/box"
	"resdet/format/voc"
	"resdet/internal/atomicfile"
)

// VOCToBox converts a PASCAL VOC XML box to the project convention with
// format/voc's ToBox: VOC stores 1-based inclusive pixel indices, so X1 =
// xmin-1, Y1 = ymin-1, X2 = xmax, Y2 = ymax (as Detectron2). Integer
// coordinates (and any written by BoxToVOC) convert exactly.
func VOCToBox(xmin, ymin, xmax, ymax float64) box.Box {
	return voc.ToBox(voc.Box{Xmin: xmin, Ymin: ymin, Xmax: xmax, Ymax: ymax})
}

// BoxToVOC converts a box in the project convention to VOC's 1-based
// inclusive coordinates with format/voc's FromBox: xmin = X1+1, ymin =
// Y1+1, xmax = X2, ymax = Y2. VOCToBox(BoxToVOC(b)) == b for every finite b
// whose X1 and Y1 are 0 or at least 2^-29 in magnitude.
func BoxToVOC(b box.Box) (xmin, ymin, xmax, ymax float64) {
	v := voc.FromBox(b)
	return v.Xmin, v.Ymin, v.Xmax, v.Ymax
}

// VOCOptions configures ReadVOC. The zero value reads the 20 standard classes,
// drops difficult objects and aborts on the first bad sample.
type VOCOptions struct {
	// Classes maps label -> class name; nil means VOCClasses(). An object
	// whose <name> is not in the list is an error.
	Classes []string
	// KeepDifficult keeps objects marked <difficult>1</difficult> (with
	// Object.Difficult set). When false they are dropped, as py-faster-rcnn
	// does for training; evaluation needs them kept (VOC ignores them).
	KeepDifficult bool
	// CheckImages makes a missing JPEGImages/<id>.jpg an error (the file is
	// only checked to exist, not decoded).
	CheckImages bool
	// SkipBad drops bad samples (records) instead of failing, listing each
	// error in Set.Skipped.
	SkipBad bool
}

// ReadVOC reads split ("train", "val", "trainval", "test" or any list in
// ImageSets/Main) of the VOC year folder root (e.g. VOCdevkit/VOC2007):
// ImageSets/Main/<split>.txt lists image ids, one a line (only the first
// field of a line is used); Annotations/<id>.xml describes image id, whose
// file is JPEGImages/<id>.jpg. Records keep the order of the list; Record.ID
// is the position in it. Every object's box is converted with VOCToBox and
// checked to lie inside the image from <size>.
//
// A missing or unreadable split list is an error. Bad samples (see package
// doc) abort the read with a *BadSampleError unless o.SkipBad is set.
func ReadVOC(root, split string, o VOCOptions) (*Set, error) {
	classes := o.Classes
	if classes == nil {
		classes = VOCClasses()
	}
	if err := checkClassList(classes); err != nil {
		return nil, fmt.Errorf("voc: classes: %w", err)
	}
	listPath := voc.ImageSetPath(root, split)
	list, err := voc.ReadImageSetFile(root, split)
	if err != nil {
		return nil, fmt.Errorf("voc: read split %q: %w", split, err)
	}
	s := &Set{Classes: classes}
	seen := make(map[string]int)
	for pos, e := range list {
		r, err := readVOCRecord(root, e.Name, classes, o)
		if err == nil {
			if prev, dup := seen[e.Name]; dup {
				err = &BadSampleError{Format: "voc", File: listPath, Where: fmt.Sprintf("line %d", e.Line),
					Err: fmt.Errorf("duplicate image id %q (first on line %d)", e.Name, prev)}
			}
		}
		if _, dup := seen[e.Name]; !dup {
			seen[e.Name] = e.Line
		}
		r.ID = int64(pos)
		if err != nil {
			if o.SkipBad {
				s.Skipped = append(s.Skipped, err)
				continue
			}
			return nil, err
		}
		s.Records = append(s.Records, r)
	}
	return s, nil
}

// readVOCRecord reads and checks Annotations/<id>.xml (and, if asked, the
// image file) and applies the difficult filter.
func readVOCRecord(root, id string, classes []string, o VOCOptions) (Record, error) {
	path := voc.AnnotationPath(root, id)
	a, err := voc.ReadAnnotationFile(path)
	r, err := vocRecord(a, err, path, classes)
	if err != nil {
		return Record{}, err
	}
	r.Name = id
	r.ImagePath = filepath.Join(root, "JPEGImages", id+".jpg")
	if o.CheckImages {
		if _, err := os.Stat(r.ImagePath); err != nil {
			return Record{}, &BadSampleError{Format: "voc", File: path, Where: "image", Err: err}
		}
	}
	if !o.KeepDifficult {
		kept := r.Objects[:0]
		for _, obj := range r.Objects {
			if !obj.Difficult {
				kept = append(kept, obj)
			}
		}
		r.Objects = kept
	}
	return r, nil
}

// DecodeVOCAnnotation parses one VOC annotation file's bytes (format/voc's
// DecodeAnnotation) into a record. file names it in errors. classes maps
// label -> name (nil means VOCClasses()). The record has Width, Height, Name
// (<filename> without its extension) and every object, difficult ones
// included, with boxes converted by VOCToBox and checked against the image
// size. Required beyond the format's rules: every <name> is one of classes,
// every box lies inside the image. Errors are *BadSampleError.
func DecodeVOCAnnotation(data []byte, file string, classes []string) (Record, error) {
	a, err := voc.DecodeAnnotation(bytes.NewReader(data), file)
	return vocRecord(a, err, file, classes)
}

// vocRecord makes the record of DecodeVOCAnnotation from what a format/voc
// annotation reader returned (a, err) for file.
func vocRecord(a *voc.Annotation, err error, file string, classes []string) (Record, error) {
	if err != nil {
		var ve *voc.Error
		if errors.As(err, &ve) {
			return Record{}, &BadSampleError{Format: "voc", File: ve.File, Where: ve.Where, Err: ve.Err}
		}
		return Record{}, &BadSampleError{Format: "voc", File: file, Err: err}
	}
	if classes == nil {
		classes = VOCClasses()
	}
	r := Record{
		Name:   strings.TrimSuffix(a.Filename, filepath.Ext(a.Filename)),
		Width:  a.Width,
		Height: a.Height,
	}
	if len(a.Objects) > 0 {
		r.Objects = make([]Object, 0, len(a.Objects))
	}
	for i, o := range a.Objects {
		label := slices.Index(classes, o.Name)
		where := fmt.Sprintf("object %d (%s)", i, o.Name)
		if label < 0 {
			return Record{}, &BadSampleError{Format: "voc", File: file, Where: where, Err: fmt.Errorf("unknown class %q", o.Name)}
		}
		c := o.Box
		b := VOCToBox(c.Xmin, c.Ymin, c.Xmax, c.Ymax)
		if err := checkBox(b, a.Width, a.Height, 0); err != nil {
			return Record{}, &BadSampleError{Format: "voc", File: file, Where: where,
				Err: fmt.Errorf("bndbox (%v,%v)-(%v,%v) outside the %dx%d image (VOC coordinates are 1..width, 1..height)",
					c.Xmin, c.Ymin, c.Xmax, c.Ymax, a.Width, a.Height)}
		}
		r.Objects = append(r.Objects, Object{
			Box: b, Label: label, Difficult: o.Difficult, Truncated: o.Truncated, Area: b.Area(),
		})
	}
	return r, nil
}

// maxImageSide bounds the image sizes the readers accept.
const maxImageSide = voc.MaxImageSide

// checkClassList rejects empty or duplicate class names.
func checkClassList(classes []string) error {
	if len(classes) == 0 {
		return errors.New("empty class list")
	}
	seen := make(map[string]bool, len(classes))
	for i, c := range classes {
		if c == "" || c != strings.TrimSpace(c) {
			return fmt.Errorf("class %d: bad name %q", i, c)
		}
		if seen[c] {
			return fmt.Errorf("class %d: duplicate name %q", i, c)
		}
		seen[c] = true
	}
	return nil
}

// WriteVOCAnnotation writes r as a VOC annotation XML file at path
// (atomically) with format/voc's EncodeAnnotation: <folder> "VOC",
// <filename> (the base of r.ImagePath, or r.Name+".jpg"), <size> (depth 3),
// and per object <name> (classes[Label]), <pose>, <truncated>, <difficult>
// and <bndbox> converted with BoxToVOC. Integer coordinates are written as
// integers, others as the shortest decimal that reads back exactly. A label
// outside classes is an error.
func WriteVOCAnnotation(path string, r Record, classes []string) error {
	data, err := encodeVOCAnnotation(r, classes)
	if err == nil {
		err = atomicfile.WriteFile(path, data, 0o644)
	}
	if err != nil {
		return fmt.Errorf("voc: write %s: %w", path, err)
	}
	return nil
}

// encodeVOCAnnotation returns the file WriteVOCAnnotation writes.
func encodeVOCAnnotation(r Record, classes []string) ([]byte, error) {
	a := &voc.Annotation{Folder: "VOC", Filename: r.Name + ".jpg", Width: r.Width, Height: r.Height, Depth: 3}
	if r.ImagePath != "" {
		a.Filename = filepath.Base(r.ImagePath)
	}
	a.Objects = make([]voc.Object, len(r.Objects))
	for i, o := range r.Objects {
		if o.Label < 0 || o.Label >= len(classes) {
			return nil, fmt.Errorf("object %d: label %d out of range [0, %d)", i, o.Label, len(classes))
		}
		xmin, ymin, xmax, ymax := BoxToVOC(o.Box)
		a.Objects[i] = voc.Object{Name: classes[o.Label], Truncated: o.Truncated, Difficult: o.Difficult,
			Box: voc.Box{Xmin: xmin, Ymin: ymin, Xmax: xmax, Ymax: ymax}}
	}
	var buf bytes.Buffer
	err := voc.EncodeAnnotation(&buf, a)
	return buf.Bytes(), err
}

// WriteVOC writes s as the annotation part of a VOC year folder at root:
// Annotations/<Name>.xml for every record (WriteVOCAnnotation) and
// ImageSets/Main/<split>.txt listing the record names in order. Images are
// not written (JPEGImages is the caller's). Record names must be valid VOC
// image ids (format/voc's CheckName) and unique.
func WriteVOC(root, split string, s *Set) error {
	if err := voc.CheckName(split); err != nil {
		return fmt.Errorf("voc: split: %w", err)
	}
	annDir := filepath.Join(root, "Annotations")
	listPath := voc.ImageSetPath(root, split)
	for _, d := range []string{annDir, filepath.Dir(listPath)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("voc: %w", err)
		}
	}
	seen := make(map[string]bool, len(s.Records))
	names := make([]string, len(s.Records))
	for i, r := range s.Records {
		if err := voc.CheckName(r.Name); err != nil {
			return fmt.Errorf("voc: record %d: %w", i, err)
		}
		if seen[r.Name] {
			return fmt.Errorf("voc: record %d: duplicate image name %q", i, r.Name)
		}
		seen[r.Name] = true
		names[i] = r.Name
		if err := WriteVOCAnnotation(voc.AnnotationPath(root, r.Name), r, s.Classes); err != nil {
			return err
		}
	}
	if err := atomicfile.Write(listPath, func(w io.Writer) error { return voc.WriteImageSet(w, names) }); err != nil {
		return fmt.Errorf("voc: %w", err)
	}
	return nil
}

// WriteVOCResults writes dets as VOC devkit result files with format/voc's
// WriteResultsDir: one per class (written, possibly empty, for every
// class), each line "<image> <score> <xmin> <ymin> <xmax> <ymax>" with
// Detection.Name as the image and the box converted by BoxToVOC (1-based, as
// Detectron2 writes: xmin = X1+1, ymin = Y1+1, xmax = X2, ymax = Y2).
// Numbers are written in full precision (scores as the shortest decimal
// that reads back as the same float32), not rounded as Detectron2's
// "%.3f %.1f" does. Lines keep the order of dets.
func WriteVOCResults(dir, split string, classes []string, dets []Detection) error {
	perClass := make([][]voc.Detection, len(classes))
	for i, d := range dets {
		if d.Label < 0 || d.Label >= len(classes) {
			return fmt.Errorf("voc: results: detection %d: label %d out of range [0, %d)", i, d.Label, len(classes))
		}
		if err := voc.CheckName(d.Name); err != nil {
			return fmt.Errorf("voc: results: detection %d: %w", i, err)
		}
		xmin, ymin, xmax, ymax := BoxToVOC(d.Box)
		perClass[d.Label] = append(perClass[d.Label], voc.Detection{Image: d.Name, Score: decimal32(d.Score),
			Box: voc.Box{Xmin: xmin, Ymin: ymin, Xmax: xmax, Ymax: ymax}})
	}
	if err := voc.WriteResultsDir(dir, split, classes, perClass); err != nil {
		return fmt.Errorf("voc: results: %w", err)
	}
	return nil
}

// ReadVOCResults reads the result files WriteVOCResults writes (or the VOC
// devkit's) with format/voc's ReadResultsDir: for every class in order,
// each line "<image> <score> <xmin> <ymin> <xmax> <ymax>" converted with
// VOCToBox. Detection.ImageID is 0 (the files hold only names). A class
// without a file has no detections and is listed in missing; a malformed
// line is an error naming the file and line.
func ReadVOCResults(dir, split string, classes []string) (dets []Detection, missing []string, err error) {
	perClass, missing, err := voc.ReadResultsDir(dir, split, classes)
	if err != nil {
		return nil, nil, fmt.Errorf("voc: results: %w", err)
	}
	for label, ds := range perClass {
		for _, d := range ds {
			dets = append(dets, Detection{Name: d.Image, Label: label, Score: float32(d.Score),
				Box: VOCToBox(d.Box.Xmin, d.Box.Ymin, d.Box.Xmax, d.Box.Ymax)})
		}
	}
	return dets, missing, nil
}

// decimal32 returns the float64 value of the shortest decimal that reads
// back as v in float32, so that writers printing float64 in full precision
// print v as short as a float32 printer would ("0.9", not
// "0.8999999761581421").
func decimal32(v float32) float64 {
	d, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'f', -1, 32), 64)
	return d
}
