package box

import (
	"math/rand"
	"reflect"
	"slices"
	"testing"
)

// toBoxes converts a fixture [N, 4] XYXY array.
func toBoxes(t *testing.T, v []float32, shape []int) []Box {
	t.Helper()
	if len(shape) != 2 || shape[1] != 4 {
		if len(v) == 0 {
			return nil
		}
		t.Fatalf("boxes have shape %v, want [N, 4]", shape)
	}
	out := make([]Box, shape[0])
	for i := range out {
		out[i] = Box{v[4*i], v[4*i+1], v[4*i+2], v[4*i+3]}
	}
	return out
}

func TestNMS(t *testing.T) {
	tests := []struct {
		name   string
		boxes  []Box
		scores []float32
		thresh float32
		want   []int
	}{
		{name: "empty", want: nil},
		{
			name:   "overlap above threshold suppressed",
			boxes:  []Box{{0, 0, 10, 10}, {1, 0, 11, 10}, {20, 20, 30, 30}},
			scores: []float32{0.9, 0.8, 0.7},
			thresh: 0.5,
			want:   []int{0, 2},
		},
		{
			// IoU of {0,0,10,10} and {5,0,15,10} is exactly 50/150 = 1/3.
			name:   "IoU equal to threshold kept",
			boxes:  []Box{{0, 0, 10, 10}, {5, 0, 15, 10}},
			scores: []float32{0.5, 0.9},
			thresh: float32(50.0) / 150,
			want:   []int{1, 0},
		},
		{
			name:   "suppressed box does not suppress",
			boxes:  []Box{{0, 0, 10, 10}, {4, 0, 14, 10}, {8, 0, 18, 10}},
			scores: []float32{0.9, 0.8, 0.7},
			thresh: 0.3,
			want:   []int{0, 2},
		},
		{
			name:   "ties keep input order",
			boxes:  []Box{{0, 0, 1, 1}, {5, 5, 6, 6}, {10, 10, 11, 11}},
			scores: []float32{0.5, 0.5, 0.5},
			thresh: 0.5,
			want:   []int{0, 1, 2},
		},
		{
			name:   "zero-area duplicates both kept (0/0 is NaN)",
			boxes:  []Box{{3, 3, 3, 3}, {3, 3, 3, 3}},
			scores: []float32{0.2, 0.1},
			thresh: 0.5,
			want:   []int{0, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NMS(tt.boxes, tt.scores, tt.thresh); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("NMS = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNMSProperties(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for trial := 0; trial < 50; trial++ {
		n := 1 + r.Intn(80)
		boxes := make([]Box, n)
		scores := make([]float32, n)
		for i := range boxes {
			x, y := r.Float32()*60, r.Float32()*60
			boxes[i] = Box{x, y, x + 1 + r.Float32()*30, y + 1 + r.Float32()*30}
			scores[i] = r.Float32()
		}
		thresh := r.Float32()
		keep := NMS(boxes, scores, thresh)
		kept := map[int]bool{}
		for k, i := range keep {
			kept[i] = true
			if k > 0 && scores[keep[k-1]] < scores[i] {
				t.Fatalf("trial %d: keep not sorted by score: %v", trial, keep)
			}
			for _, j := range keep[:k] {
				if iou := boxes[i].IoU(boxes[j]); iou > thresh {
					t.Fatalf("trial %d: kept boxes %d, %d have IoU %v > %v", trial, i, j, iou, thresh)
				}
			}
		}
		// Every removed box overlaps a kept box with a higher (or equal, earlier) score.
		for i := range boxes {
			if kept[i] {
				continue
			}
			found := false
			for _, j := range keep {
				if boxes[i].IoU(boxes[j]) > thresh && (scores[j] > scores[i] || scores[j] == scores[i] && j < i) {
					found = true
				}
			}
			if !found {
				t.Fatalf("trial %d: box %d removed without a suppressor", trial, i)
			}
		}
		// Idempotent: NMS of the kept boxes keeps them all.
		kb := make([]Box, len(keep))
		ks := make([]float32, len(keep))
		for k, i := range keep {
			kb[k], ks[k] = boxes[i], scores[i]
		}
		if again := NMS(kb, ks, thresh); len(again) != len(keep) {
			t.Fatalf("trial %d: NMS not idempotent: %d then %d", trial, len(keep), len(again))
		}
	}
}

func TestNMSParity(t *testing.T) {
	for name, c := range fixtures.Load(t, "nms.json") {
		t.Run(name, func(t *testing.T) {
			boxes := fixtureBoxes(t, c, "boxes")
			scores, _ := c.F32(t, "scores")
			var thresh float64
			c.Scalar(t, "thresh", &thresh)
			want := c.Ints(t, "keep")
			got := NMS(boxes, scores, float32(thresh))
			if !slices.Equal(got, want) {
				t.Errorf("NMS kept %d boxes, torchvision %d:\n got %v\nwant %v", len(got), len(want), got, want)
			}
		})
	}
}

func TestBatchedNMS(t *testing.T) {
	boxes := []Box{{0, 0, 10, 10}, {1, 0, 11, 10}, {0, 0, 10, 10}, {50, 50, 60, 60}}
	scores := []float32{0.9, 0.8, 0.95, 0.1}
	tests := []struct {
		name string
		idxs []int
		want []int
	}{
		{name: "one class", idxs: []int{0, 0, 0, 0}, want: []int{2, 3}},
		{name: "classes do not suppress each other", idxs: []int{0, 0, 1, 0}, want: []int{2, 0, 3}},
		{name: "all different", idxs: []int{3, 2, 1, 0}, want: []int{2, 0, 1, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BatchedNMS(boxes, scores, tt.idxs, 0.5); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("BatchedNMS = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBatchedNMSParity(t *testing.T) {
	for name, c := range fixtures.Load(t, "batched_nms.json") {
		t.Run(name, func(t *testing.T) {
			boxes := fixtureBoxes(t, c, "boxes")
			want := c.Ints(t, "keep")
			if name == "remove_small" {
				var minSize float64
				c.Scalar(t, "min_size", &minSize)
				if got := RemoveSmall(boxes, float32(minSize)); !slices.Equal(got, want) {
					t.Errorf("RemoveSmall = %v, torchvision %v", got, want)
				}
				return
			}
			scores, _ := c.F32(t, "scores")
			idxs := c.Ints(t, "idxs")
			var thresh float64
			c.Scalar(t, "thresh", &thresh)
			got := BatchedNMS(boxes, scores, idxs, float32(thresh))
			if !slices.Equal(got, want) {
				t.Errorf("BatchedNMS kept %d, torchvision %d:\n got %v\nwant %v", len(got), len(want), got, want)
			}
		})
	}
}

func TestRemoveSmall(t *testing.T) {
	boxes := []Box{{0, 0, 1, 1}, {0, 0, 0.5, 4}, {0, 0, 4, 0.99}, {2, 2, 1, 5}, {0, 0, 3, 3}}
	if got, want := RemoveSmall(boxes, 1), []int{0, 4}; !reflect.DeepEqual(got, want) {
		t.Errorf("RemoveSmall = %v, want %v", got, want)
	}
}

func BenchmarkNMS1000(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	boxes := make([]Box, 1000)
	scores := make([]float32, 1000)
	for i := range boxes {
		x, y := r.Float32()*600, r.Float32()*400
		boxes[i] = Box{x, y, x + 20 + r.Float32()*200, y + 20 + r.Float32()*200}
		scores[i] = r.Float32()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		NMS(boxes, scores, 0.7)
	}
}
