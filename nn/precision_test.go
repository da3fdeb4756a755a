package nn

import (
	"errors"
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/internal/testutil"
)

func TestParsePrecision(t *testing.T) {
	tests := []struct {
		in      string
		want    Precision
		wantErr bool
	}{
		{in: "", want: PrecisionFP32}, {in: "fp32", want: PrecisionFP32}, {in: "BF16", want: PrecisionBF16},
		{in: " auto ", want: PrecisionAuto}, {in: "fp16", wantErr: true}, {in: "float32", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParsePrecision(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParsePrecision(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// The four kinds of CPU the precision tests decide on, as CPU reports them:
// AVX2 only, AVX-512 without bf16 instructions (oneDNN emulates bf16),
// AVX512_BF16 without AMX (AMD Zen 4 and later), and AMX (Intel Sapphire
// Rapids and later).
var (
	avx2   = CPUInfo{ISA: "avx2", Block: 8}
	avx512 = CPUInfo{ISA: "avx512_core", AVX512: true, BF16: true, Block: 16}
	zen4   = CPUInfo{ISA: "avx512_core_bf16", AVX512: true, AVX512BF16: true, BF16: true, Block: 16}
	spr    = CPUInfo{ISA: "avx512_core_amx", AVX512: true, AVX512BF16: true, AMX: true, BF16: true, Block: 16}
	// sprCapped is spr where oneDNN does not use the tiles (Linux refused
	// the tile state, or ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16).
	sprCapped = CPUInfo{ISA: "avx512_core_bf16", AVX512: true, AVX512BF16: true, AMX: true, BF16: true, Block: 16}
)

// TestPrecisionResolve decides every precision on four kinds of CPU: bf16
// runs where asked for and oneDNN has it, auto picks it only with AMX, and
// bf16 on a CPU without it is an error that says so.
func TestPrecisionResolve(t *testing.T) {
	tests := []struct {
		name       string
		p          Precision
		cpu        CPUInfo
		wantBF16   bool
		wantErr    bool
		wantReason string
	}{
		{name: "fp32 on AMX", p: PrecisionFP32, cpu: spr, wantReason: "asked for"},
		{name: "zero value", p: "", cpu: spr, wantReason: "asked for"},
		{name: "bf16 on AVX2", p: PrecisionBF16, cpu: avx2, wantErr: true},
		{name: "bf16 on AVX-512", p: PrecisionBF16, cpu: avx512, wantBF16: true, wantReason: "emulated"},
		{name: "bf16 on AVX512-BF16", p: PrecisionBF16, cpu: zen4, wantBF16: true, wantReason: "without AMX"},
		{name: "bf16 on AMX", p: PrecisionBF16, cpu: spr, wantBF16: true, wantReason: "AMX tiles"},
		{name: "auto on AVX2", p: PrecisionAuto, cpu: avx2, wantReason: "no bf16 on this CPU (oneDNN ISA avx2)"},
		{name: "auto on AVX512-BF16", p: PrecisionAuto, cpu: zen4, wantReason: "no AMX"},
		{name: "auto on AMX", p: PrecisionAuto, cpu: spr, wantBF16: true, wantReason: "has AMX"},
		{name: "auto on AMX unused by oneDNN", p: PrecisionAuto, cpu: sprCapped, wantReason: "oneDNN does not use it (oneDNN ISA avx512_core_bf16"},
		{name: "bf16 on AMX unused by oneDNN", p: PrecisionBF16, cpu: sprCapped, wantBF16: true, wantReason: "oneDNN does not use it"},
		{name: "unknown", p: "fp8", cpu: spr, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.p.resolveOn(tc.cpu)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want an error", c)
				}
				if tc.p == PrecisionBF16 && (!errors.Is(err, ErrBF16Unsupported) || !strings.Contains(err.Error(), tc.cpu.ISA)) {
					t.Errorf("error %q: want ErrBF16Unsupported naming the ISA", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.BF16 != tc.wantBF16 || !strings.Contains(c.Reason, tc.wantReason) {
				t.Errorf("got %+v (%s), want bf16 %v, reason containing %q", c, c, tc.wantBF16, tc.wantReason)
			}
			if want := map[bool]string{true: "bf16", false: "fp32"}[tc.wantBF16]; c.String() != want {
				t.Errorf("String() = %q, want %q", c, want)
			}
		})
	}
	// On this CPU: Resolve agrees with BF16Error.
	if _, err := PrecisionBF16.Resolve(); (err == nil) != (BF16Error() == nil) {
		t.Errorf("Resolve(bf16) error %v, BF16Error %v", err, BF16Error())
	}
}

// bf16Round rounds v to the nearest bfloat16 (ties to even), as oneDNN's
// conversion does.
func bf16Round(v float32) float32 {
	b := math.Float32bits(v)
	b += 0x7fff + (b>>16)&1
	return math.Float32frombits(b &^ 0xffff)
}

// TestLinearBF16 checks LinearWith(BF16) against a float64 product of the
// bf16-rounded x and w: equal up to float32 accumulation, and different from
// the float32 product by about bf16 rounding (the inputs really are rounded).
func TestLinearBF16(t *testing.T) {
	testutil.BF16(t, BF16Error())
	tests := []struct {
		name       string
		n, in, out int
		bias       bool
		constW     bool
	}{
		{name: "box head fc7", n: 37, in: 1024, out: 64, bias: true, constW: true},
		{name: "no bias", n: 5, in: 100, out: 9},
		{name: "single row", n: 1, in: 256, out: 17, bias: true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(70 + i)))
			x, w := randSlice(rng, tc.n*tc.in), randSlice(rng, tc.out*tc.in)
			b := make([]float32, tc.out)
			if tc.bias {
				b = randSlice(rng, tc.out)
			}
			g := G.NewGraph()
			xn := G.NewTensor(g, tensor.Float32, 2, G.WithShape(tc.n, tc.in), G.WithName("x"), G.WithValue(tensor.New(tensor.WithShape(tc.n, tc.in), tensor.WithBacking(x))))
			wn := G.NewTensor(g, tensor.Float32, 2, G.WithShape(tc.out, tc.in), G.WithName("w"), G.WithValue(tensor.New(tensor.WithShape(tc.out, tc.in), tensor.WithBacking(w))))
			var bn *G.Node
			if tc.bias {
				bn = G.NewTensor(g, tensor.Float32, 1, G.WithShape(tc.out), G.WithName("b"), G.WithValue(tensor.New(tensor.WithShape(tc.out), tensor.WithBacking(b))))
			}
			y, err := LinearWith(xn, wn, bn, LinearOpts{BF16: true, ConstWeights: tc.constW})
			if err != nil {
				t.Fatal(err)
			}
			m := G.NewTapeMachine(g)
			defer m.Close()
			for run := 0; run < 2; run++ { // the second run uses the kept bf16 weights
				if err := m.RunAll(); err != nil {
					t.Fatal(err)
				}
				got := y.Value().Data().([]float32)
				var errRounded, diffFP32, scale float64
				for r := 0; r < tc.n; r++ {
					for o := 0; o < tc.out; o++ {
						var s16, s32, sAbs float64
						for k := 0; k < tc.in; k++ {
							xv, wv := x[r*tc.in+k], w[o*tc.in+k]
							s16 += float64(bf16Round(xv)) * float64(bf16Round(wv))
							s32 += float64(xv) * float64(wv)
							sAbs += math.Abs(float64(xv) * float64(wv))
						}
						v := float64(got[r*tc.out+o])
						errRounded = math.Max(errRounded, math.Abs(v-s16-float64(b[o]))/sAbs)
						diffFP32 = math.Max(diffFP32, math.Abs(v-s32-float64(b[o]))/sAbs)
						scale = math.Max(scale, sAbs)
					}
				}
				t.Logf("run %d: max |y - y(bf16 inputs)| / sum|x*w| = %.3g; max |y - y(fp32)| / sum|x*w| = %.3g", run, errRounded, diffFP32)
				if errRounded > 1e-5 {
					t.Errorf("run %d: bf16 product off the product of rounded inputs by %.3g (relative to sum |x*w|), want <= 1e-5", run, errRounded)
				}
				if diffFP32 < 1e-4 || diffFP32 > 1e-2 {
					t.Errorf("run %d: bf16 product differs from fp32 by %.3g, want in [1e-4, 1e-2] (inputs rounded to 8 bits)", run, diffFP32)
				}
			}
		})
	}
}

// TestLinearBF16ConstWeightsShared: products with other row counts on the
// same constant weights (the RoI heads see a new count per image) share one
// bf16 copy instead of keeping one per count, and still agree row by row.
func TestLinearBF16ConstWeightsShared(t *testing.T) {
	testutil.BF16(t, BF16Error())
	ReleaseConvBuffers()
	defer ReleaseConvBuffers()
	rng := rand.New(rand.NewSource(81))
	const in, out = 96, 40
	w := randSlice(rng, out*in)
	x := randSlice(rng, 7*in)
	var first []float32
	for _, n := range []int{7, 3, 5, 7} {
		op := &linearOp{n: n, in: in, out: out, bf16: true, constW: true}
		wv := tensor.New(tensor.WithShape(out, in), tensor.WithBacking(w))
		y, err := op.Do(tensor.New(tensor.WithShape(n, in), tensor.WithBacking(x[:n*in])), wv)
		if err != nil {
			t.Fatal(err)
		}
		got := y.Data().([]float32)
		if first == nil {
			first = append([]float32(nil), got...)
		}
		for i := range got {
			if got[i] != first[i] {
				t.Fatalf("n=%d: row %d col %d = %g, with 7 rows %g", n, i/out, i%out, got[i], first[i])
			}
		}
		if c := convPackedCount(); c != 1 {
			t.Errorf("after n=%d: %d packed weight copies, want 1", n, c)
		}
	}
}

// TestPrecisionResolveTraining decides every precision for training on
// four kinds of CPU: bf16 needs AVX512_BF16 or AMX (emulated bf16 is
// refused with the ISA named), auto is bf16 only with AMX.
func TestPrecisionResolveTraining(t *testing.T) {
	tests := []struct {
		name       string
		p          Precision
		cpu        CPUInfo
		wantBF16   bool
		wantErr    string // part of the error; "" for none
		wantReason string
	}{
		{name: "fp32 on AMX", p: PrecisionFP32, cpu: spr, wantReason: "asked for"},
		{name: "bf16 on AVX2", p: PrecisionBF16, cpu: avx2, wantErr: "oneDNN ISA avx2"},
		{name: "bf16 emulated on AVX-512", p: PrecisionBF16, cpu: avx512, wantErr: "oneDNN ISA avx512_core,"},
		{name: "bf16 on AVX512-BF16", p: PrecisionBF16, cpu: zen4, wantBF16: true, wantReason: "without AMX (oneDNN ISA avx512_core_bf16)"},
		{name: "bf16 on AMX", p: PrecisionBF16, cpu: spr, wantBF16: true, wantReason: "AMX tiles (oneDNN ISA avx512_core_amx)"},
		{name: "auto on AVX-512", p: PrecisionAuto, cpu: avx512, wantReason: "no AMX"},
		{name: "auto on AVX512-BF16", p: PrecisionAuto, cpu: zen4, wantReason: "no AMX"},
		{name: "auto on AMX", p: PrecisionAuto, cpu: spr, wantBF16: true, wantReason: "has AMX"},
		{name: "auto on AMX unused by oneDNN", p: PrecisionAuto, cpu: sprCapped, wantReason: "oneDNN does not use it (oneDNN ISA avx512_core_bf16"},
		{name: "bf16 on AMX unused by oneDNN", p: PrecisionBF16, cpu: sprCapped, wantBF16: true, wantReason: "oneDNN does not use it"},
		{name: "unknown", p: "fp8", cpu: spr, wantErr: "fp8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.p.resolveTrainingOn(tc.cpu)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("got %+v, %v; want a one-line error containing %q", c, err, tc.wantErr)
				}
				if tc.p == PrecisionBF16 && !errors.Is(err, ErrBF16Unsupported) {
					t.Errorf("error %q: want ErrBF16Unsupported", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.BF16 != tc.wantBF16 || !strings.Contains(c.Reason, tc.wantReason) {
				t.Errorf("got %+v, want bf16 %v, reason containing %q", c, tc.wantBF16, tc.wantReason)
			}
		})
	}
}

// TestBF16Kernels names the kernels of bf16 training on this CPU: three
// names, each a bf16 kernel of the CPU's ISA family.
func TestBF16Kernels(t *testing.T) {
	convSkipWithoutBF16(t)
	k, err := BF16Kernels()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("oneDNN ISA %s: %s", CPU().ISA, k)
	if strings.Count(k, "avx512_core") != 3 || !strings.HasPrefix(k, "forward ") || strings.Contains(k, "ref") {
		t.Errorf("BF16Kernels() = %q: want three avx512_core kernels, no reference kernel", k)
	}
}
