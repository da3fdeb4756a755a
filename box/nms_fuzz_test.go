package box

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
)

// FuzzNMS decodes boxes and scores from bytes (5 float32 per box, possibly
// invalid or non-finite) and checks NMS's invariants: kept indices are
// distinct and in range, sorted by score, no two kept boxes overlap above the
// threshold, and BatchedNMS with the single category 0 agrees with NMS.
func FuzzNMS(f *testing.F) {
	f.Add([]byte{}, float32(0.5))
	seed := make([]byte, 0, 60)
	for _, v := range []float32{0, 0, 10, 10, 0.9, 1, 1, 11, 11, 0.8, 5, 5, 5, 5, 0.5} {
		seed = binary.LittleEndian.AppendUint32(seed, math.Float32bits(v))
	}
	f.Add(seed, float32(0.3))
	f.Fuzz(func(t *testing.T, data []byte, thresh float32) {
		n := len(data) / 20
		boxes := make([]Box, n)
		scores := make([]float32, n)
		at := func(i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])) }
		for i := range boxes {
			boxes[i] = Box{at(5 * i), at(5*i + 1), at(5*i + 2), at(5*i + 3)}
			scores[i] = at(5*i + 4)
		}
		keep := NMS(boxes, scores, thresh)
		seen := map[int]bool{}
		for k, i := range keep {
			if i < 0 || i >= n || seen[i] {
				t.Fatalf("bad or repeated index %d in %v", i, keep)
			}
			seen[i] = true
			if k > 0 && ScoreAbove(scores[i], scores[keep[k-1]]) {
				t.Fatalf("keep not sorted by score: %v", keep)
			}
		}
		// Category 0 gets offset 0*(max+1) = 0 unless a coordinate is not
		// finite (then torchvision's offsets are NaN too).
		if got := BatchedNMS(boxes, scores, make([]int, n), thresh); !slices.Equal(got, keep) && allFinite(boxes, scores) {
			t.Fatalf("BatchedNMS with one class = %v, NMS = %v", got, keep)
		}
	})
}

func allFinite(boxes []Box, scores []float32) bool {
	for i, b := range boxes {
		for _, v := range [5]float32{b.X1, b.Y1, b.X2, b.Y2, scores[i]} {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return false
			}
		}
	}
	return true
}
