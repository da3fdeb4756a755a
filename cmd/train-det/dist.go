package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"resdet/detection"
	"resdet/internal/mpi"
)

// failAtEnv names the fault-injection variable of the data-parallel tests:
// "RANK:ITER" makes process RANK exit with status 3 (without ending MPI)
// after iteration ITER, as a process that dies does.
const failAtEnv = "RESDET_FAIL_AT"

// startDist joins the MPI job when mpirun (or another MPI launcher)
// started the process: it returns the world communicator, or nil to train
// in this process alone. A binary built without the mpi tag returns an
// error saying how to build one with it.
func startDist() (*mpi.Comm, error) {
	if !mpi.UnderLauncher() {
		return nil, nil
	}
	c, err := mpi.Init()
	if err != nil {
		return nil, fmt.Errorf("started by an MPI launcher: %w", err)
	}
	return c, nil
}

// failAt returns the OnStep function injecting the failure RESDET_FAIL_AT
// asks of this rank (nil if none), or an error for a malformed value.
func failAt(rank int, errOut io.Writer) (func(int, detection.Losses), error) {
	v := os.Getenv(failAtEnv)
	if v == "" {
		return nil, nil
	}
	rs, is, ok := strings.Cut(v, ":")
	r, err1 := strconv.Atoi(rs)
	it, err2 := strconv.Atoi(is)
	if !ok || err1 != nil || err2 != nil || r < 0 || it < 1 {
		return nil, fmt.Errorf("%s=%q: want RANK:ITERATION, e.g. 1:3", failAtEnv, v)
	}
	if r != rank {
		return nil, nil
	}
	return func(i int, _ detection.Losses) {
		if i == it {
			fmt.Fprintf(errOut, "train-det: process %d: exiting after iteration %d (%s)\n", rank, i, failAtEnv)
			os.Exit(3)
		}
	}, nil
}
