//go:build 386 || amd64

package nn

/*
#include <cpuid.h>

// rd_cpu_flags sets the AVX-512 Foundation, AVX512_BF16 and AMX (AMX-TILE
// and AMX-BF16) flags of cpuid leaf 7, each only if XCR0 shows that the
// operating system saves the state it needs (opmask and ZMM registers:
// bits 5-7; tile configuration and data: bits 17-18).
static void rd_cpu_flags(int *avx512, int *avx512bf16, int *amx) {
	unsigned a, b, c, d, max7;
	*avx512 = *avx512bf16 = *amx = 0;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return; // OSXSAVE
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	unsigned long long xcr0 = ((unsigned long long)hi << 32) | lo;
	int zmm = (xcr0 & 0xe6) == 0xe6; // SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM
	int tiles = (xcr0 & 0x60000) == 0x60000;
	if (!__get_cpuid_count(7, 0, &max7, &b, &c, &d)) return;
	*avx512 = zmm && (b & (1u << 16));
	*amx = tiles && (d & (1u << 24)) && (d & (1u << 22));
	if (max7 >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) *avx512bf16 = *avx512 && (a & (1u << 5));
}
*/
import "C"

// cpuFlags returns the AVX-512, AVX512_BF16 and AMX flags (see CPUInfo).
func cpuFlags() (avx512, avx512bf16, amx bool) {
	var a, b, m C.int
	C.rd_cpu_flags(&a, &b, &m)
	return a != 0, b != 0, m != 0
}
