package nn

import (
	"errors"
	"os"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/testutil"
)

// convSkipWithoutBF16 skips a test of ConvOpts.BF16 on CPUs without it.
// (or fails it with RESDET_REQUIRE_BF16=1).
func convSkipWithoutBF16(t testing.TB) {
	t.Helper()
	testutil.BF16(t, checkBF16())
}

// TestCPU checks that oneDNN's answers (ISA, bf16 convolution, block) agree
// with cpuid's flags as oneDNN 2.x documents them.
func TestCPU(t *testing.T) {
	c := CPU()
	t.Logf("oneDNN ISA %s; cpuid: AVX-512 %v, AVX512_BF16 %v, AMX %v; bf16 convolution %v; blocked layout nChw%dc",
		c.ISA, c.AVX512, c.AVX512BF16, c.AMX, c.BF16, c.Block)
	if c != CPU() {
		t.Errorf("CPU() changed between calls")
	}
	inUse := c.AMX && c.ISA == "avx512_core_amx"
	if bf16, amx := BF16Supported(), AMXSupported(); bf16 != c.BF16 || amx != inUse || c.AMXInUse() != inUse {
		t.Errorf("BF16Supported %v, AMXSupported %v, AMXInUse %v; want %v, %v, %v (CPU() %+v)", bf16, amx, c.AMXInUse(), c.BF16, inUse, inUse, c)
	}
	if c.AMX && !inUse {
		t.Logf("this CPU has AMX but oneDNN does not use it (ISA %s): bf16 runs without tiles and auto picks fp32", c.ISA)
	}
	avx512ISA := strings.HasPrefix(c.ISA, "avx512_core")
	// ONEDNN_MAX_CPU_ISA (or DNNL_MAX_CPU_ISA) caps oneDNN below what cpuid
	// reports; without it, oneDNN uses what the CPU has.
	capped := os.Getenv("ONEDNN_MAX_CPU_ISA") != "" || os.Getenv("DNNL_MAX_CPU_ISA") != ""
	tests := []struct {
		name string
		ok   bool
	}{
		{name: "AVX512_BF16 or AMX implies AVX-512", ok: !(c.AVX512BF16 || c.AMX) || c.AVX512},
		{name: "oneDNN uses AVX-512 only if cpuid has it", ok: !avx512ISA || c.AVX512},
		{name: "oneDNN uses AMX only if cpuid has it", ok: c.ISA != "avx512_core_amx" || c.AMX},
		{name: "oneDNN uses AVX-512 if cpuid has it (ISA not capped)", ok: capped || avx512ISA == c.AVX512},
		{name: "bf16 convolution exactly with an AVX-512 ISA", ok: c.BF16 == avx512ISA},
		{name: "block 16 with an AVX-512 ISA, else 8", ok: (avx512ISA && c.Block == 16) || (!avx512ISA && c.Block == 8)},
	}
	for _, tc := range tests {
		if !tc.ok {
			t.Errorf("%s: does not hold (%+v)", tc.name, c)
		}
	}
}

// TestConvBF16Capability builds each convolution op with ConvOpts.BF16: it
// must succeed where BF16Supported and otherwise fail with the error that
// says why, not with oneDNN's "unimplemented".
func TestConvBF16Capability(t *testing.T) {
	tests := []struct {
		name, wantOp string // wantOp: the op the error names
		build        func(x, w, v *G.Node, o ConvOpts) (*G.Node, error)
	}{
		{name: "Conv2d", wantOp: "nn: Conv2d:", build: func(x, w, v *G.Node, o ConvOpts) (*G.Node, error) { return Conv2d(x, w, v, o) }},
		{name: "Conv2dFused", wantOp: "nn: Conv2d:", build: func(x, w, v *G.Node, o ConvOpts) (*G.Node, error) { return Conv2dFused(x, w, v, nil, o, true) }},
		{name: "Conv2dBN", wantOp: "nn: Conv2dBN:", build: func(x, w, v *G.Node, o ConvOpts) (*G.Node, error) { return Conv2dBN(x, w, v, v, nil, o, false) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := G.NewGraph()
			x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 16, 8, 8), G.WithName("x"), G.WithInit(G.Zeroes()))
			w := G.NewTensor(g, tensor.Float32, 4, G.WithShape(16, 16, 3, 3), G.WithName("w"), G.WithInit(G.Zeroes()))
			v := G.NewTensor(g, tensor.Float32, 1, G.WithShape(16), G.WithName("v"), G.WithInit(G.Zeroes()))
			y, err := tc.build(x, w, v, ConvOpts{Pad: [2]int{1, 1}, BF16: true})
			if BF16Supported() {
				if err != nil {
					t.Fatalf("bf16 supported, but: %v", err)
				}
				m := G.NewTapeMachine(g)
				defer m.Close()
				if err := m.RunAll(); err != nil {
					t.Fatalf("bf16 supported, but running: %v", err)
				}
				if s := y.Shape(); !s.Eq(tensor.Shape{1, 16, 8, 8}) {
					t.Errorf("shape %v", s)
				}
				return
			}
			if err == nil {
				t.Fatal("bf16 unsupported, but no error")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrBF16Unsupported) || !strings.HasPrefix(err.Error(), tc.wantOp) ||
				!strings.Contains(err.Error(), "(16, 16, 3, 3)") || strings.Contains(err.Error(), "unimplemented") {
				t.Errorf("error %q: want the op, the weights' shape and the reason", err)
			}
		})
	}
}
