package nn

/*
#cgo LDFLAGS: -ldnnl
#include <dnnl.h>

static int rd_effective_isa(void) { return (int)dnnl_get_effective_cpu_isa(); }

// rd_probe asks oneDNN for a forward convolution 64 -> 64 channels, 3x3, on
// 14x14 (a ResNet layer1 convolution), with bf16 or float32 source and
// weights and layouts left to oneDNN. It returns the status and, if block is
// not NULL, the channel block of the source layout oneDNN picks (0 if it is
// not a single channel block).
static int rd_probe(int bf16, int *block) {
	dnnl_engine_t eng;
	dnnl_status_t s = dnnl_engine_create(&eng, dnnl_cpu, 0);
	if (s != dnnl_success) return s;
	dnnl_dims_t xd = {1, 64, 14, 14}, wd = {64, 64, 3, 3}, stride = {1, 1}, pad = {1, 1};
	dnnl_data_type_t lt = bf16 ? dnnl_bf16 : dnnl_f32;
	dnnl_memory_desc_t x, w, y;
	dnnl_convolution_desc_t cd;
	dnnl_primitive_desc_t pd = NULL;
	if ((s = dnnl_memory_desc_init_by_tag(&x, 4, xd, lt, dnnl_format_tag_any))) goto out;
	if ((s = dnnl_memory_desc_init_by_tag(&w, 4, wd, lt, dnnl_format_tag_any))) goto out;
	if ((s = dnnl_memory_desc_init_by_tag(&y, 4, xd, dnnl_f32, dnnl_format_tag_any))) goto out;
	if ((s = dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct,
			&x, &w, NULL, &y, stride, pad, pad))) goto out;
	if ((s = dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL))) goto out;
	if (block) {
		const dnnl_memory_desc_t *src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
		*block = 0;
		if (src && src->format_kind == dnnl_blocked && src->format_desc.blocking.inner_nblks == 1 &&
				src->format_desc.blocking.inner_idxs[0] == 1)
			*block = (int)src->format_desc.blocking.inner_blks[0];
	}
out:
	if (pd) dnnl_primitive_desc_destroy(pd);
	dnnl_engine_destroy(eng);
	return s;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
)

// CPUInfo describes what this CPU offers the convolution engine. It is
// determined once per process (see CPU).
type CPUInfo struct {
	// ISA is the instruction set oneDNN dispatches to on this CPU
	// (dnnl_get_effective_cpu_isa), e.g. "avx2" or "avx512_core_amx".
	ISA string
	// AVX512, AVX512BF16 and AMX are the CPU's flags as reported by cpuid,
	// each counted only if the operating system saves the registers it needs
	// (XCR0): AVX-512 Foundation, the AVX512_BF16 instructions, and AMX tiles
	// with bf16 (AMX-TILE and AMX-BF16). All false on non-x86 CPUs.
	AVX512, AVX512BF16, AMX bool
	// BF16 says oneDNN implements the bf16 forward convolution (ConvOpts.BF16)
	// here: it is asked to create one. oneDNN 2.x does so on every CPU with
	// AVX-512 (natively with AVX512_BF16 or AMX, emulated otherwise) and on
	// none without.
	BF16 bool
	// Block is the channel block of the blocked layout (ConvOpts.BlockedIn,
	// ToBlocked) on this CPU: the block of the activation layout oneDNN's
	// float32 convolution picks, 16 (nChw16c) with AVX-512 and 8 (nChw8c)
	// with AVX2.
	Block int
}

// ErrBF16Unsupported is wrapped by the error of building a bf16 convolution
// (ConvOpts.BF16) on a CPU without it (see BF16Supported).
var ErrBF16Unsupported = errors.New("bf16 convolution needs a CPU with AVX-512 (emulated bf16), AVX512-BF16 or AMX")

var (
	cpuOnce sync.Once
	cpuInfo CPUInfo
)

// CPU reports this CPU's features as the convolution engine sees them. The
// first call asks cpuid and oneDNN; later calls return the same value.
func CPU() CPUInfo {
	cpuOnce.Do(func() {
		cpuInfo = CPUInfo{Block: convBlockDefault}
		cpuInfo.AVX512, cpuInfo.AVX512BF16, cpuInfo.AMX = cpuFlags()
		cpuInfo.ISA = dnnlISAName(int(C.rd_effective_isa()))
		cpuInfo.BF16 = C.rd_probe(1, nil) == C.dnnl_success
		var b C.int
		if C.rd_probe(0, &b) == C.dnnl_success && (b == 8 || b == 16) {
			cpuInfo.Block = int(b)
		}
	})
	return cpuInfo
}

// BF16Supported reports whether ConvOpts.BF16 works on this CPU. Without
// it, building a bf16 convolution fails with an error saying so.
func BF16Supported() bool { return CPU().BF16 }

// AMXInUse reports whether oneDNN runs its AMX kernels here: the CPU has
// AMX (c.AMX) and oneDNN's effective ISA is avx512_core_amx. oneDNN counts
// AMX only once Linux has granted the process the tile-data state
// (arch_prctl ARCH_REQ_XCOMP_PERM, which oneDNN 2.6 requests itself), and
// ONEDNN_MAX_CPU_ISA can cap it below AMX; in either case a bf16
// convolution runs the AVX512-BF16 (or emulated) kernels instead.
func (c CPUInfo) AMXInUse() bool { return c.AMX && c.ISA == "avx512_core_amx" }

// AMXSupported reports whether oneDNN runs its AMX kernels on this CPU
// (CPUInfo.AMXInUse): what Precision auto decides on.
func AMXSupported() bool { return CPU().AMXInUse() }

// checkBF16 returns the error of a bf16 convolution on a CPU without it.
func checkBF16() error {
	if c := CPU(); !c.BF16 {
		return fmt.Errorf("%w; this CPU has none (oneDNN ISA %s)", ErrBF16Unsupported, c.ISA)
	}
	return nil
}

// dnnlISAName names a dnnl_cpu_isa_t value as oneDNN's documentation does.
func dnnlISAName(isa int) string {
	switch isa {
	case C.dnnl_cpu_isa_sse41:
		return "sse41"
	case C.dnnl_cpu_isa_avx:
		return "avx"
	case C.dnnl_cpu_isa_avx2:
		return "avx2"
	case C.dnnl_cpu_isa_avx2_vnni:
		return "avx2_vnni"
	case C.dnnl_cpu_isa_avx512_mic:
		return "avx512_mic"
	case C.dnnl_cpu_isa_avx512_mic_4ops:
		return "avx512_mic_4ops"
	case C.dnnl_cpu_isa_avx512_core:
		return "avx512_core"
	case C.dnnl_cpu_isa_avx512_core_vnni:
		return "avx512_core_vnni"
	case C.dnnl_cpu_isa_avx512_core_bf16:
		return "avx512_core_bf16"
	case C.dnnl_cpu_isa_avx512_core_amx:
		return "avx512_core_amx"
	}
	return fmt.Sprintf("isa 0x%x", isa)
}
