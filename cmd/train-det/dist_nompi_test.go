//go:build !mpi

package main

import (
	"strings"
	"testing"
)

// TestStartDistWithoutMPI checks that a binary built without the mpi tag
// trains alone outside mpirun and, started by mpirun, refuses with a
// message saying how to build with MPI.
func TestStartDistWithoutMPI(t *testing.T) {
	for _, v := range []string{"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"} {
		t.Setenv(v, "")
	}
	if c, err := startDist(); c != nil || err != nil {
		t.Errorf("outside mpirun: %v, %v; want nil, nil (train alone)", c, err)
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
	c, err := startDist()
	if c != nil || err == nil || !strings.Contains(err.Error(), "go build -tags mpi") {
		t.Errorf("under mpirun without the mpi tag: %v, %v; want an error saying to build with -tags mpi", c, err)
	}
}
