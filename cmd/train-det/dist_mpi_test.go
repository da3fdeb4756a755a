//go:build mpi

package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"resdet/train"
	"resdet/weights"
)

// mpirunPath returns mpirun, skipping the test when it is missing (failing
// with RESDET_REQUIRE_MPI=1).
func mpirunPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("mpirun")
	if err != nil {
		if os.Getenv("RESDET_REQUIRE_MPI") == "1" {
			t.Fatalf("mpirun not found and RESDET_REQUIRE_MPI=1: %v (Debian: apt-get install openmpi-bin libopenmpi-dev)", err)
		}
		t.Skipf("mpirun not found (%v): install openmpi-bin and libopenmpi-dev, or set RESDET_REQUIRE_MPI=1 to fail", err)
	}
	return p
}

// buildTrainDet builds this command with the mpi tag into dir.
func buildTrainDet(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "train-det")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "build", "-tags", "mpi", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -tags mpi: %v\n%s", err, out)
	}
	return bin
}

// mpiRun runs bin with args on np processes and returns the combined
// output and the error of mpirun.
func mpiRun(t *testing.T, mpirun string, np int, env []string, bin string, args ...string) (string, error) {
	t.Helper()
	argv := append([]string{"--oversubscribe", "--allow-run-as-root", "-np", fmt.Sprint(np), bin}, args...)
	cmd := exec.Command(mpirun, argv...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// runLosses reads the total and the four losses of every iteration of a
// run's metrics.jsonl.
func runLosses(t *testing.T, dir string) map[int][5]float64 {
	t.Helper()
	ms, err := train.ReadMetrics(train.RunDir(dir).Metrics())
	if err != nil {
		t.Fatal(err)
	}
	out := map[int][5]float64{}
	for _, m := range ms {
		if _, dup := out[m.Iter]; dup {
			t.Errorf("%s: iteration %d logged twice", dir, m.Iter)
		}
		out[m.Iter] = [5]float64{m.Loss, m.Objectness, m.RPNBoxReg, m.Classifier, m.BoxReg}
	}
	return out
}

// lossDiff returns the worst relative difference of the losses of
// iterations from..to, failing the test for a missing iteration.
func lossDiff(t *testing.T, got, want map[int][5]float64, from, to int) float64 {
	t.Helper()
	worst := 0.0
	for it := from; it <= to; it++ {
		g, okg := got[it]
		w, okw := want[it]
		if !okg || !okw {
			t.Fatalf("iteration %d missing from the metrics (%v, %v)", it, okg, okw)
		}
		for i := range g {
			d := math.Abs(g[i]-w[i]) / max(math.Abs(w[i]), 1e-12)
			if !(d <= worst) {
				worst = d
			}
		}
	}
	return worst
}

// weightDiff returns the worst |a-b| of two weight files, relative to each
// tensor's largest |b| (at least 1), and the tensor.
func weightDiff(t *testing.T, a, b string) (float64, string) {
	t.Helper()
	sa, _, err := weights.ReadSafetensors(a)
	if err != nil {
		t.Fatal(err)
	}
	sb, _, err := weights.ReadSafetensors(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(sa) != len(sb) {
		t.Fatalf("%s has %d tensors, %s %d", a, len(sa), b, len(sb))
	}
	worst, where := 0.0, ""
	for name, tb := range sb {
		ta := sa[name]
		if len(ta.Data) != len(tb.Data) {
			t.Fatalf("tensor %s: %d values in %s, %d in %s", name, len(ta.Data), a, len(tb.Data), b)
		}
		scale := 1.0
		for _, v := range tb.Data {
			scale = max(scale, math.Abs(float64(v)))
		}
		for i := range tb.Data {
			if d := math.Abs(float64(ta.Data[i])-float64(tb.Data[i])) / scale; !(d <= worst) {
				worst, where = d, name
			}
		}
	}
	return worst, where
}

// TestMPIDataParallel runs train-det under mpirun on a tiny synthetic set
// (R18-C4, images of different sizes, batches of 3 images: shards of 1
// and 2 images): 2 processes against 1 process training the same global
// batches (every iteration's losses within 1e-5 relative, final weights
// within 1e-5); then a run whose process 1 dies after iteration 3 (the
// job stops with an error, only complete checkpoints remain) and its
// --resume under mpirun, which must reach the uninterrupted run's losses.
func TestMPIDataParallel(t *testing.T) {
	mpirun := mpirunPath(t)
	tmp := t.TempDir()
	bin := buildTrainDet(t, tmp)
	data := filepath.Join(tmp, "data")
	if out, err := exec.Command(bin, "synth", "--out", data, "--images", "10", "--size", "96x96", "--size-jitter", "0.3",
		"--max-objects", "2", "--tiny", "0", "--truncated", "0", "--seed", "7", "--workers", "1").CombinedOutput(); err != nil {
		t.Fatalf("synth: %v\n%s", err, out)
	}
	args := strings.Fields("--arch r18-c4 --norm frozen --freeze-at 2 --min-size 96 --max-size 160 --anchor-sizes 24,48,96 " +
		"--rois-per-image 32 --roi-size 7 --iters 4 --lr 0.02 --warmup 2 --batch 3 --log-every 1 --checkpoint-every 2 --threads 1 --workers 1")
	args = append(args, "--data", data)
	run := func(name string, np int, env []string, extra ...string) (string, string, error) {
		dir := filepath.Join(tmp, name)
		out, err := mpiRun(t, mpirun, np, env, bin, append(append([]string{"--out", dir}, args...), extra...)...)
		return dir, out, err
	}

	one, out, err := run("np1", 1, nil)
	if err != nil {
		t.Fatalf("mpirun -np 1: %v\n%s", err, out)
	}
	two, out, err := run("np2", 2, nil)
	if err != nil {
		t.Fatalf("mpirun -np 2: %v\n%s", err, out)
	}
	if !strings.Contains(out, "on 2 processes") || strings.Count(out, "trained 4 iterations") != 1 {
		t.Errorf("mpirun -np 2 output does not show one summary of a 2-process run:\n%s", out)
	}
	want := runLosses(t, one)
	ld := lossDiff(t, runLosses(t, two), want, 1, 4)
	wd, where := weightDiff(t, train.RunDir(two).Final(), train.RunDir(one).Final())
	t.Logf("2 processes vs 1: worst relative loss difference %.3g over 4 iterations, worst final weight difference %.3g (%s)", ld, wd, where)
	if !(ld <= 1e-5) || !(wd <= 1e-5) {
		t.Errorf("2 processes vs 1: losses differ by %.3g, weights by %.3g (%s); want <= 1e-5", ld, wd, where)
	}

	killed, out, err := run("killed", 2, []string{failAtEnv + "=1:3"})
	if err == nil {
		t.Fatalf("a run whose process 1 exits after iteration 3 succeeded:\n%s", out)
	}
	if !strings.Contains(out, "process 1: exiting after iteration 3") || !strings.Contains(out, "exited") {
		t.Errorf("the killed run's output does not say which process stopped:\n%s", out)
	}
	t.Logf("killed run: %v; mpirun said:\n%s", err, lastLines(out, 8))
	if _, err := os.Stat(train.RunDir(killed).Final()); err == nil {
		t.Errorf("the killed run wrote %s", train.RunDir(killed).Final())
	}
	ck, err := train.RunDir(killed).Checkpoints()
	if err != nil || len(ck) != 1 || ck[0].Iter != 2 {
		t.Fatalf("killed run's checkpoints %+v (%v), want the one of iteration 2", ck, err)
	}
	ents, err := os.ReadDir(train.RunDir(killed).CheckpointsDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != filepath.Base(ck[0].Path) && !strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("checkpoints/ holds %s besides the complete %s", e.Name(), ck[0].Path)
		}
	}

	out, err = mpiRun(t, mpirun, 2, nil, bin, "--out", killed, "--resume")
	if err != nil {
		t.Fatalf("mpirun -np 2 --resume: %v\n%s", err, out)
	}
	resumed := runLosses(t, killed)
	ld = lossDiff(t, resumed, runLosses(t, two), 1, 4)
	t.Logf("resumed after the kill vs uninterrupted (2 processes): worst relative loss difference %.3g", ld)
	if !(ld <= 1e-5) {
		t.Errorf("resumed run's losses differ from the uninterrupted run's by %.3g, want <= 1e-5", ld)
	}
	if len(resumed) != 4 {
		t.Errorf("metrics.jsonl of the resumed run has %d iterations, want 4", len(resumed))
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
