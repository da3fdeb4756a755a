package detection

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/testutil"
	"resdet/nn"
)

// rpnHeadRun is one run of an RPN head on a feature map: its outputs and,
// for a training head, the gradients of sum(objectness²) + sum(deltas²)
// with respect to the map (NCHW) and the first convolution's weights.
type rpnHeadRun struct {
	obj, dlt, dx, dw []float32
	readsMap         bool // the head's graph reads the NCHW map (nn.FromBlocked of the chain)
}

// runRPNHead builds an RPN head of c channels (seeded weights) on a
// [1, c, 9, 11] map held in the backbone's chain layout (float32 blocked,
// or bf16 channels-last), hands it the chain's NCHW conversion as Map and,
// if withChain, the chain itself, and runs it on a tape machine.
func runRPNHead(t *testing.T, c int, bf16, train, withChain bool) rpnHeadRun {
	t.Helper()
	g := G.NewGraph()
	r := rand.New(rand.NewSource(3))
	data := make([]float32, c*9*11)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, c, 9, 11), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(1, c, 9, 11), tensor.WithBacking(data))))
	toChain := nn.ToBlocked
	if bf16 {
		toChain = nn.ToBlockedBF16
	}
	chain, err := toChain(x)
	if err != nil {
		t.Fatal(err)
	}
	nchw, err := nn.FromBlocked(chain)
	if err != nil {
		t.Fatal(err)
	}
	f := Feature{Name: "res4", Map: nchw}
	if withChain {
		f.Chain = chain
	}
	h := NewRPNHead(g, c, 3, rand.New(rand.NewSource(4)))
	h.BF16, h.varW = bf16, train
	obj, dlt, err := h.Forward(f)
	if err != nil {
		t.Fatal(err)
	}
	var wrt G.Nodes
	if train {
		loss := G.Must(G.Add(G.Must(G.Sum(G.Must(G.Square(obj)))), G.Must(G.Sum(G.Must(G.Square(dlt))))))
		wrt = G.Nodes{x, h.convs[0].node}
		if _, err := G.Grad(loss, wrt...); err != nil {
			t.Fatal(err)
		}
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(wrt...))
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	out := rpnHeadRun{obj: slices.Clone(values(obj)), dlt: slices.Clone(values(dlt)), readsMap: reaches(obj, nchw) || reaches(dlt, nchw)}
	if train {
		for i, p := range []*[]float32{&out.dx, &out.dw} {
			gv, err := wrt[i].Grad()
			if err != nil {
				t.Fatal(err)
			}
			*p = slices.Clone(gv.Data().([]float32))
		}
	}
	return out
}

// reaches says whether target is n or one of its inputs, transitively.
func reaches(n, target *G.Node) bool {
	found := false
	for m := range G.WalkGraph(n) { // drained: the walker blocks otherwise
		found = found || m == target
	}
	return found
}

// TestRPNHeadReadsChain checks that the RPN head reads the backbone's chain
// layout when it is offered, skipping the NCHW map, and that this changes
// no bit of the outputs, nor of the gradients of the map and the weights
// in training.
func TestRPNHeadReadsChain(t *testing.T) {
	tests := []struct{ bf16, train bool }{{}, {train: true}, {bf16: true}, {bf16: true, train: true}}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("bf16=%v_train=%v", tc.bf16, tc.train), func(t *testing.T) {
			if tc.bf16 {
				testutil.BF16(t, nn.BF16Error())
			}
			viaChain := runRPNHead(t, 32, tc.bf16, tc.train, true)
			viaMap := runRPNHead(t, 32, tc.bf16, tc.train, false)
			if viaChain.readsMap || !viaMap.readsMap {
				t.Errorf("the head reads the NCHW map: %v with the chain offered, %v without; want false, true",
					viaChain.readsMap, viaMap.readsMap)
			}
			for _, c := range []struct {
				name      string
				got, want []float32
			}{
				{"objectness", viaChain.obj, viaMap.obj}, {"deltas", viaChain.dlt, viaMap.dlt},
				{"map gradient", viaChain.dx, viaMap.dx}, {"weight gradient", viaChain.dw, viaMap.dw},
			} {
				if len(c.got) != len(c.want) {
					t.Fatalf("%s: %d values via the chain, %d via the map", c.name, len(c.got), len(c.want))
				}
				for i := range c.got {
					if math.Float32bits(c.got[i]) != math.Float32bits(c.want[i]) {
						t.Fatalf("%s[%d]: %g via the chain, %g via the map", c.name, i, c.got[i], c.want[i])
					}
				}
			}
		})
	}
}
