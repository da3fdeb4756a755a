package box

import (
	"math/rand"
	"reflect"
	"testing"
)

func TestSampler(t *testing.T) {
	mk := func(npos, nneg, nign int) []int {
		var l []int
		for i := 0; i < npos; i++ {
			l = append(l, 1+i%3) // any label >= 1 is positive
		}
		for i := 0; i < nneg; i++ {
			l = append(l, 0)
		}
		for i := 0; i < nign; i++ {
			l = append(l, -1)
		}
		rand.New(rand.NewSource(9)).Shuffle(len(l), func(i, j int) { l[i], l[j] = l[j], l[i] })
		return l
	}
	tests := []struct {
		name             string
		s                Sampler
		npos, nneg, nign int
		wantPos, wantNeg int
	}{
		{name: "RPN plenty of both", s: Sampler{256, 0.5}, npos: 500, nneg: 5000, nign: 100, wantPos: 128, wantNeg: 128},
		{name: "RPN few positives", s: Sampler{256, 0.5}, npos: 10, nneg: 5000, wantPos: 10, wantNeg: 246},
		{name: "RoI heads 25%", s: Sampler{512, 0.25}, npos: 300, nneg: 2000, wantPos: 128, wantNeg: 384},
		{name: "too few of both", s: Sampler{256, 0.5}, npos: 3, nneg: 20, nign: 50, wantPos: 3, wantNeg: 20},
		{name: "no positives", s: Sampler{128, 0.25}, nneg: 1000, wantPos: 0, wantNeg: 128},
		{name: "nothing", s: Sampler{128, 0.25}, nign: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			labels := mk(tt.npos, tt.nneg, tt.nign)
			pos, neg := tt.s.Sample(labels, rand.New(rand.NewSource(1)))
			if len(pos) != tt.wantPos || len(neg) != tt.wantNeg {
				t.Fatalf("got %d positives, %d negatives; want %d, %d", len(pos), len(neg), tt.wantPos, tt.wantNeg)
			}
			seen := map[int]bool{}
			for _, i := range pos {
				if labels[i] < 1 || seen[i] {
					t.Fatalf("positive %d has label %d (or repeated)", i, labels[i])
				}
				seen[i] = true
			}
			for _, i := range neg {
				if labels[i] != 0 || seen[i] {
					t.Fatalf("negative %d has label %d (or repeated)", i, labels[i])
				}
				seen[i] = true
			}
			// Same seed, same sample; another seed, another one wherever
			// there is a choice (fewer drawn than available: e.g. 128 of
			// 500, so equal draws are practically impossible).
			pos2, neg2 := tt.s.Sample(labels, rand.New(rand.NewSource(1)))
			if !reflect.DeepEqual(pos, pos2) || !reflect.DeepEqual(neg, neg2) {
				t.Error("Sample is not deterministic for a given seed")
			}
			pos3, neg3 := tt.s.Sample(labels, rand.New(rand.NewSource(2)))
			if len(pos3) != len(pos) || len(neg3) != len(neg) {
				t.Fatalf("seed 2: %d positives, %d negatives; seed 1: %d, %d", len(pos3), len(neg3), len(pos), len(neg))
			}
			if tt.wantPos < tt.npos && sameSet(pos, pos3) {
				t.Errorf("seeds 1 and 2 draw the same %d of %d positives", tt.wantPos, tt.npos)
			}
			if tt.wantNeg < tt.nneg && sameSet(neg, neg3) {
				t.Errorf("seeds 1 and 2 draw the same %d of %d negatives", tt.wantNeg, tt.nneg)
			}
		})
	}
}

// Every positive is drawn with the same probability: over many draws the
// per-index frequencies stay near num_pos/len(positives).
func TestSamplerUniform(t *testing.T) {
	labels := make([]int, 40)
	for i := range labels {
		labels[i] = i % 2 // 20 positives, 20 negatives
	}
	s := Sampler{BatchSizePerImage: 10, PositiveFraction: 0.5}
	r := rand.New(rand.NewSource(2))
	counts := make([]int, len(labels))
	const trials = 20000
	for k := 0; k < trials; k++ {
		pos, neg := s.Sample(labels, r)
		for _, i := range append(pos, neg...) {
			counts[i]++
		}
	}
	for i, c := range counts {
		// Expected 5/20 = 0.25 per draw; binomial sd ~ 0.003.
		if f := float64(c) / trials; f < 0.235 || f > 0.265 {
			t.Errorf("index %d drawn with frequency %.3f, want 0.25", i, f)
		}
	}
}

// sameSet reports whether a and b hold the same indices, in any order.
func sameSet(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	in := map[int]bool{}
	for _, i := range a {
		in[i] = true
	}
	for _, i := range b {
		if !in[i] {
			return false
		}
	}
	return true
}
