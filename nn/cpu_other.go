//go:build !386 && !amd64

package nn

// cpuFlags returns the AVX-512, AVX512_BF16 and AMX flags: none off x86.
func cpuFlags() (avx512, avx512bf16, amx bool) { return false, false, false }
