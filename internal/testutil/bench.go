package testutil

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// CPUSeconds returns the process's user+system CPU time in seconds, all
// threads together (less sensitive to other processes on the machine than
// wall time).
func CPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// PeakRSSMB returns the process's peak resident set size (VmHWM in
// /proc/self/status) in MiB, as torch's resource.getrusage ru_maxrss / 1024
// gives it, or 0 where /proc is not available.
func PeakRSSMB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// ReportRun adds a benchmark's resource metrics after its timed loop (call
// b.StopTimer first): CPU-s/op (CPUSeconds since cpu0, taken when the timer
// started, per iteration), peak-RSS-MB (PeakRSSMB: run one benchmark per
// process to read it as that benchmark's) and, with flops > 0 (FLOPs of one
// iteration), GFLOP/s over the wall time.
func ReportRun(b *testing.B, cpu0, flops float64) {
	b.ReportMetric((CPUSeconds()-cpu0)/float64(b.N), "CPU-s/op")
	b.ReportMetric(PeakRSSMB(), "peak-RSS-MB")
	if s := b.Elapsed().Seconds(); flops > 0 && s > 0 {
		b.ReportMetric(flops*float64(b.N)/s/1e9, "GFLOP/s")
	}
}
