package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// Size is a WxH flag value in pixels ("320x240"). It implements pflag.Value,
// so a malformed value is reported by the flag parser with the flag's name.
type Size struct{ W, H int }

// String formats the size as WxH.
func (s *Size) String() string { return fmt.Sprintf("%dx%d", s.W, s.H) }

// Set parses WxH with positive integers W and H (an "X" works too).
func (s *Size) Set(v string) error {
	w, h, ok := strings.Cut(strings.ToLower(v), "x")
	if !ok {
		return fmt.Errorf("want WxH, e.g. 320x240")
	}
	wi, err1 := strconv.Atoi(strings.TrimSpace(w))
	hi, err2 := strconv.Atoi(strings.TrimSpace(h))
	if err1 != nil || err2 != nil || wi <= 0 || hi <= 0 {
		return fmt.Errorf("want WxH with positive integers, e.g. 320x240")
	}
	s.W, s.H = wi, hi
	return nil
}

// Type names the value in help text.
func (s *Size) Type() string { return "WxH" }
