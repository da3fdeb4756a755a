package voc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ImageSetEntry is one line of an image-set list.
type ImageSetEntry struct {
	Name string // image id, e.g. "000005"
	Line int    // 1-based line number
}

// ImageSetPath returns root/ImageSets/Main/<split>.txt.
func ImageSetPath(root, split string) string {
	return filepath.Join(root, "ImageSets", "Main", split+".txt")
}

// AnnotationPath returns root/Annotations/<name>.xml.
func AnnotationPath(root, name string) string {
	return filepath.Join(root, "Annotations", name+".xml")
}

// ReadImageSet reads an image-set list (ImageSets/Main/<split>.txt, or a
// per-class list such as car_trainval.txt): the first field of every
// non-blank line, in order. Other fields (the per-class lists' 1/-1/0) are
// ignored; repeated names are returned as they are.
func ReadImageSet(r io.Reader) ([]ImageSetEntry, error) {
	var out []ImageSetEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			out = append(out, ImageSetEntry{Name: f[0], Line: n})
		}
	}
	return out, sc.Err()
}

// ReadImageSetFile reads ImageSetPath(root, split) with ReadImageSet.
// Errors name the file.
func ReadImageSetFile(root, split string) ([]ImageSetEntry, error) {
	path := ImageSetPath(root, split)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	list, err := ReadImageSet(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return list, nil
}

// WriteImageSet writes names one a line. Every name must pass CheckName.
func WriteImageSet(w io.Writer, names []string) error {
	var b strings.Builder
	for i, n := range names {
		if err := CheckName(n); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		b.WriteString(n)
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// CheckName rejects image ids (and split names) that cannot be a file name
// or a field of a white-space separated line: empty, ".", "..", or holding
// white space or a path separator.
func CheckName(name string) error {
	if name == "" || strings.ContainsAny(name, " \t\r\n\v\f/\\") || name == "." || name == ".." {
		return fmt.Errorf("image name %q is not a valid VOC image id", name)
	}
	return nil
}
