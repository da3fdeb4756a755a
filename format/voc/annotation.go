package voc

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"resdet/box"
)

// Annotation is one annotation file: the image's name and size and its
// objects in file order.
type Annotation struct {
	Folder   string // <folder>; may be empty
	Filename string // <filename>, e.g. "000005.jpg"
	// Width and Height are <size>'s, in pixels (required, >= 1). Depth is
	// <depth> (0 when absent).
	Width, Height, Depth int
	Segmented            bool // <segmented> non-zero
	Objects              []Object
}

// Object is one <object> element.
type Object struct {
	Name      string // <name>, white space trimmed (required)
	Pose      string // <pose>; may be empty
	Truncated bool   // <truncated> non-zero; absent or empty is false
	Difficult bool   // <difficult> non-zero; absent or empty is false
	Box       Box    // <bndbox>
}

// Box is a <bndbox>: 1-based inclusive pixel indices, Xmin <= Xmax and
// Ymin <= Ymax, finite (fractions are allowed and kept).
type Box struct{ Xmin, Ymin, Xmax, Ymax float64 }

// ToBox converts b to the project convention (box/doc.go): b covers pixel
// columns Xmin..Xmax (1-based, inclusive), the continuous interval
// [Xmin-1, Xmax); so X1 = Xmin-1, Y1 = Ymin-1, X2 = Xmax, Y2 = Ymax, as
// Detectron2's pascal_voc.py. The subtraction is done in float64 and
// rounded once, so integer coordinates convert exactly.
func ToBox(b Box) box.Box {
	return box.Box{X1: float32(b.Xmin - 1), Y1: float32(b.Ymin - 1), X2: float32(b.Xmax), Y2: float32(b.Ymax)}
}

// FromBox is the inverse of ToBox: Xmin = X1+1, Ymin = Y1+1, Xmax = X2,
// Ymax = Y2 (as Detectron2 writes its VOC result files). ToBox(FromBox(b))
// == b for every finite b whose X1 and Y1 are 0 or at least 2^-29 in
// magnitude (any pixel coordinate): the +1 is exact in float64 there.
func FromBox(b box.Box) Box {
	return Box{float64(b.X1) + 1, float64(b.Y1) + 1, float64(b.X2), float64(b.Y2)}
}

// Error is a problem with one file, naming the entry when there is one.
type Error struct {
	File  string
	Where string // "object 2 (dog)", "size", "line 7"; may be empty
	Err   error
}

func (e *Error) Error() string {
	if e.Where == "" {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.File, e.Where, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// MaxImageSide bounds the image sizes DecodeAnnotation accepts.
const MaxImageSide = 1 << 20

// xmlAnnotation mirrors what is read. Numbers are kept as text and parsed
// by hand, so that floats are accepted and errors name the field.
type xmlAnnotation struct {
	XMLName   xml.Name
	Folder    string      `xml:"folder"`
	Filename  string      `xml:"filename"`
	Size      *xmlSize    `xml:"size"`
	Segmented *string     `xml:"segmented"`
	Objects   []xmlObject `xml:"object"`
}

type xmlSize struct {
	Width  *string `xml:"width"`
	Height *string `xml:"height"`
	Depth  *string `xml:"depth"`
}

type xmlObject struct {
	Name      *string    `xml:"name"`
	Pose      string     `xml:"pose"`
	Truncated *string    `xml:"truncated"`
	Difficult *string    `xml:"difficult"`
	BndBox    *xmlBndBox `xml:"bndbox"`
}

type xmlBndBox struct {
	Xmin *string `xml:"xmin"`
	Ymin *string `xml:"ymin"`
	Xmax *string `xml:"xmax"`
	Ymax *string `xml:"ymax"`
}

// DecodeAnnotation reads one annotation file from r; file names it in
// errors, which are *Error. Required: the <annotation> root, <size> with
// integer <width> and <height> in [1, MaxImageSide], and per object a
// non-empty <name> and a <bndbox> with four finite numbers, xmin <= xmax,
// ymin <= ymax. <difficult>, <truncated>, <segmented> and <depth> are
// numbers when present and not empty. The file may declare UTF-8,
// ISO-8859-1 or US-ASCII. Whether names are known classes and boxes lie in
// the image is for the caller to decide.
func DecodeAnnotation(r io.Reader, file string) (*Annotation, error) {
	bad := func(where string, format string, args ...any) error {
		return &Error{File: file, Where: where, Err: fmt.Errorf(format, args...)}
	}
	var x xmlAnnotation
	dec := xml.NewDecoder(r)
	dec.CharsetReader = latin1Reader
	if err := dec.Decode(&x); err != nil {
		return nil, &Error{File: file, Err: fmt.Errorf("parse: %w", err)}
	}
	if x.XMLName.Local != "annotation" {
		return nil, bad("", "root element <%s>, want <annotation>", x.XMLName.Local)
	}
	if x.Size == nil {
		return nil, bad("size", "missing <size>")
	}
	a := &Annotation{Folder: strings.TrimSpace(x.Folder), Filename: strings.TrimSpace(x.Filename)}
	var err error
	if a.Width, err = sizeField(x.Size.Width, "width"); err != nil {
		return nil, bad("size", "%v", err)
	}
	if a.Height, err = sizeField(x.Size.Height, "height"); err != nil {
		return nil, bad("size", "%v", err)
	}
	depth, err := optionalNumber(x.Size.Depth, "depth")
	if err != nil || depth != math.Trunc(depth) || depth < 0 || depth > 1<<16 {
		return nil, bad("size", "<depth> %q is not a small integer", strings.TrimSpace(*x.Size.Depth))
	}
	a.Depth = int(depth)
	seg, err := optionalNumber(x.Segmented, "segmented")
	if err != nil {
		return nil, bad("segmented", "%v", err)
	}
	a.Segmented = seg != 0
	if len(x.Objects) > 0 {
		a.Objects = make([]Object, len(x.Objects))
	}
	for i, xo := range x.Objects {
		where := fmt.Sprintf("object %d", i)
		if xo.Name == nil || strings.TrimSpace(*xo.Name) == "" {
			return nil, bad(where, "missing <name>")
		}
		o := &a.Objects[i]
		o.Name = strings.TrimSpace(*xo.Name)
		o.Pose = strings.TrimSpace(xo.Pose)
		where = fmt.Sprintf("object %d (%s)", i, o.Name)
		d, err := optionalNumber(xo.Difficult, "difficult")
		if err != nil {
			return nil, bad(where, "%v", err)
		}
		t, err := optionalNumber(xo.Truncated, "truncated")
		if err != nil {
			return nil, bad(where, "%v", err)
		}
		o.Difficult, o.Truncated = d != 0, t != 0
		if xo.BndBox == nil {
			return nil, bad(where, "missing <bndbox>")
		}
		var c [4]float64
		for k, f := range []struct {
			s    *string
			name string
		}{{xo.BndBox.Xmin, "xmin"}, {xo.BndBox.Ymin, "ymin"}, {xo.BndBox.Xmax, "xmax"}, {xo.BndBox.Ymax, "ymax"}} {
			if c[k], err = number(f.s, f.name); err != nil {
				return nil, bad(where, "%v", err)
			}
		}
		if c[2] < c[0] {
			return nil, bad(where, "xmax %v < xmin %v", c[2], c[0])
		}
		if c[3] < c[1] {
			return nil, bad(where, "ymax %v < ymin %v", c[3], c[1])
		}
		o.Box = Box{c[0], c[1], c[2], c[3]}
	}
	return a, nil
}

// ReadAnnotationFile reads the annotation file at path with
// DecodeAnnotation. A file that cannot be opened gives the *fs.PathError.
func ReadAnnotationFile(path string) (*Annotation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return DecodeAnnotation(bufio.NewReader(f), path)
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

// number parses a required finite number field.
func number(s *string, name string) (float64, error) {
	if s == nil {
		return 0, fmt.Errorf("missing <%s>", name)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(*s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("<%s> %q is not a finite number", name, strings.TrimSpace(*s))
	}
	return v, nil
}

// optionalNumber parses a number field that may be absent or empty (0).
func optionalNumber(s *string, name string) (float64, error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return 0, nil
	}
	return number(s, name)
}

// sizeField parses <width> or <height>: an integer in [1, MaxImageSide]
// (written as a float is accepted if integral).
func sizeField(s *string, name string) (int, error) {
	v, err := number(s, name)
	if err != nil {
		return 0, err
	}
	if v != math.Trunc(v) || v < 1 || v > MaxImageSide {
		return 0, fmt.Errorf("<%s> %v is not an integer in [1, %d]", name, v, MaxImageSide)
	}
	return int(v), nil
}

// FormatNumber writes a coordinate or score as the shortest decimal that
// parses back to the same float64: integers without a decimal point.
func FormatNumber(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// EncodeAnnotation writes a in the layout of the VOC devkit's files:
// <folder>, <filename>, <size> (width, height, depth), <segmented>, and per
// object <name>, <pose> ("Unspecified" when empty), <truncated>,
// <difficult> and <bndbox>, one element a line, tab-indented. Numbers are
// written by FormatNumber, text is XML-escaped.
func EncodeAnnotation(w io.Writer, a *Annotation) error {
	var b strings.Builder
	esc := func(s string) { xml.EscapeText(&b, []byte(s)) }
	b.WriteString("<annotation>\n\t<folder>")
	esc(a.Folder)
	b.WriteString("</folder>\n\t<filename>")
	esc(a.Filename)
	fmt.Fprintf(&b, "</filename>\n\t<size>\n\t\t<width>%d</width>\n\t\t<height>%d</height>\n\t\t<depth>%d</depth>\n\t</size>\n\t<segmented>%d</segmented>\n",
		a.Width, a.Height, a.Depth, b2i(a.Segmented))
	for _, o := range a.Objects {
		pose := o.Pose
		if pose == "" {
			pose = "Unspecified"
		}
		b.WriteString("\t<object>\n\t\t<name>")
		esc(o.Name)
		b.WriteString("</name>\n\t\t<pose>")
		esc(pose)
		fmt.Fprintf(&b, "</pose>\n\t\t<truncated>%d</truncated>\n\t\t<difficult>%d</difficult>\n", b2i(o.Truncated), b2i(o.Difficult))
		fmt.Fprintf(&b, "\t\t<bndbox>\n\t\t\t<xmin>%s</xmin>\n\t\t\t<ymin>%s</ymin>\n\t\t\t<xmax>%s</xmax>\n\t\t\t<ymax>%s</ymax>\n\t\t</bndbox>\n\t</object>\n",
			FormatNumber(o.Box.Xmin), FormatNumber(o.Box.Ymin), FormatNumber(o.Box.Xmax), FormatNumber(o.Box.Ymax))
	}
	b.WriteString("</annotation>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
