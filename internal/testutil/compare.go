package testutil

import "math"

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
