package testutil

import (
	"math"
	"testing"
)

// MaxRelErr is max|got-want| / max|want| over the elements: the largest
// error relative to the tensor's largest magnitude, so that near-zero
// elements do not dominate. It is +Inf when the lengths differ, NaN when a
// value is NaN, and max|got-want| when want is all zeros.
func MaxRelErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d, m float64
	for i := range want {
		e := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(e) {
			return math.NaN()
		}
		d = math.Max(d, e)
		m = math.Max(m, math.Abs(float64(want[i])))
	}
	if m == 0 {
		return d
	}
	return d / m
}

// ExpectClose reports the elements of got and want differing by more than
// atol + rtol*|want| (or NaN), the first five one by one, and returns the
// largest absolute difference. Lengths that differ are fatal.
func ExpectClose(t testing.TB, what string, got, want []float32, rtol, atol float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, bad := 0.0, 0
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > atol+rtol*math.Abs(float64(want[i])) || math.IsNaN(d) {
			if bad < 5 {
				t.Errorf("%s[%d] = %v, want %v", what, i, got[i], want[i])
			}
			bad++
		}
		worst = max(worst, d)
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values differ (max abs diff %g)", what, bad, len(got), worst)
	}
	return worst
}

// ExpectScalarRel fails unless the scalar got is within the relative
// difference rtol of torch's value want (|got-want|/|want|; NaN fails), and
// logs the figures either way.
func ExpectScalarRel(t testing.TB, what string, got, want, rtol float64) {
	t.Helper()
	if rel := math.Abs(got-want) / math.Abs(want); !(rel <= rtol) {
		t.Errorf("%s = %.9g, torch %.9g (relative diff %.3g, bound %.3g)", what, got, want, rel, rtol)
	} else {
		t.Logf("%s = %.9g, torch %.9g (relative diff %.3g, bound %.3g)", what, got, want, rel, rtol)
	}
}
