package nn

// minPartElems is the smallest number of elements worth a goroutine of its
// own in the elementwise and reduction kernels.
const minPartElems = 1 << 14

// parts returns the number of parts to split n elements into: Threads(), or
// fewer when n is small.
func parts(n int) int {
	return max(1, min(Threads(), n/minPartElems))
}

// parallelParts splits [0, n) into np = parts(n) contiguous ranges and calls
// f(part, lo, hi) for each, concurrently, and waits. part is in [0, np), so
// callers can keep per-part partial results.
func parallelParts(n, np int, f func(part, lo, hi int)) {
	parallelFor(np, func(plo, phi int) {
		for p := plo; p < phi; p++ {
			f(p, p*n/np, (p+1)*n/np)
		}
	})
}
