package voc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"resdet/internal/atomicfile"
)

// Detection is one line of a devkit result file: "<image> <score> <xmin>
// <ymin> <xmax> <ymax>", the box in the annotation XML's convention.
type Detection struct {
	Image string
	Score float64
	Box   Box
}

// ResultsFile returns the devkit's result file of one class:
// dir/comp4_det_<split>_<class>.txt.
func ResultsFile(dir, split, class string) string {
	return filepath.Join(dir, "comp4_det_"+split+"_"+class+".txt")
}

// ReadResults reads one result file from r; file names it in errors
// (*Error, Where "line N"). Fields are separated by white space; blank lines
// are skipped. Every line needs six fields, finite numbers, xmin <= xmax and
// ymin <= ymax.
func ReadResults(r io.Reader, file string) ([]Detection, error) {
	var dets []Detection
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		bad := func(format string, args ...any) error {
			return &Error{File: file, Where: fmt.Sprintf("line %d", n), Err: fmt.Errorf(format, args...)}
		}
		if len(f) != 6 {
			return nil, bad("%d fields, want 6 (image score xmin ymin xmax ymax)", len(f))
		}
		var v [5]float64
		for i, s := range f[1:] {
			x, err := strconv.ParseFloat(s, 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return nil, bad("field %d: bad number %q", i+2, s)
			}
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, bad("field %d is %v", i+2, x)
			}
			v[i] = x
		}
		d := Detection{Image: f[0], Score: v[0], Box: Box{v[1], v[2], v[3], v[4]}}
		if d.Box.Xmax < d.Box.Xmin || d.Box.Ymax < d.Box.Ymin {
			return nil, bad("box %v has xmax < xmin or ymax < ymin", v[1:])
		}
		dets = append(dets, d)
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{File: file, Err: err}
	}
	return dets, nil
}

// ReadResultsDir reads ResultsFile(dir, split, class) for every class in
// order: dets[k] holds the detections of classes[k]. A missing file means
// no detections for its class: the class is listed in missing and
// dets[k] is nil. Any other error is returned.
func ReadResultsDir(dir, split string, classes []string) (dets [][]Detection, missing []string, err error) {
	dets = make([][]Detection, len(classes))
	for k, c := range classes {
		path := ResultsFile(dir, split, c)
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, c)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		dets[k], err = ReadResults(bufio.NewReaderSize(f, 1<<16), path)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	return dets, missing, nil
}

// WriteResults writes dets one a line, "<image> <score> <xmin> <ymin>
// <xmax> <ymax>", numbers by FormatNumber (full precision). Image names must
// pass CheckName.
func WriteResults(w io.Writer, dets []Detection) error {
	var b []byte
	for i, d := range dets {
		if err := CheckName(d.Image); err != nil {
			return fmt.Errorf("detection %d: %w", i, err)
		}
		b = append(b, d.Image...)
		for _, v := range [5]float64{d.Score, d.Box.Xmin, d.Box.Ymin, d.Box.Xmax, d.Box.Ymax} {
			b = append(b, ' ')
			b = strconv.AppendFloat(b, v, 'f', -1, 64)
		}
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}

// WriteResultsDir writes one result file per class (ResultsFile; every
// class, possibly empty), dets[k] to the file of classes[k], each file
// atomically. It creates dir.
func WriteResultsDir(dir, split string, classes []string, dets [][]Detection) error {
	if len(dets) != len(classes) {
		return fmt.Errorf("voc: %d detection lists for %d classes", len(dets), len(classes))
	}
	if err := CheckName(split); err != nil {
		return fmt.Errorf("split: %w", err)
	}
	for k, d := range dets {
		for i := range d {
			if err := CheckName(d[i].Image); err != nil {
				return fmt.Errorf("class %s: detection %d: %w", classes[k], i, err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for k, c := range classes {
		if err := atomicfile.Write(ResultsFile(dir, split, c), func(w io.Writer) error { return WriteResults(w, dets[k]) }); err != nil {
			return err
		}
	}
	return nil
}
