// Package nn holds neural-network operations for gorgonia graphs.
//
// # Profiling
//
// Go's CPU profiler (go test -cpuprofile, pprof.StartCPUProfile) works with
// any Threads(). Before sgemm blocked signals, it aborted the process with a
// glibc heap-corruption message ("corrupted size vs. prev_size while
// consolidating") as soon as a Linear layer ran on two or more threads, e.g.
// checkpoint's BenchmarkDetectFPN with RESDET_THREADS=2 (6 runs of 6, in the
// box head's Linear layers, after the first image's last convolution; 3 of 3
// clean since). The bug is oneDNN 2.6.3's, not ours and not Go's: its f32 GEMM
// kernels (dnnl_sgemm) move rsp into a heap-allocated workspace while they
// run, so the kernel writes the frame of any signal arriving then (SIGPROF
// here) over heap memory. Evidence: gdb stops on SIGPROF in the JIT code
// with rsp inside [heap] (calling thread) or a glibc thread arena (OpenMP
// worker); the abort is in free() on an OpenMP worker inside libdnnl; a C
// program with no Go calling dnnl_sgemm (1000x1024x12544, 2 threads) under
// setitimer(ITIMER_PROF) with an empty handler aborts with the same message,
// and runs clean on 1 thread (rsp stays on the stack there) or without the
// timer. Our own cgo code came out clean: go test -asan of nn's convolution
// and linear tests and of BenchmarkDetectFPN (2 threads), and
// GOEXPERIMENT=cgocheck2 BenchmarkDetectFPN under the profiler, reported
// nothing. oneDNN fixed it upstream (issue 4845, pull request 4855). Our
// mitigation: sgemm blocks the asynchronous signals on the engine lane and
// its OpenMP team for each call (rd_sig_block in dnnl.go;
// TestGEMMUnderCPUProfiler fails without it).
//
// Costs of the mitigation: a profile samples each sgemm call at most once
// per thread (its time shows up short), and each call pays two OpenMP
// parallel regions and two sigprocmask calls (15-41 us per call measured in
// C on one loaded core; expect less on idle cores). For sgemm time use perf
// (perf record -g sends no signals). Convolutions are not blocked: oneDNN's
// gemm-based convolutions ("x64:gemm:jit", picked for grouped or
// odd-channel shapes) showed no corruption in 5 shape and direction pairs,
// 30 calls each under a 1 kHz profiler on two threads, and the FPN
// detector's convolutions are all direct JIT kernels. Should a profile abort
// in a convolution, block signals around rd_exec the same way.
package nn

import (
	// gorgonia v0.9.18 panics at start-up on Go 1.26 unless this module is at
	// its latest version; importing it directly keeps `go mod tidy` from
	// dropping the upgrade.
	_ "go4.org/unsafe/assume-no-moving-gc"
)
