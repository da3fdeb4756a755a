package nn

import (
	"fmt"
	"math/rand"
	"runtime"
	"sync"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"
)

// TestEngineLanes calls convolutions from two goroutines, each with its own
// constant weights (two detectors sharing a process, as in `detect batch
// --models-per-worker 2`). With one thread per call on a machine of two or
// more CPUs the engine must run the two callers' calls at the same time (it
// ran every call on one thread: issue 15); with Threads() = NumCPU, one
// call at a time (one OpenMP team fills the CPUs). Either way every result
// must equal, bit for bit, the same convolution run alone (lanes keep their
// own primitives and arena; the packed weights are shared).
func TestEngineLanes(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs")
	}
	defer SetThreads(Threads())
	g, err := newConvGeom("test", []int{1, 64, 40, 40}, []int{64, 64, 3, 3}, ConvOpts{Pad: [2]int{1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(15))
	type caller struct {
		op   convOp
		x, w G.Value
		want []float32
	}
	var callers [2]caller
	for i := range callers {
		c := &callers[i]
		c.op = convOp{geom: g, constWeights: true}
		c.x = convDense(g.X[:], randSlice(rng, convNum(g.X)))
		c.w = convDense(g.W[:], randSlice(rng, convNum(g.W)))
	}
	for _, tt := range []struct{ threads, wantPeak int }{{1, 2}, {runtime.NumCPU(), 1}} {
		t.Run(fmt.Sprintf("%d threads", tt.threads), func(t *testing.T) {
			SetThreads(tt.threads)
			ReleaseConvBuffers()
			for i := range callers { // alone: the reference
				c := &callers[i]
				v, err := c.op.Do(c.x, c.w)
				if err != nil {
					t.Fatal(err)
				}
				c.want = append([]float32(nil), v.Data().([]float32)...)
			}
			PeakCalls()
			var wg sync.WaitGroup
			errs := make(chan error, len(callers))
			stop := time.Now().Add(10 * time.Second)
			for i := range callers {
				c := &callers[i]
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := 0; j < 40 || (tt.wantPeak > 1 && time.Now().Before(stop) && j < 4000); j++ {
						v, err := c.op.Do(c.x, c.w)
						if err != nil {
							errs <- err
							return
						}
						for k, got := range v.Data().([]float32) {
							if got != c.want[k] {
								errs <- fmt.Errorf("call %d: y[%d] = %g, alone %g", j, k, got, c.want[k])
								return
							}
						}
						if j >= 40 && dnnlPeakSeen() >= tt.wantPeak {
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if peak := PeakCalls(); peak != tt.wantPeak {
				t.Errorf("%d calls ran at once at most, want %d", peak, tt.wantPeak)
			}
		})
	}
}

// dnnlPeakSeen returns the peak PeakCalls would return, without
// resetting it.
func dnnlPeakSeen() int {
	e, err := dnnlGet()
	if err != nil {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.peak
}
