package nn

import (
	"math/rand"
	"runtime"
	"testing"
	"time"

	"gorgonia.org/tensor"
)

// TestConvConstWeightsKeepAlive checks that the packed copy of constant
// weights keeps the weights reachable until ReleaseConvBuffers: the copy is
// found by the weights' address, and if the garbage collector freed them, a
// later tensor of the same geometry allocated there would silently get the
// old weights' results.
func TestConvConstWeightsKeepAlive(t *testing.T) {
	rng := rand.New(rand.NewSource(14))
	tests := []struct {
		name string
		o    ConvOpts
	}{
		{name: "nchw", o: ConvOpts{Pad: [2]int{1, 1}}},
		{name: "blocked", o: ConvOpts{Pad: [2]int{1, 1}, BlockedIn: true, BlockedOut: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ReleaseConvBuffers()
			g, err := newConvGeom("test", []int{1, 16, 6, 5}, []int{16, 16, 3, 3}, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			x := convDense(g.X[:], randSlice(rng, convNum(g.X)))
			freed := make(chan struct{}, 1)
			func() {
				w := make([]float32, convNum(g.W))
				copy(w, randSlice(rng, len(w)))
				runtime.SetFinalizer(&w[0], func(*float32) { freed <- struct{}{} })
				wt := tensor.New(tensor.WithShape(g.W[:]...), tensor.WithBacking(w)) // w itself, not a copy
				if _, err := (convOp{geom: g, constWeights: true}).Do(x, wt); err != nil {
					t.Fatal(err)
				}
			}()
			if n := convPackedCount(); n != 1 {
				t.Fatalf("%d packed weights kept, want 1", n)
			}
			gcUntil := func(d time.Duration) bool {
				for end := time.Now().Add(d); time.Now().Before(end); {
					runtime.GC()
					select {
					case <-freed:
						return true
					case <-time.After(20 * time.Millisecond):
					}
				}
				return false
			}
			if gcUntil(200 * time.Millisecond) {
				t.Fatal("constant weights freed while their packed copy is kept: another tensor could take their address")
			}
			ReleaseConvBuffers()
			if !gcUntil(5 * time.Second) {
				t.Error("constant weights still reachable after ReleaseConvBuffers")
			}
		})
	}
}
