package coco

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"
)

// scanner is a small pull parser for COCO's JSON files. It
// reads only what it is asked for and skips every other value without
// building it, which makes it several times faster than encoding/json on the
// large results lists (500k detections) and on instance files with
// segmentation polygons. It accepts Python's json extensions NaN, Infinity
// and -Infinity as numbers, so that such scores are reported by name instead
// of as a syntax error.
type scanner struct {
	data []byte
	pos  int
}

// syntaxError reports malformed JSON at a byte offset; the callers add the
// file name and the entry.
type syntaxError struct {
	offset int
	msg    string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.offset, e.msg) }

func (s *scanner) errorf(format string, args ...any) error {
	return &syntaxError{offset: s.pos, msg: fmt.Sprintf(format, args...)}
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end of the input.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return s.errorf("expected %q, found %s", c, s.describe())
	}
	s.pos++
	return nil
}

func (s *scanner) describe() string {
	if s.pos >= len(s.data) {
		return "end of file"
	}
	return strconv.QuoteRune(rune(s.data[s.pos]))
}

// end checks that only white space follows the top-level value.
func (s *scanner) end() error {
	// Not peek() != 0: a NUL byte in the input would pass for the end.
	if s.ws(); s.pos < len(s.data) {
		return s.errorf("unexpected %s after the top-level value", s.describe())
	}
	return nil
}

// array calls f for each element of an array; f must consume the element.
func (s *scanner) array(f func(i int) error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := f(i); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.errorf("expected ',' or ']' in array, found %s", s.describe())
		}
	}
}

// object calls f for each member of an object with its key (valid only
// during the call); f must consume the value.
func (s *scanner) object(f func(key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.errorf("expected an object key, found %s", s.describe())
		}
		key, escaped, err := s.rawString()
		if err != nil {
			return err
		}
		if escaped {
			var k string
			if err := json.Unmarshal(key, &k); err != nil {
				return s.errorf("bad key %s: %v", key, err)
			}
			key = []byte(k)
		} else {
			key = key[1 : len(key)-1]
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := f(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errorf("expected ',' or '}' in object, found %s", s.describe())
		}
	}
}

// rawString returns the string token at the current position, quotes
// included, and whether it contains escapes.
func (s *scanner) rawString() (raw []byte, escaped bool, err error) {
	if s.peek() != '"' {
		return nil, false, s.errorf("expected a string, found %s", s.describe())
	}
	start := s.pos
	i := s.pos + 1
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return s.data[start:s.pos], escaped, nil
		case c == '\\':
			escaped = true
			i += 2
		case c < 0x20:
			s.pos = i
			return nil, false, s.errorf("control character in string")
		default:
			i++
		}
	}
	s.pos = start
	return nil, false, s.errorf("unterminated string")
}

func (s *scanner) str() (string, error) {
	raw, escaped, err := s.rawString()
	if err != nil {
		return "", err
	}
	if !escaped {
		return string(raw[1 : len(raw)-1]), nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", &syntaxError{offset: s.pos - len(raw), msg: err.Error()}
	}
	return v, nil
}

// numberToken returns the bytes of a number (including NaN, Infinity,
// -Infinity) without converting it.
func (s *scanner) numberToken() ([]byte, error) {
	s.ws()
	start := s.pos
	if start < len(s.data) && (s.data[start] == 'N' || s.data[start] == 'I' || s.data[start] == '-') {
		for _, lit := range [...]string{"NaN", "Infinity", "-Infinity"} {
			if len(s.data)-start >= len(lit) && string(s.data[start:start+len(lit)]) == lit {
				s.pos += len(lit)
				return s.data[start:s.pos], nil
			}
		}
	}
	i := start
	for i < len(s.data) {
		c := s.data[i]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			i++
			continue
		}
		break
	}
	if i == start {
		return nil, s.errorf("expected a number, found %s", s.describe())
	}
	s.pos = i
	return s.data[start:i], nil
}

// pow10 are the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// fastNumber converts a plain decimal [-]digits[.digits] with at most 15
// significant digits and 22 decimals as mantissa / 10^decimals: both are
// exact in float64 and IEEE division rounds correctly, so the result is
// the correctly rounded value, as strconv.ParseFloat's (Clinger's fast
// path). ok is false for any other form.
func fastNumber(tok []byte) (v float64, ok bool) {
	i, neg := 0, false
	if len(tok) > 0 && tok[0] == '-' {
		neg, i = true, 1
	}
	var mant uint64
	digits, decimals, dot := 0, 0, false
	for ; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c >= '0' && c <= '9':
			if mant != 0 || c != '0' {
				digits++
			}
			mant = mant*10 + uint64(c-'0')
			if dot {
				decimals++
			}
		case c == '.' && !dot:
			dot = true
		default:
			return 0, false
		}
	}
	if digits > 15 || decimals > 22 || (len(tok) == 1 && neg) || (dot && decimals == 0) {
		return 0, false
	}
	v = float64(mant) / pow10[decimals]
	if neg {
		v = -v
	}
	return v, true
}

// number parses a JSON number as float64, correctly rounded (as Python's
// float()). NaN and ±Inf are returned as such; callers decide.
func (s *scanner) number() (float64, error) {
	tok, err := s.numberToken()
	if err != nil {
		return 0, err
	}
	if v, ok := fastNumber(tok); ok && validNumber(tok) {
		return v, nil
	}
	switch string(tok) {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	if !validNumber(tok) {
		return 0, &syntaxError{offset: s.pos - len(tok), msg: fmt.Sprintf("bad number %q", tok)}
	}
	v, err := strconv.ParseFloat(unsafe.String(&tok[0], len(tok)), 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return v, nil // ±Inf or 0 like Python
		}
		return 0, &syntaxError{offset: s.pos - len(tok), msg: fmt.Sprintf("bad number %q", tok)}
	}
	return v, nil
}

// integer parses an integer id. A number with an integral float value (1.0,
// 1e3) is accepted, as Python compares 1.0 == 1.
func (s *scanner) integer() (int64, error) {
	tok, err := s.numberToken()
	if err != nil {
		return 0, err
	}
	if !validNumber(tok) {
		return 0, &syntaxError{offset: s.pos - len(tok), msg: fmt.Sprintf("%q is not an integer", tok)}
	}
	if len(tok) <= 18 {
		var v int64
		i := 0
		if tok[0] == '-' {
			i = 1
		}
		ok := i < len(tok)
		for ; i < len(tok) && ok; i++ {
			c := tok[i]
			ok = c >= '0' && c <= '9'
			v = v*10 + int64(c-'0')
		}
		if ok {
			if tok[0] == '-' {
				v = -v
			}
			return v, nil
		}
	}
	str := unsafe.String(&tok[0], len(tok))
	if v, err := strconv.ParseInt(str, 10, 64); err == nil {
		return v, nil
	}
	f, err := strconv.ParseFloat(str, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, &syntaxError{offset: s.pos - len(tok), msg: fmt.Sprintf("%q is not an integer", tok)}
	}
	return int64(f), nil
}

// boolOrInt parses true/false or a number (non-zero is true), as Python's
// truthiness of COCO's iscrowd field.
func (s *scanner) boolOrInt() (bool, error) {
	switch s.peek() {
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	case 'n':
		return false, s.literal("null")
	}
	v, err := s.number()
	if err != nil {
		return false, err
	}
	return v != 0, nil
}

func (s *scanner) literal(lit string) error {
	s.ws()
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return s.errorf("expected %s, found %s", lit, s.describe())
	}
	s.pos += len(lit)
	return nil
}

// skip consumes one value of any kind and checks that it is valid JSON
// (Python's NaN and Infinity literals are not accepted here: only the
// numeric fields that are read accept them, to report them by name).
func (s *scanner) skip() error {
	switch c := s.peek(); c {
	case '{':
		return s.object(func([]byte) error { return s.skip() })
	case '[':
		return s.array(func(int) error { return s.skip() })
	case '"':
		raw, escaped, err := s.rawString()
		if err == nil && escaped && !json.Valid(raw) {
			return &syntaxError{offset: s.pos - len(raw), msg: fmt.Sprintf("bad escape in string %.40s", raw)}
		}
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		tok, err := s.numberToken()
		if err == nil && !validNumber(tok) {
			return &syntaxError{offset: s.pos - len(tok), msg: fmt.Sprintf("bad number %q", tok)}
		}
		return err
	}
}

// validNumber reports whether tok follows JSON's number grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(tok []byte) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(tok) && tok[i] == '-' {
		i++
	}
	switch {
	case i < len(tok) && tok[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(tok) && tok[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(tok) && (tok[i] == 'e' || tok[i] == 'E') {
		i++
		if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(tok)
}

// bbox parses a 4-number array.
func (s *scanner) bbox() ([4]float64, error) {
	var b [4]float64
	n := 0
	err := s.array(func(i int) error {
		if i >= 4 {
			return errors.New("bbox has more than 4 numbers")
		}
		v, err := s.number()
		b[i] = v
		n = i + 1
		return err
	})
	if err == nil && n != 4 {
		err = fmt.Errorf("bbox has %d numbers, want 4", n)
	}
	return b, err
}
