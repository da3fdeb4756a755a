package datasets

import (
	"cmp"
	"fmt"
	"iter"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
)

// Shuffle returns a random permutation of 0..n-1 drawn from rng: one epoch
// of a seeded shuffling sampler (torchvision's RandomSampler with a
// generator). Seed rng per epoch, e.g. rand.New(rand.NewPCG(seed, epoch)).
func Shuffle(n int, rng *rand.Rand) []int { return rng.Perm(n) }

// Sequential returns 0..n-1, the order for evaluation.
func Sequential(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// Batches splits order into consecutive batches of size indices. The last
// batch is shorter when len(order) is not a multiple of size, or dropped
// when dropLast. Batches panics if size < 1.
func Batches(order []int, size int, dropLast bool) [][]int {
	if size < 1 {
		panic(fmt.Sprintf("datasets: batch size %d < 1", size))
	}
	var out [][]int
	for len(order) >= size {
		out = append(out, order[:size:size])
		order = order[size:]
	}
	if len(order) > 0 && !dropLast {
		out = append(out, order)
	}
	return out
}

// AspectRatioGroups returns the aspect-ratio group of every record of d:
// 0 when Width > Height (landscape), 1 otherwise, the two buckets of
// Detectron2's AspectRatioGroupedDataset.
func AspectRatioGroups(d Dataset) []int {
	g := make([]int, d.Len())
	for i := range g {
		if r := d.Record(i); r.Width <= r.Height {
			g[i] = 1
		}
	}
	return g
}

// GroupedBatches forms batches of size indices that share a group, as
// torchvision's GroupedBatchSampler: it walks order, collecting indices per
// group (groups[i] is the group of index i), and emits a group's batch when
// it is full. It always returns len(order)/size batches: when the walk ends
// short, the groups with the most leftover indices are topped up, largest
// first (ties in torchvision's order), by repeating that group's indices
// from the start of the walk.
// GroupedBatches panics if size < 1 or an index of order is outside groups.
func GroupedBatches(order []int, groups []int, size int) [][]int {
	if size < 1 {
		panic(fmt.Sprintf("datasets: batch size %d < 1", size))
	}
	type group struct {
		buf, all []int
		// key is the walk step at which the group was first met or last
		// emitted a batch; ties in the top-up keep this order, the order
		// of torchvision's dict, which re-creates a group's key on emission.
		key int
	}
	byID := make(map[int]*group)
	var out [][]int
	for step, i := range order {
		id := groups[i]
		g := byID[id]
		if g == nil {
			g = &group{key: step}
			byID[id] = g
		}
		g.buf = append(g.buf, i)
		g.all = append(g.all, i)
		if len(g.buf) == size {
			out = append(out, g.buf)
			g.buf = nil
			g.key = step
		}
	}
	want := len(order) / size
	if len(out) == want {
		return out
	}
	var left []*group
	for _, g := range byID {
		if len(g.buf) > 0 {
			left = append(left, g)
		}
	}
	slices.SortFunc(left, func(a, b *group) int {
		if c := cmp.Compare(len(b.buf), len(a.buf)); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	for _, g := range left {
		b := g.buf
		for len(b) < size {
			b = append(b, g.all[:min(size-len(b), len(g.all))]...)
		}
		out = append(out, b)
		if len(out) == want {
			break
		}
	}
	return out
}

// TrainingBatches returns the batches of one training epoch over d: a
// Shuffle drawn from rng, grouped by orientation (AspectRatioGroups,
// GroupedBatches), d.Len()/size batches of size indices.
func TrainingBatches(d Dataset, size int, rng *rand.Rand) [][]int {
	return GroupedBatches(Shuffle(d.Len(), rng), AspectRatioGroups(d), size)
}

// LoadFunc loads sample i (an index of the dataset). rng is the sample's own
// generator, seeded from the epoch seed and the sample's position in the
// epoch, so any randomness (augmentation) is the same whichever worker runs
// it and whenever. The function is called from several goroutines at once.
type LoadFunc[T any] func(i int, rng *rand.Rand) (T, error)

// LoaderConfig sizes a Loader.
type LoaderConfig struct {
	Workers  int // goroutines calling the load function; < 1 means runtime.GOMAXPROCS(0)
	Prefetch int // samples dispatched ahead of the consumer; < 1 means 4*Workers
}

// Loader loads batches of samples with a pool of workers, prefetching ahead
// of the consumer, and delivers them in the order of the batch list, so the
// output depends only on the batches and the seed, never on worker timing.
type Loader[T any] struct {
	load              LoadFunc[T]
	workers, prefetch int
}

// NewLoader returns a loader that calls load for every sample.
func NewLoader[T any](load LoadFunc[T], c LoaderConfig) *Loader[T] {
	if c.Workers < 1 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Prefetch < 1 {
		c.Prefetch = 4 * c.Workers
	}
	return &Loader[T]{load: load, workers: c.Workers, prefetch: c.Prefetch}
}

// Batch is one loaded batch.
type Batch[T any] struct {
	Index   int   // position in the epoch's batch list
	Indices []int // dataset indices of the samples
	Items   []T   // Items[j] is the loaded sample Indices[j]
}

// SampleRand returns the generator a Loader hands to the load of the k-th
// sample (counting over all batches, from 0) of an epoch with the given seed.
func SampleRand(seed uint64, k int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(k)))
}

// Epoch loads batches (lists of dataset indices, e.g. from TrainingBatches)
// and yields them in order. The first load error ends the sequence with an
// error naming the batch and sample. Breaking out of the loop stops the
// workers; Epoch returns only after they have exited.
func (l *Loader[T]) Epoch(batches [][]int, seed uint64) iter.Seq2[Batch[T], error] {
	return func(yield func(Batch[T], error) bool) {
		type result struct {
			v   T
			err error
		}
		type job struct {
			k, i int
			out  chan result
		}
		done := make(chan struct{})
		jobs := make(chan job)
		futures := make(chan chan result, l.prefetch)
		var wg sync.WaitGroup
		for range l.workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range jobs {
					v, err := l.load(j.i, SampleRand(seed, j.k))
					j.out <- result{v, err} // buffered: never blocks
				}
			}()
		}
		go func() { // dispatcher: one future per sample, in order
			defer close(futures)
			defer close(jobs)
			k := 0
			for _, b := range batches {
				for _, i := range b {
					out := make(chan result, 1)
					select {
					case futures <- out:
					case <-done:
						return
					}
					select {
					case jobs <- job{k, i, out}:
					case <-done:
						return
					}
					k++
				}
			}
		}()
		defer func() {
			close(done)
			for range futures {
			}
			wg.Wait()
		}()
		for bi, b := range batches {
			items := make([]T, len(b))
			for j := range b {
				r := <-<-futures
				if r.err != nil {
					var zero Batch[T]
					yield(zero, fmt.Errorf("loader: batch %d: sample %d: %w", bi, b[j], r.err))
					return
				}
				items[j] = r.v
			}
			if !yield(Batch[T]{Index: bi, Indices: b, Items: items}, nil) {
				return
			}
		}
	}
}
