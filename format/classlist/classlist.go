package classlist

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Resolve returns the class names spec gives (see the package doc): a copy
// of named[spec] when spec is a key of named, the names of a file, or an
// inline list. Errors start with the file name or the spec.
func Resolve(spec string, named map[string][]string) ([]string, error) {
	if l, ok := named[spec]; ok {
		return slices.Clone(l), nil
	}
	if isFile(spec) {
		f, err := os.Open(spec)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return Read(f, spec)
	}
	return ParseInline(spec)
}

func isFile(spec string) bool {
	if strings.ContainsAny(spec, `/\`) || strings.HasSuffix(spec, ".txt") {
		return true
	}
	st, err := os.Stat(spec)
	return err == nil && st.Mode().IsRegular()
}

// ParseInline parses comma-separated names: "cat, dog" is [cat dog].
func ParseInline(s string) ([]string, error) {
	var names []string
	pos := make(map[string]int)
	for i, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			return nil, fmt.Errorf("%q: name %d is empty", s, i+1)
		}
		if first, dup := pos[n]; dup {
			return nil, fmt.Errorf("%q: name %d: %q is listed twice (also name %d)", s, i+1, n, first)
		}
		pos[n] = i + 1
		names = append(names, n)
	}
	return names, nil
}

// Read parses a class-list file from r; file names it in errors.
func Read(r io.Reader, file string) ([]string, error) {
	var names []string
	line := make(map[string]int)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		name := strings.TrimSpace(sc.Text())
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		if first, dup := line[name]; dup {
			return nil, fmt.Errorf("%s: line %d: %q is listed twice (also line %d)", file, n, name, first)
		}
		line[name] = n
		names = append(names, name)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: %w", file, ErrEmpty)
	}
	return names, nil
}

// ErrEmpty is returned (wrapped) for a file that lists no class.
var ErrEmpty = errors.New("no class names")
