package nn

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// ThreadsEnv is the environment variable that sets the default thread count.
const ThreadsEnv = "RESDET_THREADS"

var (
	threadsOnce sync.Once
	threadsN    atomic.Int64
)

// ThreadsFromEnv parses RESDET_THREADS. It returns 0 and no error when the
// variable is unset or empty, and an error naming the variable when it is not
// a positive integer.
func ThreadsFromEnv() (int, error) {
	s := os.Getenv(ThreadsEnv)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("nn: %s=%q: want a positive integer", ThreadsEnv, s)
	}
	return n, nil
}

// SetThreads sets the number of threads used by heavy ops (oneDNN's OpenMP
// team and the Go-side parallel loops). SetThreads panics if n < 1.
func SetThreads(n int) {
	if n < 1 {
		panic(fmt.Sprintf("nn: SetThreads(%d): want n >= 1", n))
	}
	threadsOnce.Do(func() {})
	threadsN.Store(int64(n))
}

// Threads returns the number of threads used by heavy ops: the value last
// given to SetThreads, else RESDET_THREADS if it is a positive integer, else
// runtime.NumCPU().
func Threads() int {
	threadsOnce.Do(func() {
		n, err := ThreadsFromEnv()
		if err != nil || n == 0 {
			n = runtime.NumCPU()
		}
		threadsN.Store(int64(n))
	})
	return int(threadsN.Load())
}

// parallelFor calls f(lo, hi) on about Threads() disjoint chunks covering
// [0, n) and waits for them.
func parallelFor(n int, f func(lo, hi int)) {
	t := Threads()
	if t > n {
		t = n
	}
	if t <= 1 {
		if n > 0 {
			f(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < t; i++ {
		lo, hi := i*n/t, (i+1)*n/t
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}
