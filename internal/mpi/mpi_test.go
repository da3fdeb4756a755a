//go:build mpi

package mpi

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// childEnv makes the test binary run as one rank of TestCollectives.
const childEnv = "RESDET_MPI_TEST_CHILD"

// TestMain runs the rank's part when mpirun started the test binary with
// childEnv set, else the tests.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := child(os.Getenv(childEnv)); err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child checks the collectives on this rank and prints "ok RANK"; with
// mode "bench" it also times all-reduces of n float64 values.
func child(mode string) error {
	c, err := Init()
	if err != nil {
		return err
	}
	defer Finalize()
	r, n := c.Rank(), c.Size()
	if want, _ := strconv.Atoi(os.Getenv("OMPI_COMM_WORLD_SIZE")); want != n {
		return fmt.Errorf("size %d, mpirun says %d", n, want)
	}
	f32 := []float32{float32(r), 1, 0.5 * float32(r+1)}
	if err := c.AllReduceFloat32(f32); err != nil {
		return err
	}
	tri := float32(n * (n - 1) / 2)
	if f32[0] != tri || f32[1] != float32(n) || f32[2] != 0.5*(tri+float32(n)) {
		return fmt.Errorf("rank %d: float32 all-reduce %v", r, f32)
	}
	f64 := []float64{float64(r) + 0x1p-40, 2} // exact sums, lost in float32
	if err := c.AllReduceFloat64(f64); err != nil {
		return err
	}
	if f64[0] != float64(tri)+float64(n)*0x1p-40 || f64[1] != 2*float64(n) {
		return fmt.Errorf("rank %d: float64 all-reduce %v", r, f64)
	}
	b := []byte("xxxxx")
	if r == n-1 {
		copy(b, "hello")
	}
	if err := c.Bcast(b, n-1); err != nil {
		return err
	}
	if string(b) != "hello" {
		return fmt.Errorf("rank %d: broadcast gave %q", r, b)
	}
	if err := c.Bcast(b, n); err == nil {
		return fmt.Errorf("broadcast from rank %d of %d accepted", n, n)
	}
	if err := c.Barrier(); err != nil {
		return err
	}
	if strings.HasPrefix(mode, "bench:") {
		size, _ := strconv.Atoi(strings.TrimPrefix(mode, "bench:"))
		buf := make([]float64, size) // float64, as train's fused gradient buffer
		for i := range buf {
			buf[i] = 1
		}
		c.AllReduceFloat64(buf) // warm-up
		const reps = 3
		start := time.Now()
		for range reps {
			if err := c.AllReduceFloat64(buf); err != nil {
				return err
			}
		}
		if r == 0 {
			d := time.Since(start) / reps
			fmt.Printf("allreduce %d float64 on %d ranks: %v (algorithm bandwidth %.2f GB/s)\n", size, n, d, float64(8*size)/d.Seconds()/1e9)
		}
	}
	fmt.Printf("ok %d\n", r)
	return nil
}

func mpirun(t *testing.T, np int, mode string) string {
	t.Helper()
	p, err := exec.LookPath("mpirun")
	if err != nil {
		if os.Getenv("RESDET_REQUIRE_MPI") == "1" {
			t.Fatalf("mpirun not found and RESDET_REQUIRE_MPI=1: %v", err)
		}
		t.Skipf("mpirun not found (%v): install openmpi-bin and libopenmpi-dev, or set RESDET_REQUIRE_MPI=1 to fail", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p, "--oversubscribe", "--allow-run-as-root", "-np", fmt.Sprint(np), self)
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("mpirun -np %d: %v\n%s", np, err, out.String())
	}
	return out.String()
}

// TestCollectives runs the test binary on 1, 2 and 3 ranks; each rank
// checks the sums, the broadcast and the barrier (see child).
func TestCollectives(t *testing.T) {
	for _, np := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(np), func(t *testing.T) {
			out := mpirun(t, np, "check")
			for r := range np {
				if !strings.Contains(out, fmt.Sprintf("ok %d\n", r)) {
					t.Errorf("rank %d did not finish:\n%s", r, out)
				}
			}
		})
	}
}

// TestAllReduceR101 times the all-reduce of R101-C4's 51,871,894
// learnable values (VOC, 20 classes) on 2 ranks when RESDET_MPI_BENCH=1;
// a timing, not a check: run it on an idle machine.
func TestAllReduceR101(t *testing.T) {
	if os.Getenv("RESDET_MPI_BENCH") != "1" {
		t.Skip("set RESDET_MPI_BENCH=1 to time the all-reduce of R101-C4's gradients")
	}
	t.Log(mpirun(t, 2, "bench:51871894"))
}
