package coco

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
)

// Result is one element of a results list: a detection.
type Result struct {
	ImageID, CategoryID int64
	BBox                [4]float64 // [x, y, w, h], as Annotation.BBox
	Score               float64
}

// ParseResults parses a results list (see the package doc for the entry
// rules). An empty list is valid. The first bad entry stops the parse with
// an *EntryError ("entry 7: score is NaN"); syntax errors name the entry
// and the byte offset. Lists of 1 MiB or more are parsed in GOMAXPROCS
// chunks in parallel; the result, errors included, is the same as a
// sequential parse.
func ParseResults(data []byte) ([]Result, error) {
	if n := runtime.GOMAXPROCS(0); n > 1 && len(data) >= 1<<20 {
		if res, ok := parseResultsParallel(data, n); ok {
			return res, nil
		}
	}
	s := &scanner{data: data}
	res := make([]Result, 0, len(data)/64+1) // ~70 bytes per entry in typical files
	err := s.array(func(i int) error {
		r, err := parseResult(s)
		if err != nil {
			if !isEntryError(err) {
				return fmt.Errorf("entry %d: %w", i, err)
			}
			err.(*EntryError).Index = i
			return err
		}
		res = append(res, r)
		return nil
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// DecodeResults reads a results list from r (all of it) and parses it with
// ParseResults.
func DecodeResults(r io.Reader) ([]Result, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return ParseResults(data)
}

// parseResult parses one results entry. Its errors are syntax errors or an
// *EntryError whose Index the caller sets.
func parseResult(s *scanner) (Result, error) {
	var a Annotation
	var r Result
	if s.peek() != '{' {
		return r, s.errorf("expected '{', found %s", s.describe())
	}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "image_id", "category_id", "bbox", "score":
		default:
			return s.skip()
		}
		bit, err := annotationField(s, string(key), &a, &r.Score)
		if err != nil {
			var se *syntaxError
			if errors.As(err, &se) {
				return fmt.Errorf("%s: %w", key, err)
			}
			return &EntryError{Err: err}
		}
		a.Fields |= bit
		return nil
	})
	if err != nil {
		return r, err
	}
	r.ImageID, r.CategoryID, r.BBox = a.ImageID, a.CategoryID, a.BBox
	bad := missing(a.Fields, FieldImageID|FieldCategoryID|FieldBBox|FieldScore)
	if bad == nil && (math.IsNaN(r.Score) || math.IsInf(r.Score, 0)) {
		bad = fmt.Errorf("score is %v", r.Score)
	}
	if bad == nil {
		bad = checkBBox(r.BBox)
	}
	if bad != nil {
		return r, &EntryError{Err: bad}
	}
	return r, nil
}

// parseResultsParallel splits the list at n-1 guessed element boundaries
// ("}" "," "{" with optional white space between) and parses the chunks
// concurrently. Each chunk must end exactly at the next guessed boundary,
// which proves (by induction from the start of the list) that every guess
// was a real element boundary. ok is false when a guess was wrong or any
// chunk failed: the caller then parses sequentially, which also reports the
// first error with its global entry number.
func parseResultsParallel(data []byte, n int) (res []Result, ok bool) {
	s0 := &scanner{data: data}
	if s0.peek() != '[' {
		return nil, false
	}
	// cuts[c] is the offset of the ',' ending chunk c; starts[c] where chunk
	// c begins (the '[' for chunk 0, an element's '{' otherwise).
	starts := []int{s0.pos}
	var cuts []int
	for c := 1; c < n; c++ {
		from := max(len(data)*c/n, starts[len(starts)-1]+1)
		comma, next := findBoundary(data, from)
		if comma < 0 {
			break
		}
		cuts = append(cuts, comma)
		starts = append(starts, next)
	}
	chunks := make([][]Result, len(starts))
	good := make([]bool, len(starts))
	var wg sync.WaitGroup
	for c := range starts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &scanner{data: data, pos: starts[c]}
			if c == 0 {
				s.pos++ // the '['
				if s.peek() == ']' {
					return
				}
			}
			end := len(data)
			if c < len(cuts) {
				end = cuts[c]
			}
			out := make([]Result, 0, (end-starts[c])/64+1)
			for {
				r, err := parseResult(s)
				if err != nil {
					return
				}
				out = append(out, r)
				switch p := s.peek(); {
				case s.pos == end && c < len(cuts):
					chunks[c], good[c] = out, true
					return
				case s.pos > end && c < len(cuts):
					return
				case p == ',':
					s.pos++
				case p == ']' && c == len(cuts):
					s.pos++
					if s.end() == nil {
						chunks[c], good[c] = out, true
					}
					return
				default:
					return
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for c := range chunks {
		if !good[c] {
			return nil, false
		}
		total += len(chunks[c])
	}
	res = make([]Result, 0, total)
	for _, ch := range chunks {
		res = append(res, ch...)
	}
	return res, true
}

// findBoundary finds the first "}" [ws] "," [ws] "{" at or after from and
// returns the offsets of the ',' and of the '{', or -1, -1.
func findBoundary(data []byte, from int) (comma, next int) {
	for i := from; i < len(data); i++ {
		if data[i] != '}' {
			continue
		}
		j := i + 1
		for j < len(data) && isSpace(data[j]) {
			j++
		}
		if j >= len(data) || data[j] != ',' {
			continue
		}
		k := j + 1
		for k < len(data) && isSpace(data[k]) {
			k++
		}
		if k < len(data) && data[k] == '{' {
			return j, k
		}
	}
	return -1, -1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
