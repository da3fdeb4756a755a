package testutil

import (
	"runtime"
	"testing"
)

// Touching 64 MiB must raise the peak RSS by about as much, and a busy loop
// must cost CPU time.
func TestResourceFigures(t *testing.T) {
	before := PeakRSSMB()
	if before <= 0 {
		t.Skip("no /proc/self/status VmHWM here")
	}
	buf := make([]byte, 64<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	after := PeakRSSMB()
	runtime.KeepAlive(buf)
	if after-before < 60 {
		t.Errorf("peak RSS %0.1f MiB -> %0.1f MiB after touching 64 MiB", before, after)
	}
	c0 := CPUSeconds()
	x := 0.0
	for i := 0; CPUSeconds()-c0 < 0.05 && i < 1e7; i++ {
		x += float64(i)
	}
	if d := CPUSeconds() - c0; d < 0.05 {
		t.Errorf("CPU time grew by %v s in a busy loop, want >= 0.05 (%v)", d, x)
	}
}
