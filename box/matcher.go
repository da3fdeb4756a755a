package box

import (
	"errors"
	"fmt"
)

// Match is the result of matching one prediction (anchor or proposal): the
// index of its ground-truth box (>= 0), or one of the negative sentinels
// BelowLowThreshold and BetweenThresholds.
type Match int

// Sentinels of Match, with torchvision's values (Matcher.BELOW_LOW_THRESHOLD,
// Matcher.BETWEEN_THRESHOLDS).
const (
	// BelowLowThreshold marks a prediction whose best IoU is below the low
	// threshold: background.
	BelowLowThreshold Match = -1
	// BetweenThresholds marks a prediction whose best IoU lies in
	// [low, high): ignored in training.
	BetweenThresholds Match = -2
)

// ErrNoGroundTruth and ErrNoPredictions are returned by Matcher.Match for an
// empty quality matrix. Callers usually treat an image without ground truth
// as all background instead of calling Match.
var (
	ErrNoGroundTruth = errors.New("box: matcher: no ground-truth boxes")
	ErrNoPredictions = errors.New("box: matcher: no predicted boxes")
)

// Matcher assigns to each prediction the ground-truth box it overlaps most,
// as torchvision's det_utils.Matcher: a best quality >= High gives that
// index, a best quality in [Low, High) gives BetweenThresholds and one below
// Low gives BelowLowThreshold.
type Matcher struct {
	High, Low float32
	// AllowLowQualityMatches additionally gives every ground-truth box the
	// predictions with which it has its highest quality (all of them on
	// ties), even when below Low; each such prediction gets its own best
	// ground truth (the first one on ties), as torchvision does.
	AllowLowQualityMatches bool
}

// Match returns, for each of the N predictions, its Match. quality is
// [M][N], quality[g][p] being the IoU (or other quality) of ground-truth box
// g and prediction p; every row has length N. Ties in the best ground truth
// of a prediction go to the lowest index, as torch.max on CPU. It returns
// ErrNoGroundTruth when M == 0 and ErrNoPredictions when N == 0, and an error
// naming the row if the rows have different lengths.
func (m Matcher) Match(quality [][]float32) ([]Match, error) {
	if len(quality) == 0 {
		return nil, ErrNoGroundTruth
	}
	n := len(quality[0])
	for g, row := range quality {
		if len(row) != n {
			return nil, fmt.Errorf("box: matcher: quality row %d has %d entries, row 0 has %d", g, len(row), n)
		}
	}
	if n == 0 {
		return nil, ErrNoPredictions
	}
	best := make([]Match, n)
	bestVal := make([]float32, n)
	copy(bestVal, quality[0])
	for g := 1; g < len(quality); g++ {
		for p, v := range quality[g] {
			// torch.max propagates NaN: a NaN value wins and stays.
			if v > bestVal[p] || (v != v && bestVal[p] == bestVal[p]) {
				bestVal[p], best[p] = v, Match(g)
			}
		}
	}
	out := make([]Match, n)
	for p, v := range bestVal {
		switch {
		case v < m.Low:
			out[p] = BelowLowThreshold
		case v < m.High: // v >= Low
			out[p] = BetweenThresholds
		default:
			out[p] = best[p] // also NaN, as torchvision's comparisons leave it
		}
	}
	if m.AllowLowQualityMatches {
		for _, row := range quality {
			hi := row[0]
			for _, v := range row[1:] {
				if v > hi || (v != v && hi == hi) {
					hi = v
				}
			}
			for p, v := range row {
				if v == hi {
					out[p] = best[p]
				}
			}
		}
	}
	return out, nil
}

// IoUMatrix returns the [len(a)][len(b)] matrix of a[i].IoU(b[j]), the
// quality matrix of Matcher.Match (torchvision's box_iou, except that an
// empty union gives 0 instead of NaN).
func IoUMatrix(a, b []Box) [][]float32 {
	out := make([][]float32, len(a))
	flat := make([]float32, len(a)*len(b))
	for i, ai := range a {
		row := flat[i*len(b) : (i+1)*len(b)]
		for j, bj := range b {
			row[j] = ai.IoU(bj)
		}
		out[i] = row
	}
	return out
}
