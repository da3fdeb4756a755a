package detection

import (
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"resdet/box"
)

// maxDeltaDiff returns the largest absolute difference between two delta
// lists, and the index where it occurs; it fails if the lengths differ.
func maxDeltaDiff(t *testing.T, got []box.Delta, want []float32) (float64, int) {
	t.Helper()
	if 4*len(got) != len(want) {
		t.Fatalf("%d deltas, want %d", len(got), len(want)/4)
	}
	worst, at := 0.0, -1
	for i, d := range got {
		for j := 0; j < 4; j++ {
			if diff := math.Abs(float64(d[j]) - float64(want[4*i+j])); diff > worst || math.IsNaN(diff) {
				worst, at = diff, i
			}
		}
	}
	return worst, at
}

func TestAssignAnchorTargetsMatchesTorchvision(t *testing.T) {
	cases := lossFixtures.Load(t, "targets.json")
	names := []string{"rpn_random", "rpn_ties", "rpn_no_gt", "rpn_paper_border"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			c, ok := cases[name]
			if !ok {
				t.Fatalf("no case %s in targets.json", name)
			}
			var o TargetOptions
			if c.Bool(t, "paper") {
				o = PaperTargetOptions()
			}
			img := Size{W: int(c.Num(t, "img_w")), H: int(c.Num(t, "img_h"))}
			got, err := DefaultRPNConfig().AssignAnchorTargets(fixtureBoxes(t, c, "anchors"), fixtureBoxes(t, c, "gt"), img, o)
			if err != nil {
				t.Fatal(err)
			}
			labels, _ := c.F32(t, "labels")
			matched := c.Ints(t, "matched")
			var npos, nneg, nign int
			for i := range labels {
				if got.Labels[i] != int(labels[i]) {
					t.Errorf("anchor %d: label %d, torchvision %v", i, got.Labels[i], labels[i])
				}
				if int(got.Matches[i]) != matched[i] {
					t.Errorf("anchor %d: match %d, torchvision %d", i, got.Matches[i], matched[i])
				}
				switch got.Labels[i] {
				case LabelObject:
					npos++
				case LabelBackground:
					nneg++
				default:
					nign++
				}
			}
			if len(got.Labels) != len(labels) {
				t.Fatalf("%d labels, torchvision %d", len(got.Labels), len(labels))
			}
			t.Logf("%d positive, %d negative, %d ignored anchors", npos, nneg, nign)
			if name != "rpn_no_gt" && npos == 0 {
				t.Errorf("case has no positive anchor: the fixture tests nothing")
			}
			if name == "rpn_no_gt" {
				for i, d := range got.Deltas {
					if d != (box.Delta{}) {
						t.Fatalf("anchor %d: delta %v without ground truth, want zero", i, d)
					}
				}
				return
			}
			want, _ := c.F32(t, "deltas")
			worst, at := maxDeltaDiff(t, got.Deltas, want)
			t.Logf("deltas: max abs diff %g (bound 1e-5); labels and matches exact", worst)
			if worst > 1e-5 {
				t.Errorf("deltas differ by up to %g (anchor %d)", worst, at)
			}
		})
	}
}

func TestAssignProposalTargetsMatchesTorchvision(t *testing.T) {
	cases := lossFixtures.Load(t, "targets.json")
	for _, name := range []string{"roi_random", "roi_no_gt", "roi_paper_bg_lo"} {
		t.Run(name, func(t *testing.T) {
			c := cases[name]
			var o TargetOptions
			if c.Bool(t, "paper") {
				o = PaperTargetOptions()
			}
			got, err := DefaultRoIHeadsConfig().AssignProposalTargets(fixtureBoxes(t, c, "proposals"), fixtureBoxes(t, c, "gt"), c.Ints(t, "gt_labels"), o)
			if err != nil {
				t.Fatal(err)
			}
			rois := fixtureBoxes(t, c, "rois")
			labels := c.Ints(t, "labels")
			matched := c.Ints(t, "matched")
			if got.Len() != len(rois) || len(got.Labels) != len(labels) {
				t.Fatalf("%d RoIs and %d labels, torchvision %d and %d", got.Len(), len(got.Labels), len(rois), len(labels))
			}
			counts := map[int]int{}
			for i := range rois {
				if got.RoIs[i] != rois[i] {
					t.Errorf("RoI %d: %v, torchvision %v", i, got.RoIs[i], rois[i])
				}
				if got.Labels[i] != labels[i] {
					t.Errorf("RoI %d: label %d, torchvision %d", i, got.Labels[i], labels[i])
				}
				// torchvision returns the matches clamped to >= 0.
				if max(int(got.Matches[i]), 0) != matched[i] {
					t.Errorf("RoI %d: match %d, torchvision %d", i, got.Matches[i], matched[i])
				}
				counts[got.Labels[i]]++
			}
			t.Logf("labels: %v", counts)
			if name == "roi_no_gt" {
				if counts[LabelBackground] != len(rois) {
					t.Errorf("image without ground truth: labels %v, want all background", counts)
				}
				return
			}
			if name == "roi_paper_bg_lo" && counts[LabelIgnore] == 0 {
				t.Errorf("no RoI ignored below 0.1: the case tests nothing")
			}
			want, _ := c.F32(t, "deltas")
			worst, at := maxDeltaDiff(t, got.Deltas, want)
			t.Logf("deltas: max abs diff %g (bound 1e-4); RoIs, labels and matches exact", worst)
			if worst > 1e-4 {
				t.Errorf("deltas differ by up to %g (RoI %d)", worst, at)
			}
		})
	}
}

func TestAssignAnchorTargetsCrossBoundary(t *testing.T) {
	img := Size{W: 100, H: 80}
	anchors := []box.Box{
		{X1: 0, Y1: 0, X2: 100, Y2: 80},     // touches every border: inside
		{X1: -1, Y1: 10, X2: 30, Y2: 40},    // crosses the left border
		{X1: 70, Y1: 50, X2: 100.5, Y2: 80}, // crosses the right border
		{X1: 10, Y1: 10, X2: 40, Y2: 40},    // inside, overlaps the gt
		{X1: 60, Y1: 0, X2: 90, Y2: 30},     // inside, far from the gt
	}
	gt := []box.Box{{X1: -1, Y1: 10, X2: 30, Y2: 40}}
	tests := []struct {
		name    string
		o       TargetOptions
		labels  []int
		matches []box.Match
	}{
		{
			name: "torchvision_keeps_them",
			// anchor 1 equals the gt (IoU 1); anchor 3 has IoU 600/1230
			// (ignored), anchor 0 900/8030 (background).
			labels:  []int{LabelBackground, LabelObject, LabelBackground, LabelIgnore, LabelBackground},
			matches: []box.Match{box.BelowLowThreshold, 0, box.BelowLowThreshold, box.BetweenThresholds, box.BelowLowThreshold},
		},
		{
			// anchor 3 is the gt's best inside anchor: a low-quality match.
			name:    "paper_ignores_them",
			o:       TargetOptions{IgnoreCrossBoundaryAnchors: true},
			labels:  []int{LabelBackground, LabelIgnore, LabelIgnore, LabelObject, LabelBackground},
			matches: []box.Match{box.BelowLowThreshold, box.BetweenThresholds, box.BetweenThresholds, 0, box.BelowLowThreshold},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DefaultRPNConfig().AssignAnchorTargets(anchors, gt, img, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Labels, tc.labels) || !slices.Equal(got.Matches, tc.matches) {
				t.Errorf("labels %v matches %v, want %v %v", got.Labels, got.Matches, tc.labels, tc.matches)
			}
		})
	}
	t.Run("all_outside", func(t *testing.T) {
		got, err := DefaultRPNConfig().AssignAnchorTargets(anchors[1:3], gt, img, TargetOptions{IgnoreCrossBoundaryAnchors: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Labels, []int{LabelIgnore, LabelIgnore}) {
			t.Errorf("labels %v, want all ignored", got.Labels)
		}
	})
}

func TestTargetsRejectBadInput(t *testing.T) {
	anchors := []box.Box{{X1: 0, Y1: 0, X2: 10, Y2: 10}}
	good := []box.Box{{X1: 1, Y1: 1, X2: 5, Y2: 5}}
	nan := float32(math.NaN())
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"rpn_no_anchors", func() error {
			_, err := DefaultRPNConfig().AssignAnchorTargets(nil, good, Size{W: 10, H: 10}, TargetOptions{})
			return err
		}, "no anchors"},
		{"rpn_nan_gt", func() error {
			_, err := DefaultRPNConfig().AssignAnchorTargets(anchors, []box.Box{good[0], {X1: nan, Y1: 0, X2: 3, Y2: 3}}, Size{W: 10, H: 10}, TargetOptions{})
			return err
		}, "ground-truth box 1"},
		{"rpn_empty_gt", func() error {
			_, err := DefaultRPNConfig().AssignAnchorTargets(anchors, []box.Box{{X1: 3, Y1: 3, X2: 3, Y2: 8}}, Size{W: 10, H: 10}, TargetOptions{})
			return err
		}, "ground-truth box 0"},
		{"roi_label_zero", func() error {
			_, err := DefaultRoIHeadsConfig().AssignProposalTargets(anchors, good, []int{0}, TargetOptions{})
			return err
		}, "label 0"},
		{"roi_label_count", func() error {
			_, err := DefaultRoIHeadsConfig().AssignProposalTargets(anchors, good, []int{1, 2}, TargetOptions{})
			return err
		}, "2 labels"},
		{"roi_inf_gt", func() error {
			_, err := DefaultRoIHeadsConfig().AssignProposalTargets(anchors, []box.Box{{X1: 0, Y1: 0, X2: float32(math.Inf(1)), Y2: 3}}, []int{1}, TargetOptions{})
			return err
		}, "not finite"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// checkTargetSample checks the invariants of one sampled set: increasing, unique,
// in range, with the given label predicate.
func checkTargetSample(t *testing.T, what string, idx []int, labels []int, ok func(int) bool) {
	t.Helper()
	for k, i := range idx {
		if k > 0 && idx[k-1] >= i {
			t.Errorf("%s: indices not strictly increasing at %d: %v", what, k, idx)
			return
		}
		if !ok(labels[i]) {
			t.Errorf("%s: index %d has label %d", what, i, labels[i])
		}
	}
}

func TestSampleAnchorsProperties(t *testing.T) {
	mk := func(npos, nneg, nign int, r *rand.Rand) []int {
		l := make([]int, 0, npos+nneg+nign)
		for range npos {
			l = append(l, LabelObject)
		}
		for range nneg {
			l = append(l, LabelBackground)
		}
		for range nign {
			l = append(l, LabelIgnore)
		}
		r.Shuffle(len(l), func(i, j int) { l[i], l[j] = l[j], l[i] })
		return l
	}
	tests := []struct {
		name               string
		npos, nneg, nign   int
		wantPos, wantTotal int
	}{
		{name: "many_positives", npos: 400, nneg: 5000, nign: 300, wantPos: 128, wantTotal: 256},
		{name: "few_positives", npos: 10, nneg: 5000, nign: 30, wantPos: 10, wantTotal: 256},
		{name: "no_positives", npos: 0, nneg: 1000, wantPos: 0, wantTotal: 256},
		{name: "few_of_both", npos: 5, nneg: 20, nign: 1000, wantPos: 5, wantTotal: 25},
		{name: "all_ignored", nign: 50},
	}
	cfg := DefaultRPNConfig()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			labels := mk(tc.npos, tc.nneg, tc.nign, rand.New(rand.NewSource(1)))
			pos, neg := cfg.SampleAnchors(labels, rand.New(rand.NewSource(2)))
			if len(pos) != tc.wantPos || len(pos)+len(neg) != tc.wantTotal {
				t.Errorf("%d positives and %d in all, want %d and %d", len(pos), len(pos)+len(neg), tc.wantPos, tc.wantTotal)
			}
			checkTargetSample(t, "pos", pos, labels, func(l int) bool { return l == LabelObject })
			checkTargetSample(t, "neg", neg, labels, func(l int) bool { return l == LabelBackground })
			pos2, neg2 := cfg.SampleAnchors(labels, rand.New(rand.NewSource(2)))
			if !slices.Equal(pos, pos2) || !slices.Equal(neg, neg2) {
				t.Errorf("same seed, different samples")
			}
		})
	}
	t.Run("uniform", func(t *testing.T) {
		// 256 negatives drawn from 1024: each is drawn with probability 1/4.
		labels := make([]int, 1024)
		hits := make([]int, len(labels))
		r := rand.New(rand.NewSource(3))
		const rounds = 400
		for range rounds {
			_, neg := cfg.SampleAnchors(labels, r)
			for _, i := range neg {
				hits[i]++
			}
		}
		// Binomial(400, 1/4): mean 100, sd ~8.7; 6 sd bounds.
		for i, h := range hits {
			if h < 48 || h > 152 {
				t.Errorf("anchor %d drawn %d times in %d rounds, want ~100", i, h, rounds)
			}
		}
	})
}

func TestSampleProposalsProperties(t *testing.T) {
	cases := lossFixtures.Load(t, "targets.json")
	cfg := DefaultRoIHeadsConfig()
	cfg.BatchSizePerImage = 64 // the paper's 128 would take every background RoI of the fixture
	for _, name := range []string{"roi_random", "roi_no_gt", "roi_paper_bg_lo"} {
		t.Run(name, func(t *testing.T) {
			c := cases[name]
			var o TargetOptions
			if c.Bool(t, "paper") {
				o = PaperTargetOptions()
			}
			all, err := cfg.AssignProposalTargets(fixtureBoxes(t, c, "proposals"), fixtureBoxes(t, c, "gt"), c.Ints(t, "gt_labels"), o)
			if err != nil {
				t.Fatal(err)
			}
			var nfg, nbg int
			for _, l := range all.Labels {
				switch {
				case l >= 1:
					nfg++
				case l == LabelBackground:
					nbg++
				}
			}
			s := cfg.SampleProposals(all, rand.New(rand.NewSource(5)))
			wantFG := min(nfg, 16)
			wantTotal := min(64, wantFG+nbg)
			var gotFG int
			for k, l := range s.Labels {
				if l == LabelIgnore {
					t.Fatalf("sampled RoI %d is ignored", k)
				}
				if l >= 1 {
					gotFG++
				}
			}
			if gotFG != wantFG || s.Len() != wantTotal {
				t.Errorf("%d foreground of %d sampled, want %d of %d (available %d fg, %d bg)", gotFG, s.Len(), wantFG, wantTotal, nfg, nbg)
			}
			// Every sampled RoI carries its own targets, in index order.
			last := -1
			for k := range s.RoIs {
				i := slices.IndexFunc(all.RoIs, func(b box.Box) bool { return b == s.RoIs[k] })
				if i <= last {
					t.Fatalf("sampled RoI %d not found after index %d", k, last)
				}
				if all.Labels[i] != s.Labels[k] || all.Deltas[i] != s.Deltas[k] || all.Matches[i] != s.Matches[k] {
					t.Errorf("sampled RoI %d: targets differ from RoI %d's", k, i)
				}
				last = i
			}
		})
	}
}

func TestPadSamples(t *testing.T) {
	b := func(x float32) box.Box { return box.Box{X1: x, Y1: x, X2: x + 10, Y2: x + 10} }
	s := ProposalTargets{
		RoIs: []box.Box{b(1), b(2), b(3)}, Labels: []int{2, 0, 1},
		Matches: []box.Match{0, box.BelowLowThreshold, 1}, Deltas: []box.Delta{{1}, {2}, {3}},
	}
	tests := []struct {
		name       string
		samples    []ProposalTargets
		rows       int
		wantLabels [][]int
		wantRoIs   [][]box.Box
		wantErr    string
	}{
		{name: "exact", samples: []ProposalTargets{s}, rows: 3,
			wantLabels: [][]int{{2, 0, 1}}, wantRoIs: [][]box.Box{{b(1), b(2), b(3)}}},
		{name: "padded cyclically", samples: []ProposalTargets{s, s.Subset([]int{1})}, rows: 5,
			wantLabels: [][]int{{2, 0, 1, LabelIgnore, LabelIgnore}, {0, LabelIgnore, LabelIgnore, LabelIgnore, LabelIgnore}},
			wantRoIs:   [][]box.Box{{b(1), b(2), b(3), b(1), b(2)}, {b(2), b(2), b(2), b(2), b(2)}}},
		{name: "too many", samples: []ProposalTargets{s}, rows: 2, wantErr: "image 0 has 3 sampled RoIs, more than the 2 rows"},
		{name: "none", samples: []ProposalTargets{s, {}}, rows: 4, wantErr: "image 1 has no RoI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PadSamples(tt.samples, tt.rows)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range got {
				if !slices.Equal(p.Labels, tt.wantLabels[i]) || !slices.Equal(p.RoIs, tt.wantRoIs[i]) {
					t.Errorf("image %d: labels %v RoIs %v, want %v %v", i, p.Labels, p.RoIs, tt.wantLabels[i], tt.wantRoIs[i])
				}
				if len(p.Matches) != tt.rows || len(p.Deltas) != tt.rows {
					t.Errorf("image %d: %d matches and %d deltas, want %d", i, len(p.Matches), len(p.Deltas), tt.rows)
				}
				rows := RoIRows(nil, tt.samples[i].RoIs, i, tt.rows)
				for j, r := range p.RoIs {
					if want := []float32{float32(i), r.X1, r.Y1, r.X2, r.Y2}; !slices.Equal(rows[5*j:5*j+5], want) {
						t.Errorf("image %d row %d: RoIRows %v, padded RoI %v", i, j, rows[5*j:5*j+5], want)
					}
				}
			}
		})
	}
	if rows := RoIRows(nil, nil, 2, 2); !slices.Equal(rows, []float32{2, 0, 0, 0, 0, 2, 0, 0, 0, 0}) {
		t.Errorf("RoIRows without boxes: %v, want zero boxes", rows)
	}
}
