// Package mpi is a small binding to MPI (Open MPI) for data-parallel
// training: Init and Finalize, the rank and size of MPI_COMM_WORLD,
// in-place all-reduce (sum) of float32 and float64 buffers, broadcast,
// barrier and abort.
//
// The binding uses cgo and libmpi, so it is built only with the build tag
// mpi (go build -tags mpi; Debian: apt-get install libopenmpi-dev
// openmpi-bin). Without the tag the package has the same API but Init
// returns an error saying how to enable MPI; a default go build needs
// neither cgo MPI nor Open MPI.
//
// The world communicator's error handler is MPI_ERRORS_RETURN, so a failed
// collective (e.g. a peer that died) returns an error instead of aborting
// the process, where Open MPI reports it; mpirun also ends the whole job
// when one process exits without Finalize.
//
// UnderLauncher tells whether the process was started by mpirun (or
// another PMI launcher): a program calls Init only then, and behaves as a
// single process otherwise.
package mpi
