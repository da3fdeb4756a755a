package datasets

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestShuffle(t *testing.T) {
	a := Shuffle(100, rand.New(rand.NewPCG(1, 0)))
	b := Shuffle(100, rand.New(rand.NewPCG(1, 0)))
	c := Shuffle(100, rand.New(rand.NewPCG(1, 1)))
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed, different orders")
	}
	if reflect.DeepEqual(a, c) {
		t.Error("different epochs, same order")
	}
	sorted := slices.Sorted(slices.Values(a))
	if !reflect.DeepEqual(sorted, Sequential(100)) {
		t.Errorf("not a permutation: %v", a)
	}
}

func TestBatches(t *testing.T) {
	tests := []struct {
		name     string
		n, size  int
		dropLast bool
		want     [][]int
	}{
		{name: "exact", n: 4, size: 2, want: [][]int{{0, 1}, {2, 3}}},
		{name: "partial kept", n: 5, size: 2, want: [][]int{{0, 1}, {2, 3}, {4}}},
		{name: "partial dropped", n: 5, size: 2, dropLast: true, want: [][]int{{0, 1}, {2, 3}}},
		{name: "empty", n: 0, size: 3, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Batches(Sequential(tt.n), tt.size, tt.dropLast); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// groupSet is a Dataset of records of the given sizes.
type groupSet [][2]int

func (g groupSet) Len() int            { return len(g) }
func (g groupSet) Record(i int) Record { return Record{Width: g[i][0], Height: g[i][1]} }

func TestAspectRatioGroups(t *testing.T) {
	d := groupSet{{640, 480}, {480, 640}, {500, 500}, {501, 500}}
	if got, want := AspectRatioGroups(d), []int{0, 1, 1, 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestGroupedBatches(t *testing.T) {
	tests := []struct {
		name   string
		order  []int
		groups []int
		size   int
		want   [][]int
	}{
		{
			// Worked through torchvision's GroupedBatchSampler by hand.
			name:   "full batches in completion order",
			order:  []int{0, 1, 2, 3, 4, 5, 6, 7},
			groups: []int{0, 1, 0, 1, 1, 0, 0, 1},
			size:   2,
			want:   [][]int{{0, 2}, {1, 3}, {5, 6}, {4, 7}},
		},
		{
			// 7 samples, size 3: 2 batches. Group 1 is full at 4 with
			// {1, 3, 4}, group 0 at 5 with {0, 2, 5}; 6 is left over and
			// not needed.
			name:   "leftover dropped when enough batches",
			order:  []int{0, 1, 2, 3, 4, 5, 6},
			groups: []int{0, 1, 0, 1, 1, 0, 0},
			size:   3,
			want:   [][]int{{1, 3, 4}, {0, 2, 5}},
		},
		{
			// 6 samples, size 3: 2 batches wanted. Walking 4,5,0,1,2,3
			// (groups 0,1,0,1,2,1), group 1 is full at 3 with {5, 1, 3}.
			// Leftovers: group 0 {4, 0}, group 2 {2}. One more batch: the
			// largest, group 0, topped up with its own first index.
			name:   "top-up from the largest leftover group",
			order:  []int{4, 5, 0, 1, 2, 3},
			groups: []int{0, 1, 2, 1, 0, 1},
			size:   3,
			want:   [][]int{{5, 1, 3}, {4, 0, 4}},
		},
		{
			// 4 samples in 4 groups, size 2: 2 batches, none completed.
			// All leftovers have 1 element: ties in the order groups were
			// met; each is repeated.
			name:   "ties in first-met order",
			order:  []int{3, 2, 1, 0},
			groups: []int{0, 1, 2, 3},
			size:   2,
			want:   [][]int{{3, 3}, {2, 2}},
		},
		{
			// Ties keep torchvision's dict order, where a group's key is
			// re-created when it emits. Walk 0..4 (groups 0,0,1,2,0):
			// group 0 emits {0, 1} at step 1, so its key (step 1) still
			// precedes groups 1 (step 2) and 2 (step 3). 5/2 = 2 batches:
			// one more from the leftovers of one each: group 0 {4, 0}.
			name:   "emission keeps an early group early",
			order:  []int{0, 1, 2, 3, 4},
			groups: []int{0, 0, 1, 2, 0},
			size:   2,
			want:   [][]int{{0, 1}, {4, 0}},
		},
		{
			// Walk 0..4 (groups 0,1,0,2,0): group 0 emits {0, 2} at step 2,
			// after group 1 was met (step 1), so in the tie among the
			// one-element leftovers group 1 comes first: {1, 1}.
			name:   "emission moves a group behind",
			order:  []int{0, 1, 2, 3, 4},
			groups: []int{0, 1, 0, 2, 0},
			size:   2,
			want:   [][]int{{0, 2}, {1, 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := GroupedBatches(tt.order, tt.groups, tt.size); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// Property: n/size batches, each full and single-group, deterministic for a
// seed; every index exactly once when no top-up is needed.
func TestTrainingBatchesProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		n := 1 + rng.IntN(60)
		d := make(groupSet, n)
		for i := range d {
			d[i] = [2]int{1 + rng.IntN(5), 1 + rng.IntN(5)}
		}
		size := 1 + rng.IntN(5)
		groups := AspectRatioGroups(d)
		seed := uint64(trial)
		batches := TrainingBatches(d, size, rand.New(rand.NewPCG(seed, 0)))
		if again := TrainingBatches(d, size, rand.New(rand.NewPCG(seed, 0))); !reflect.DeepEqual(batches, again) {
			t.Fatal("not deterministic for a seed")
		}
		if len(batches) != n/size {
			t.Fatalf("n=%d size=%d: %d batches", n, size, len(batches))
		}
		seen := make(map[int]int)
		for _, b := range batches {
			if len(b) != size {
				t.Fatalf("batch %v has size %d, want %d", b, len(b), size)
			}
			for _, i := range b {
				if groups[i] != groups[b[0]] {
					t.Fatalf("batch %v mixes groups", b)
				}
				seen[i]++
			}
		}
		// Without repeats needed (each group's count a multiple of size)
		// every index appears exactly once.
		counts := map[int]int{}
		for _, g := range groups {
			counts[g]++
		}
		if counts[0]%size == 0 && counts[1]%size == 0 {
			for i := range n {
				if seen[i] != 1 {
					t.Fatalf("index %d seen %d times", i, seen[i])
				}
			}
		}
	}
}

// fakeLoad returns a load function that sleeps a random time (from its own
// generator, so worker timing varies run to run) and returns a string built
// from the index and the first draw of the sample's generator.
func fakeLoad(fail int) LoadFunc[string] {
	return func(i int, rng *rand.Rand) (string, error) {
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		if i == fail {
			return "", errors.New("cannot decode")
		}
		return fmt.Sprintf("%d:%d", i, rng.IntN(1000000)), nil
	}
}

func collect(t *testing.T, l *Loader[string], batches [][]int, seed uint64) ([]Batch[string], error) {
	t.Helper()
	var out []Batch[string]
	for b, err := range l.Epoch(batches, seed) {
		if err != nil {
			return out, err
		}
		out = append(out, b)
	}
	return out, nil
}

func TestLoaderDeterministic(t *testing.T) {
	batches := TrainingBatches(groupSet(make([][2]int, 97)), 4, rand.New(rand.NewPCG(5, 0)))
	// Reference: one worker, no prefetch beyond one sample.
	ref, err := collect(t, NewLoader(fakeLoad(-1), LoaderConfig{Workers: 1, Prefetch: 1}), batches, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(ref) != len(batches) {
		t.Fatalf("%d batches, want %d", len(ref), len(batches))
	}
	k := 0
	for bi, b := range ref {
		if b.Index != bi || !reflect.DeepEqual(b.Indices, batches[bi]) {
			t.Fatalf("batch %d: %+v", bi, b)
		}
		for j, item := range b.Items {
			want := fmt.Sprintf("%d:%d", batches[bi][j], SampleRand(42, k).IntN(1000000))
			if item != want {
				t.Fatalf("batch %d item %d = %q, want %q", bi, j, item, want)
			}
			k++
		}
	}
	for _, c := range []LoaderConfig{{Workers: 2}, {Workers: 8, Prefetch: 3}, {Workers: 16, Prefetch: 64}} {
		t.Run(fmt.Sprintf("workers=%d,prefetch=%d", c.Workers, c.Prefetch), func(t *testing.T) {
			got, err := collect(t, NewLoader(fakeLoad(-1), c), batches, 42)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, ref) {
				t.Error("output differs from the one-worker run")
			}
		})
	}
	other, _ := collect(t, NewLoader(fakeLoad(-1), LoaderConfig{Workers: 4}), batches, 43)
	if reflect.DeepEqual(other, ref) {
		t.Error("another seed gave the same samples")
	}
}

func TestLoaderErrorAndEarlyStop(t *testing.T) {
	before := runtime.NumGoroutine()
	batches := Batches(Sequential(50), 5, false)
	l := NewLoader(fakeLoad(23), LoaderConfig{Workers: 4, Prefetch: 8})
	got, err := collect(t, l, batches, 1)
	if err == nil || !strings.Contains(err.Error(), "loader: batch 4: sample 23: cannot decode") {
		t.Fatalf("err = %v", err)
	}
	if len(got) != 4 {
		t.Errorf("%d batches before the error, want 4", len(got))
	}
	n := 0
	for _, err := range NewLoader(fakeLoad(-1), LoaderConfig{Workers: 4, Prefetch: 8}).Epoch(batches, 1) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	// Epoch waits for its workers before returning: no goroutine is left.
	for range 50 {
		if runtime.NumGoroutine() <= before {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Errorf("%d goroutines after the loops, %d before", g, before)
	}
}
