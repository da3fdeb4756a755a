package nn

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"testing"
)

// signalChildEnv makes the test binary run TestGEMMUnderCPUProfiler's child
// side: the calls under Go's CPU profiler, in their own process because
// without rd_sig_block they abort it.
const signalChildEnv = "RESDET_SIGNAL_TEST_CHILD"

// TestGEMMUnderCPUProfiler runs oneDNN's GEMM kernels on two OpenMP threads
// while Go's CPU profiler sends SIGPROF (at 1 kHz). oneDNN 2.6.3's kernels
// point rsp into the heap, so a signal arriving mid-call corrupted the heap
// until rd_sig_block: glibc aborted the child in the first two cases (2 runs
// of 2) and in the third in 1 run of 2. The child checks every result
// against a float64 matrix multiply; the parent checks that the child exits
// cleanly. Case names give m x k x n.
func TestGEMMUnderCPUProfiler(t *testing.T) {
	cases := []struct {
		name           string
		transA, transB bool
		m, n, k, calls int
	}{
		// The box head's shapes scaled down: 256 RoIs, 2048 -> 256 features.
		{name: "linear_256x2048x256", transB: true, m: 256, n: 256, k: 2048, calls: 20},
		// Linear's input gradient (dX = dY·W), no transposition.
		{name: "dx_256x2048x256", m: 256, n: 256, k: 2048, calls: 20},
		// Its weight gradient (dW = dYᵀ·X).
		{name: "dw_256x2048x256", transA: true, m: 256, n: 256, k: 2048, calls: 20},
	}
	if c := os.Getenv(signalChildEnv); c != "" {
		for _, tc := range cases {
			if tc.name == c {
				signalChild(t, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.calls)
				return
			}
		}
		t.Fatalf("%s=%q: no such case", signalChildEnv, c)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestGEMMUnderCPUProfiler$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), signalChildEnv+"="+tc.name, ThreadsEnv+"=2")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if err != nil || !bytes.Contains(out.Bytes(), []byte("signal child: ok")) {
				t.Fatalf("child process: %v\n%s", err, out.Bytes())
			}
		})
	}
}

// signalChild runs calls sgemms of the given shape with Threads() = 2 under
// the CPU profiler and compares each result with a float64 reference.
func signalChild(t *testing.T, transA, transB bool, m, n, k, calls int) {
	if Threads() != 2 {
		t.Fatalf("Threads() = %d, want 2 (%s)", Threads(), ThreadsEnv)
	}
	rng := rand.New(rand.NewSource(1))
	a := make([]float32, m*k)
	b := make([]float32, k*n)
	for i := range a {
		a[i] = float32(rng.NormFloat64())
	}
	for i := range b {
		b[i] = float32(rng.NormFloat64())
	}
	// Element (i, j) of op(A) and op(B), and their leading dimensions.
	lda, ldb := k, n
	at := func(i, p int) float32 { return a[i*k+p] }
	if transA {
		lda = m
		at = func(i, p int) float32 { return a[p*m+i] }
	}
	bt := func(p, j int) float32 { return b[p*n+j] }
	if transB {
		ldb = k
		bt = func(p, j int) float32 { return b[j*k+p] }
	}
	want := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(at(i, p)) * float64(bt(p, j))
			}
			want[i*n+j] = s
		}
	}
	// 1 kHz instead of pprof's 100 Hz: more signals per call. pprof's own
	// SetCPUProfileRate(100) then only prints a warning.
	runtime.SetCPUProfileRate(1000)
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Fatal(err)
	}
	defer pprof.StopCPUProfile()
	c := make([]float32, m*n)
	for call := 0; call < calls; call++ {
		if err := sgemm(transA, transB, m, n, k, 1, a, lda, b, ldb, 0, c, n); err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			if d := math.Abs(float64(c[i]) - w); !(d <= 1e-5*math.Sqrt(float64(k))*(1+math.Abs(w))) {
				t.Fatalf("call %d: c[%d] = %g, want %g", call, i, c[i], w)
			}
		}
	}
	fmt.Println("signal child: ok")
}
