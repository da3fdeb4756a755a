package nn

import (
	"fmt"
	"strings"
)

// Precision is the arithmetic an inference graph is built for. With bf16,
// the convolutions (ConvOpts.BF16) and the linear layers that a model marks
// (LinearOpts.BF16) round their inputs and weights to bfloat16 (8 bits of
// mantissa) and accumulate in float32; everything else (activations between
// ops, post-ops, softmax, box decoding, NMS, scores) stays float32. The
// zero value is PrecisionFP32.
type Precision string

// The precisions.
const (
	PrecisionFP32 Precision = "fp32"
	// PrecisionBF16 asks for bf16 on any CPU where oneDNN implements it
	// (AVX-512 and up, see BF16Supported); elsewhere Resolve fails.
	PrecisionBF16 Precision = "bf16"
	// PrecisionAuto is bf16 where oneDNN runs AMX tiles with bf16
	// (CPUInfo.AMXInUse; where issue 14 measured a 9-10x faster
	// convolution), float32 elsewhere, including on an AMX CPU whose tiles
	// oneDNN cannot use.
	// Without AMX, on an AVX512-BF16 CPU (AMD Zen 4,
	// brgconv:avx512_core_bf16), ResNet-101's convolutions at 600x1000 on
	// one thread took 0.68-0.74x the CPU-seconds of float32
	// (BenchmarkResNet101Convs, blocked layout, two runs on a loaded
	// machine): a gain, but not the several-fold one that pays for bf16's
	// rounding by default; ask for PrecisionBF16 to use it.
	PrecisionAuto Precision = "auto"
)

// ParsePrecision reads "fp32", "bf16" or "auto" (case-insensitive; "" is
// fp32).
func ParsePrecision(s string) (Precision, error) {
	switch p := Precision(strings.ToLower(strings.TrimSpace(s))); p {
	case "":
		return PrecisionFP32, nil
	case PrecisionFP32, PrecisionBF16, PrecisionAuto:
		return p, nil
	}
	return "", fmt.Errorf("nn: precision %q: want fp32, bf16 or auto", s)
}

// PrecisionChoice is a Precision resolved on this CPU: whether bf16 runs,
// and why, in words for a timing summary.
type PrecisionChoice struct {
	BF16   bool
	Reason string // e.g. "auto: no AMX on this CPU (oneDNN ISA avx512_core_bf16)"
}

// String returns "bf16" or "fp32".
func (c PrecisionChoice) String() string {
	if c.BF16 {
		return string(PrecisionBF16)
	}
	return string(PrecisionFP32)
}

// Resolve decides p on this CPU (see CPU). It fails for PrecisionBF16 on a
// CPU where oneDNN has no bf16 convolution (the error wraps
// ErrBF16Unsupported) and for an unknown value.
func (p Precision) Resolve() (PrecisionChoice, error) { return p.resolveOn(CPU()) }

// resolveOn is Resolve on the CPU c describes.
func (p Precision) resolveOn(c CPUInfo) (PrecisionChoice, error) {
	switch p {
	case "", PrecisionFP32:
		return PrecisionChoice{Reason: "asked for"}, nil
	case PrecisionBF16:
		if !c.BF16 {
			return PrecisionChoice{}, fmt.Errorf("nn: precision bf16: %w; this CPU has none (oneDNN ISA %s): use fp32 or auto", ErrBF16Unsupported, c.ISA)
		}
		return PrecisionChoice{BF16: true, Reason: "asked for; " + bf16Kind(c)}, nil
	case PrecisionAuto:
		switch {
		case c.AMXInUse() && c.BF16:
			return PrecisionChoice{BF16: true, Reason: "auto: this CPU has AMX (oneDNN ISA " + c.ISA + ")"}, nil
		case c.AMX && c.BF16:
			return PrecisionChoice{Reason: "auto: " + bf16Kind(c) + "; bf16 only if asked for"}, nil
		case c.BF16:
			return PrecisionChoice{Reason: "auto: no AMX on this CPU (" + bf16Kind(c) + "; bf16 only if asked for)"}, nil
		}
		return PrecisionChoice{Reason: "auto: no bf16 on this CPU (oneDNN ISA " + c.ISA + ")"}, nil
	}
	return PrecisionChoice{}, fmt.Errorf("nn: precision %q: want fp32, bf16 or auto", string(p))
}

// bf16Kind says how this CPU runs bf16 convolutions.
func bf16Kind(c CPUInfo) string {
	switch {
	case c.AMXInUse():
		return "AMX tiles"
	case c.AMX:
		return "this CPU has AMX but oneDNN does not use it (oneDNN ISA " + c.ISA +
			": Linux refused the tile state, or ONEDNN_MAX_CPU_ISA caps it)"
	case c.AVX512BF16:
		return "AVX512-BF16 without AMX"
	}
	return "bf16 emulated on AVX-512"
}

// BF16Error returns why bf16 cannot run on this CPU, or nil if it can
// (BF16Supported). Tests skip their bf16 cases with it.
func BF16Error() error { return checkBF16() }

// ResolveTraining decides p for mixed-precision training on this CPU: as
// Resolve (auto is bf16 only with AMX), but bf16 needs the CPU's own bf16
// instructions (AVX512_BF16 or AMX): oneDNN's emulation on plain AVX-512
// is refused, with an error naming the CPU's ISA, before anything is built.
// With bf16 the Reason names the oneDNN kernels of a probe convolution's
// forward, backward-data and backward-weights passes (BF16Kernels).
func (p Precision) ResolveTraining() (PrecisionChoice, error) {
	c, err := p.resolveTrainingOn(CPU())
	if err != nil || !c.BF16 {
		return c, err
	}
	k, err := BF16Kernels()
	if err != nil {
		return PrecisionChoice{}, fmt.Errorf("nn: precision bf16 for training: %w", err)
	}
	c.Reason += "; kernels " + k
	return c, nil
}

// resolveTrainingOn is ResolveTraining on the CPU c describes, without the
// kernel names.
func (p Precision) resolveTrainingOn(c CPUInfo) (PrecisionChoice, error) {
	if p == PrecisionBF16 && c.BF16 && !c.AVX512BF16 && !c.AMX {
		return PrecisionChoice{}, fmt.Errorf("nn: precision bf16 for training: %w; this CPU has no bf16 instructions (oneDNN ISA %s, AVX512_BF16 and AMX absent; only emulated bf16): use fp32 or auto", ErrBF16Unsupported, c.ISA)
	}
	ch, err := p.resolveOn(c)
	if err != nil {
		return ch, fmt.Errorf("%w (training)", err)
	}
	if ch.BF16 {
		ch.Reason += " (oneDNN ISA " + c.ISA + ")"
	}
	return ch, nil
}

// BF16Kernels names the oneDNN kernels that run a bf16 3x3 convolution,
// 64 -> 64 channels on 14x14, in nChw16c (a ResNet res2 layer as training
// builds it) on this CPU, e.g. "forward brgconv:avx512_core_bf16, backward
// data jit_bf16:avx512_core_bf16, backward weights
// jit_bf16:avx512_core_bf16". It fails where bf16 does not run
// (BF16Supported).
func BF16Kernels() (string, error) {
	if err := checkBF16(); err != nil {
		return "", err
	}
	g, err := newConvGeom("BF16Kernels", []int{1, 64, 14, 14}, []int{64, 64, 3, 3},
		ConvOpts{Pad: [2]int{1, 1}, BF16: true, BlockedIn: true, BlockedOut: true})
	if err != nil {
		return "", err
	}
	var names [3]string
	for i, kind := range []int{dnnlFwd, dnnlBwdData, dnnlBwdWeights} {
		if names[i], err = (dnnlConv{kind: kind, geom: g}).impl(); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("forward %s, backward data %s, backward weights %s", names[0], names[1], names[2]), nil
}
