package datasets

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"resdet/box"
)

// VOCToBox converts a PASCAL VOC XML box to the project convention. VOC
// stores 1-based inclusive pixel indices: a box covering pixel columns
// xmin..xmax (1..W for the whole image) covers the continuous interval
// [xmin-1, xmax). So X1 = xmin-1, Y1 = ymin-1, X2 = xmax, Y2 = ymax, as in
// Detectron2's pascal_voc.py. The subtraction is done in float64 and rounded
// once, so integer coordinates (and any written by BoxToVOC) convert exactly.
// This is the only place that converts VOC coordinates in; BoxToVOC is the
// only one that converts out.
func VOCToBox(xmin, ymin, xmax, ymax float64) box.Box {
	return box.Box{X1: float32(xmin - 1), Y1: float32(ymin - 1), X2: float32(xmax), Y2: float32(ymax)}
}

// BoxToVOC converts a box in the project convention to VOC's 1-based
// inclusive coordinates: xmin = X1+1, ymin = Y1+1, xmax = X2, ymax = Y2 (as
// Detectron2 writes its VOC result files). It is the inverse of VOCToBox:
// VOCToBox(BoxToVOC(b)) == b for every finite b whose X1 and Y1 are 0 or at
// least 2^-29 in magnitude (any pixel coordinate): the +1 is exact in
// float64 there.
func BoxToVOC(b box.Box) (xmin, ymin, xmax, ymax float64) {
	return float64(b.X1) + 1, float64(b.Y1) + 1, float64(b.X2), float64(b.Y2)
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
	// Devkit reads annotations as the VOC devkit's evaluation code does:
	// objects whose <name> is not in Classes are left out instead of being
	// an error, and boxes are not checked against <size>. Boxes must still
	// be well formed (xmin <= xmax, ymin <= ymax, finite numbers).
	Devkit bool
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
	listPath := filepath.Join(root, "ImageSets", "Main", split+".txt")
	list, err := os.ReadFile(listPath)
	if err != nil {
		return nil, fmt.Errorf("voc: read split %q: %w", split, err)
	}
	s := &Set{Classes: classes}
	seen := make(map[string]int)
	pos := 0
	for lineNo, line := range strings.Split(string(list), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		id := fields[0]
		r, err := readVOCRecord(root, id, classes, o)
		if err == nil {
			if prev, dup := seen[id]; dup {
				err = &BadSampleError{Format: "voc", File: listPath, Where: fmt.Sprintf("line %d", lineNo+1),
					Err: fmt.Errorf("duplicate image id %q (first on line %d)", id, prev)}
			}
		}
		if _, dup := seen[id]; !dup {
			seen[id] = lineNo + 1
		}
		r.ID = int64(pos)
		pos++
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
	path := filepath.Join(root, "Annotations", id+".xml")
	data, err := os.ReadFile(path)
	if err != nil {
		return Record{}, &BadSampleError{Format: "voc", File: path, Err: err}
	}
	r, err := decodeVOCAnnotation(data, path, classes, o.Devkit)
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

// vocAnnotation mirrors the parts of a VOC annotation file that are read.
// Numbers are kept as text and parsed by hand, so that floats are accepted
// and errors name the field.
type vocAnnotation struct {
	XMLName  xml.Name
	Filename string      `xml:"filename"`
	Size     *vocSize    `xml:"size"`
	Objects  []vocObject `xml:"object"`
}

type vocSize struct {
	Width  *string `xml:"width"`
	Height *string `xml:"height"`
}

type vocObject struct {
	Name      *string    `xml:"name"`
	Truncated *string    `xml:"truncated"`
	Difficult *string    `xml:"difficult"`
	BndBox    *vocBndBox `xml:"bndbox"`
}

type vocBndBox struct {
	Xmin *string `xml:"xmin"`
	Ymin *string `xml:"ymin"`
	Xmax *string `xml:"xmax"`
	Ymax *string `xml:"ymax"`
}

// DecodeVOCAnnotation parses one VOC annotation file's bytes. file names it
// in errors. classes maps label -> name (nil means VOCClasses()). The record
// has Width, Height, Name (<filename> without its extension) and every
// object, difficult ones included, with boxes converted by VOCToBox and
// checked against the image size. Required: the <annotation> root, <size>
// with positive integer <width> and <height>, and per object <name> (one of
// classes) and <bndbox> with xmin <= xmax, ymin <= ymax inside the image.
// <difficult> and <truncated> default to 0. Errors are *BadSampleError.
func DecodeVOCAnnotation(data []byte, file string, classes []string) (Record, error) {
	return decodeVOCAnnotation(data, file, classes, false)
}

// decodeVOCAnnotation is DecodeVOCAnnotation; devkit relaxes it as
// VOCOptions.Devkit says.
func decodeVOCAnnotation(data []byte, file string, classes []string, devkit bool) (Record, error) {
	if classes == nil {
		classes = VOCClasses()
	}
	bad := func(where string, format string, args ...any) error {
		return &BadSampleError{Format: "voc", File: file, Where: where, Err: fmt.Errorf(format, args...)}
	}
	var a vocAnnotation
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.CharsetReader = latin1Reader
	if err := dec.Decode(&a); err != nil {
		return Record{}, &BadSampleError{Format: "voc", File: file, Err: fmt.Errorf("parse: %w", err)}
	}
	if a.XMLName.Local != "annotation" {
		return Record{}, bad("", "root element <%s>, want <annotation>", a.XMLName.Local)
	}
	if a.Size == nil {
		return Record{}, bad("size", "missing <size>")
	}
	w, err := vocSizeField(a.Size.Width, "width")
	if err != nil {
		return Record{}, bad("size", "%v", err)
	}
	h, err := vocSizeField(a.Size.Height, "height")
	if err != nil {
		return Record{}, bad("size", "%v", err)
	}
	r := Record{
		Name:   strings.TrimSuffix(strings.TrimSpace(a.Filename), filepath.Ext(strings.TrimSpace(a.Filename))),
		Width:  w,
		Height: h,
	}
	if len(a.Objects) > 0 {
		r.Objects = make([]Object, 0, len(a.Objects))
	}
	for i, o := range a.Objects {
		where := fmt.Sprintf("object %d", i)
		if o.Name == nil || strings.TrimSpace(*o.Name) == "" {
			return Record{}, bad(where, "missing <name>")
		}
		name := strings.TrimSpace(*o.Name)
		where = fmt.Sprintf("object %d (%s)", i, name)
		label := indexOf(classes, name)
		if label < 0 && devkit {
			continue
		}
		if label < 0 {
			return Record{}, bad(where, "unknown class %q", name)
		}
		difficult, err := vocFlag(o.Difficult, "difficult")
		if err != nil {
			return Record{}, bad(where, "%v", err)
		}
		truncated, err := vocFlag(o.Truncated, "truncated")
		if err != nil {
			return Record{}, bad(where, "%v", err)
		}
		if o.BndBox == nil {
			return Record{}, bad(where, "missing <bndbox>")
		}
		var c [4]float64
		for k, f := range []struct {
			s    *string
			name string
		}{{o.BndBox.Xmin, "xmin"}, {o.BndBox.Ymin, "ymin"}, {o.BndBox.Xmax, "xmax"}, {o.BndBox.Ymax, "ymax"}} {
			if c[k], err = vocNumber(f.s, f.name); err != nil {
				return Record{}, bad(where, "%v", err)
			}
		}
		if c[2] < c[0] {
			return Record{}, bad(where, "xmax %v < xmin %v", c[2], c[0])
		}
		if c[3] < c[1] {
			return Record{}, bad(where, "ymax %v < ymin %v", c[3], c[1])
		}
		b := VOCToBox(c[0], c[1], c[2], c[3])
		if err := checkBox(b, w, h, 0); err != nil && !devkit {
			return Record{}, bad(where, "bndbox (%v,%v)-(%v,%v) outside the %dx%d image (VOC coordinates are 1..width, 1..height)",
				c[0], c[1], c[2], c[3], w, h)
		}
		r.Objects = append(r.Objects, Object{
			Box: b, Label: label, Difficult: difficult, Truncated: truncated, Area: b.Area(),
		})
	}
	return r, nil
}

// latin1Reader lets annotation files declare encoding="ISO-8859-1" (or
// US-ASCII), as some labelling tools write; encoding/xml reads only UTF-8
// itself.
func latin1Reader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "us-ascii", "ascii":
	default:
		return nil, fmt.Errorf("unsupported encoding %q", label)
	}
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, err
	}
	out := make([]rune, len(data))
	for i, c := range data {
		out[i] = rune(c)
	}
	return strings.NewReader(string(out)), nil
}

// maxImageSide bounds the image sizes the readers accept.
const maxImageSide = 1 << 20

// vocNumber parses a finite number field.
func vocNumber(s *string, name string) (float64, error) {
	if s == nil {
		return 0, fmt.Errorf("missing <%s>", name)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(*s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("<%s> %q is not a finite number", name, strings.TrimSpace(*s))
	}
	return v, nil
}

// vocSizeField parses <width> or <height>: a positive integer (written as a
// float is accepted if integral).
func vocSizeField(s *string, name string) (int, error) {
	v, err := vocNumber(s, name)
	if err != nil {
		return 0, err
	}
	if v != math.Trunc(v) || v < 1 || v > maxImageSide {
		return 0, fmt.Errorf("<%s> %v is not an integer in [1, %d]", name, v, maxImageSide)
	}
	return int(v), nil
}

// vocFlag parses <difficult> or <truncated>: absent or empty is false,
// otherwise a number, non-zero meaning true.
func vocFlag(s *string, name string) (bool, error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return false, nil
	}
	v, err := vocNumber(s, name)
	if err != nil {
		return false, err
	}
	return v != 0, nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

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

// formatCoord writes a coordinate as the shortest decimal that parses back
// to the same float64: integers without a decimal point.
func formatCoord(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// checkVOCName rejects image ids that cannot be a file name or a field of a
// whitespace-separated list.
func checkVOCName(name string) error {
	if name == "" || strings.ContainsAny(name, " \t\r\n/\\") || name == "." || name == ".." {
		return fmt.Errorf("image name %q is not a valid VOC image id", name)
	}
	return nil
}

// WriteVOCAnnotation writes r as a VOC annotation XML file at path
// (atomically), in the layout of the VOC devkit: <filename> (the base of
// r.ImagePath, or r.Name+".jpg"), <size> (depth 3), and per object <name>
// (classes[Label]), <pose>, <truncated>, <difficult> and <bndbox> converted
// with BoxToVOC. Integer coordinates are written as integers, others as the
// shortest decimal that reads back exactly. A label outside classes is an
// error.
func WriteVOCAnnotation(path string, r Record, classes []string) error {
	data, err := encodeVOCAnnotation(r, classes)
	if err == nil {
		err = writeFileAtomic(path, func(w *bufio.Writer) error {
			_, err := w.Write(data)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("voc: write %s: %w", path, err)
	}
	return nil
}

// encodeVOCAnnotation returns the file WriteVOCAnnotation writes.
func encodeVOCAnnotation(r Record, classes []string) ([]byte, error) {
	var buf bytes.Buffer
	filename := r.Name + ".jpg"
	if r.ImagePath != "" {
		filename = filepath.Base(r.ImagePath)
	}
	buf.WriteString("<annotation>\n\t<folder>VOC</folder>\n\t<filename>")
	xml.EscapeText(&buf, []byte(filename))
	fmt.Fprintf(&buf, "</filename>\n\t<size>\n\t\t<width>%d</width>\n\t\t<height>%d</height>\n\t\t<depth>3</depth>\n\t</size>\n\t<segmented>0</segmented>\n", r.Width, r.Height)
	for i, o := range r.Objects {
		if o.Label < 0 || o.Label >= len(classes) {
			return nil, fmt.Errorf("object %d: label %d out of range [0, %d)", i, o.Label, len(classes))
		}
		xmin, ymin, xmax, ymax := BoxToVOC(o.Box)
		buf.WriteString("\t<object>\n\t\t<name>")
		xml.EscapeText(&buf, []byte(classes[o.Label]))
		fmt.Fprintf(&buf, "</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>%d</truncated>\n\t\t<difficult>%d</difficult>\n", b2i(o.Truncated), b2i(o.Difficult))
		fmt.Fprintf(&buf, "\t\t<bndbox>\n\t\t\t<xmin>%s</xmin>\n\t\t\t<ymin>%s</ymin>\n\t\t\t<xmax>%s</xmax>\n\t\t\t<ymax>%s</ymax>\n\t\t</bndbox>\n\t</object>\n",
			formatCoord(xmin), formatCoord(ymin), formatCoord(xmax), formatCoord(ymax))
	}
	buf.WriteString("</annotation>\n")
	return buf.Bytes(), nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// WriteVOC writes s as the annotation part of a VOC year folder at root:
// Annotations/<Name>.xml for every record (WriteVOCAnnotation) and
// ImageSets/Main/<split>.txt listing the record names in order. Images are
// not written (JPEGImages is the caller's). Record names must be valid VOC
// image ids (non-empty, no whitespace or path separators) and unique.
func WriteVOC(root, split string, s *Set) error {
	if err := checkVOCName(split); err != nil {
		return fmt.Errorf("voc: split: %w", err)
	}
	annDir := filepath.Join(root, "Annotations")
	setDir := filepath.Join(root, "ImageSets", "Main")
	for _, d := range []string{annDir, setDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("voc: %w", err)
		}
	}
	seen := make(map[string]bool, len(s.Records))
	var list bytes.Buffer
	for i, r := range s.Records {
		if err := checkVOCName(r.Name); err != nil {
			return fmt.Errorf("voc: record %d: %w", i, err)
		}
		if seen[r.Name] {
			return fmt.Errorf("voc: record %d: duplicate image name %q", i, r.Name)
		}
		seen[r.Name] = true
		if err := WriteVOCAnnotation(filepath.Join(annDir, r.Name+".xml"), r, s.Classes); err != nil {
			return err
		}
		list.WriteString(r.Name)
		list.WriteByte('\n')
	}
	path := filepath.Join(setDir, split+".txt")
	if err := writeFileAtomic(path, func(w *bufio.Writer) error { _, err := w.Write(list.Bytes()); return err }); err != nil {
		return fmt.Errorf("voc: write %s: %w", path, err)
	}
	return nil
}

// VOCResultsFile returns the path of the VOC devkit result file of one class:
// dir/comp4_det_<split>_<class>.txt.
func VOCResultsFile(dir, split, class string) string {
	return filepath.Join(dir, "comp4_det_"+split+"_"+class+".txt")
}

// WriteVOCResults writes dets as VOC devkit result files, one per class
// (VOCResultsFile; written, possibly empty, for every class), each line
// "<image> <score> <xmin> <ymin> <xmax> <ymax>" with Detection.Name as the
// image and the box converted by BoxToVOC (1-based, as Detectron2 writes:
// xmin = X1+1, ymin = Y1+1, xmax = X2, ymax = Y2). Numbers are written in
// full precision (the shortest decimal that reads back exactly), not rounded
// as Detectron2's "%.3f %.1f" does. Lines keep the order of dets.
func WriteVOCResults(dir, split string, classes []string, dets []Detection) error {
	perClass := make([]bytes.Buffer, len(classes))
	for i, d := range dets {
		if d.Label < 0 || d.Label >= len(classes) {
			return fmt.Errorf("voc: results: detection %d: label %d out of range [0, %d)", i, d.Label, len(classes))
		}
		if err := checkVOCName(d.Name); err != nil {
			return fmt.Errorf("voc: results: detection %d: %w", i, err)
		}
		xmin, ymin, xmax, ymax := BoxToVOC(d.Box)
		b := &perClass[d.Label]
		b.WriteString(d.Name)
		b.WriteByte(' ')
		b.WriteString(strconv.FormatFloat(float64(d.Score), 'f', -1, 32))
		for _, v := range []float64{xmin, ymin, xmax, ymax} {
			b.WriteByte(' ')
			b.WriteString(formatCoord(v))
		}
		b.WriteByte('\n')
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("voc: results: %w", err)
	}
	for c, name := range classes {
		path := VOCResultsFile(dir, split, name)
		err := writeFileAtomic(path, func(w *bufio.Writer) error { _, err := w.Write(perClass[c].Bytes()); return err })
		if err != nil {
			return fmt.Errorf("voc: write %s: %w", path, err)
		}
	}
	return nil
}

// ReadVOCResults reads the result files WriteVOCResults writes (or the VOC
// devkit's): for every class in order, VOCResultsFile(dir, split, class),
// each line "<image> <score> <xmin> <ymin> <xmax> <ymax>" converted with
// VOCToBox. Detection.ImageID is 0 (the files hold only names). A missing
// file or a malformed line is an error naming the file and line.
func ReadVOCResults(dir, split string, classes []string) ([]Detection, error) {
	var dets []Detection
	for label, name := range classes {
		path := VOCResultsFile(dir, split, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("voc: results: %w", err)
		}
		for lineNo, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if len(f) != 6 {
				return nil, fmt.Errorf("voc: %s: line %d: %d fields, want 6", path, lineNo+1, len(f))
			}
			var v [5]float64
			for k := range v {
				v[k], err = strconv.ParseFloat(f[k+1], 64)
				if err != nil || math.IsNaN(v[k]) || math.IsInf(v[k], 0) {
					return nil, fmt.Errorf("voc: %s: line %d: field %d %q is not a finite number", path, lineNo+1, k+2, f[k+1])
				}
			}
			dets = append(dets, Detection{Name: f[0], Label: label, Score: float32(v[0]), Box: VOCToBox(v[1], v[2], v[3], v[4])})
		}
	}
	return dets, nil
}
