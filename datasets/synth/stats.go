package synth

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// sizeEdges are the upper edges (exclusive, px) of the object-size
// histogram in Stats, by sqrt(box area); the last bucket is open.
var sizeEdges = [...]float64{16, 32, 64, 128, 256}

// Stats summarises a dataset.
type Stats struct {
	Classes []string
	Splits  []SplitStats
	// Over the union of the splits' images (each image counted once):
	Images    int
	Objects   int
	PerClass  []int // objects per label
	Difficult int
	Truncated int
	// Sizes[k] counts objects whose sqrt(box area) in px falls in bucket k:
	// [0,16), [16,32), [32,64), [64,128), [128,256), [256,inf).
	Sizes [len(sizeEdges) + 1]int
	// MinSide and MaxSide are the smallest and largest longer box side (px).
	MinSide, MaxSide float32
}

// SplitStats counts one split.
type SplitStats struct {
	Name            string
	Images, Objects int
}

// ComputeStats summarises named sets that share one class list. An image
// (by Record.Name) in several sets is counted once in the totals.
func ComputeStats(splits []Split) Stats {
	var s Stats
	if len(splits) > 0 {
		s.Classes = splits[0].Set.Classes
	}
	s.PerClass = make([]int, len(s.Classes))
	s.MinSide = float32(math.Inf(1))
	seen := make(map[string]bool)
	for _, sp := range splits {
		s.Splits = append(s.Splits, SplitStats{Name: sp.Name, Images: len(sp.Set.Records), Objects: sp.Set.NumObjects()})
		for _, r := range sp.Set.Records {
			if seen[r.Name] {
				continue
			}
			seen[r.Name] = true
			s.Images++
			for _, o := range r.Objects {
				s.Objects++
				if o.Label >= 0 && o.Label < len(s.PerClass) {
					s.PerClass[o.Label]++
				}
				if o.Difficult {
					s.Difficult++
				}
				if o.Truncated {
					s.Truncated++
				}
				side := math.Sqrt(float64(o.Box.Area()))
				k := 0
				for k < len(sizeEdges) && side >= sizeEdges[k] {
					k++
				}
				s.Sizes[k]++
				long := max(o.Box.Width(), o.Box.Height())
				s.MinSide, s.MaxSide = min(s.MinSide, long), max(s.MaxSide, long)
			}
		}
	}
	if s.Objects == 0 {
		s.MinSide = 0
	}
	return s
}

// WriteTo prints the statistics as aligned text.
func (s Stats) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s %7s %8s\n", "split", "images", "objects")
	for _, sp := range s.Splits {
		fmt.Fprintf(&b, "%-10s %7d %8d\n", sp.Name, sp.Images, sp.Objects)
	}
	fmt.Fprintf(&b, "%-10s %7d %8d\n", "all", s.Images, s.Objects)
	fmt.Fprintf(&b, "\n%-10s %8s\n", "class", "objects")
	for l, name := range s.Classes {
		fmt.Fprintf(&b, "%-10s %8d\n", name, s.PerClass[l])
	}
	fmt.Fprintf(&b, "\ndifficult %d, truncated %d; longer box side %g..%g px\n", s.Difficult, s.Truncated, s.MinSide, s.MaxSide)
	fmt.Fprintf(&b, "\n%-14s %8s\n", "sqrt(area) px", "objects")
	lo := 0.0
	for k, n := range s.Sizes {
		label := fmt.Sprintf("[%g, %g)", lo, math.Inf(1))
		if k < len(sizeEdges) {
			label = fmt.Sprintf("[%g, %g)", lo, sizeEdges[k])
			lo = sizeEdges[k]
		}
		fmt.Fprintf(&b, "%-14s %8d\n", label, n)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
