package box

import (
	"errors"
	"reflect"
	"testing"
)

func TestMatcher(t *testing.T) {
	q := [][]float32{
		// predictions: 0     1    2    3    4
		{0.9, 0.5, 0.1, 0.2, 0.0}, // gt 0
		{0.8, 0.6, 0.2, 0.1, 0.0}, // gt 1: best 0.8 at pred 0, which gt 0 takes
	}
	tests := []struct {
		name string
		m    Matcher
		want []Match
	}{
		{
			name: "thresholds 0.7/0.3",
			m:    Matcher{High: 0.7, Low: 0.3},
			want: []Match{0, BetweenThresholds, BelowLowThreshold, BelowLowThreshold, BelowLowThreshold},
		},
		{
			name: "equal thresholds: no between",
			m:    Matcher{High: 0.5, Low: 0.5},
			want: []Match{0, 1, BelowLowThreshold, BelowLowThreshold, BelowLowThreshold},
		},
		{
			// gt 1's best prediction is 0 (0.8), already matched to gt 0
			// (0.9): nothing changes; gt 0's best is 0 too.
			name: "low quality matches, no change",
			m:    Matcher{High: 0.95, Low: 0.3, AllowLowQualityMatches: true},
			want: []Match{0, BetweenThresholds, BelowLowThreshold, BelowLowThreshold, BelowLowThreshold},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.m.Match(q)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("low quality match below low threshold", func(t *testing.T) {
		q := [][]float32{{0.9, 0.1, 0.0}, {0.0, 0.2, 0.2}}
		got, err := Matcher{High: 0.7, Low: 0.3, AllowLowQualityMatches: true}.Match(q)
		if err != nil {
			t.Fatal(err)
		}
		// gt 1's best quality 0.2 is reached at predictions 1 and 2: both match it.
		if want := []Match{0, 1, 1}; !reflect.DeepEqual(got, want) {
			t.Errorf("Match = %v, want %v", got, want)
		}
	})
}

func TestMatcherErrors(t *testing.T) {
	m := Matcher{High: 0.7, Low: 0.3}
	if _, err := m.Match(nil); !errors.Is(err, ErrNoGroundTruth) {
		t.Errorf("no gt: err = %v, want ErrNoGroundTruth", err)
	}
	if _, err := m.Match([][]float32{{}, {}}); !errors.Is(err, ErrNoPredictions) {
		t.Errorf("no predictions: err = %v, want ErrNoPredictions", err)
	}
	if _, err := m.Match([][]float32{{1, 2}, {1}}); err == nil {
		t.Error("ragged matrix: no error")
	}
}

func TestMatcherParity(t *testing.T) {
	for name, c := range fixtures.Load(t, "matcher.json") {
		t.Run(name, func(t *testing.T) {
			qv, shape := c.F32(t, "quality")
			q := make([][]float32, shape[0])
			for g := range q {
				q[g] = qv[g*shape[1] : (g+1)*shape[1]]
			}
			var hi, lo float32
			var allow bool
			c.Scalar(t, "high", &hi)
			c.Scalar(t, "low", &lo)
			c.Scalar(t, "allow_low_quality", &allow)
			got, err := Matcher{High: hi, Low: lo, AllowLowQualityMatches: allow}.Match(q)
			if err != nil {
				t.Fatal(err)
			}
			want := c.Ints(t, "matches")
			counts := map[string]int{}
			for p := range want {
				if int(got[p]) != want[p] {
					t.Fatalf("prediction %d: Match %d, torchvision %d", p, got[p], want[p])
				}
				switch {
				case want[p] >= 0:
					counts["matched"]++
				default:
					counts[map[int]string{-1: "below", -2: "between"}[want[p]]]++
				}
			}
			t.Logf("%v", counts)
			if counts["matched"] == 0 || counts["below"] == 0 {
				t.Errorf("fixture does not exercise the matcher: %v", counts)
			}
		})
	}
}

func TestIoUMatrixParity(t *testing.T) {
	c := fixtures.Load(t, "matcher.json")["rpn_0.7_0.3_lowq"]
	gt, anchors := fixtureBoxes(t, c, "gt"), fixtureBoxes(t, c, "anchors")
	want, _ := c.F32(t, "quality")
	for g, row := range IoUMatrix(gt, anchors) {
		for p, v := range row {
			if w := want[g*len(anchors)+p]; v != w {
				t.Fatalf("IoU(gt %d, anchor %d) = %v, torchvision box_iou %v", g, p, v, w)
			}
		}
	}
}
