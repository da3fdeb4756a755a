package backbone

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/nn"
)

// TestForwardMeanBlocked runs a frozen-BN res5 stage (the C4 box head) on
// NCHW input (ForwardMean) and on the same input converted to its blocked
// layout first (nn.ToBlocked, then ForwardMeanBlocked): the features must
// be the same bits. It also checks the layouts each method refuses.
func TestForwardMeanBlocked(t *testing.T) {
	g := G.NewGraph()
	r, err := New(g, Config{Depth: 18}, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	res5 := r.Res5()
	if !res5.Blocked() || res5.BF16Chain() {
		t.Fatalf("res5 of a frozen-BN fp32 ResNet-18: blocked %v, bf16 chain %v; want true, false", res5.Blocked(), res5.BF16Chain())
	}
	rng := rand.New(rand.NewSource(2))
	data := make([]float32, 3*r.C4Out().Channels*7*7)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(3, r.C4Out().Channels, 7, 7), G.WithName("pooled"),
		G.WithValue(tensor.New(tensor.WithShape(3, r.C4Out().Channels, 7, 7), tensor.WithBacking(data))))
	plain, err := res5.ForwardMean(x)
	if err != nil {
		t.Fatal(err)
	}
	xb, err := nn.ToBlocked(x)
	if err != nil {
		t.Fatal(err)
	}
	blocked, err := res5.ForwardMeanBlocked(xb)
	if err != nil {
		t.Fatal(err)
	}
	e, err := nn.NewExecutor(g, plain, blocked)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Run(); err != nil {
		t.Fatal(err)
	}
	a, b := values(t, plain), values(t, blocked)
	nonzero := 0
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("feature %d: ForwardMean %g, ForwardMeanBlocked %g", i, a[i], b[i])
		}
		if a[i] != 0 {
			nonzero++
		}
	}
	if nonzero < len(a)/4 {
		t.Fatalf("only %d of %d features are nonzero", nonzero, len(a))
	}

	// Refused layouts: a bf16 value to either method of an fp32 stage, and
	// blocked input to a stage that runs on NCHW (trainable BN).
	bf16, err := nn.ToBlockedBF16(x)
	if err == nil {
		for name, f := range map[string]func(*G.Node) (*G.Node, error){"ForwardMean": res5.ForwardMean, "ForwardMeanBlocked": res5.ForwardMeanBlocked} {
			if _, err := f(bf16); err == nil || !strings.Contains(err.Error(), "is bf16") {
				t.Errorf("%s on a bf16 value: error %v, want one naming the dtype", name, err)
			}
		}
	}
	g2 := G.NewGraph()
	tr, err := New(g2, Config{Depth: 18, Norm: TrainableBN}, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Res5().Blocked() {
		t.Fatal("res5 with trainable BN reports the blocked layout")
	}
	x2 := G.NewTensor(g2, tensor.Float32, 4, G.WithShape(1, r.C4Out().Channels, 7, 7), G.WithName("x2"))
	if _, err := tr.Res5().ForwardMeanBlocked(x2); err == nil || !strings.Contains(err.Error(), "NCHW") {
		t.Errorf("ForwardMeanBlocked on an NCHW stage: error %v, want one saying it runs on NCHW", err)
	}
}
