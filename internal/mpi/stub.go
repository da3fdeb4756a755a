//go:build !mpi

package mpi

import "errors"

// Enabled reports whether the package was built with MPI (the mpi tag).
const Enabled = false

// ErrNotBuilt is returned by Init and every Comm method of a build
// without the mpi tag.
var ErrNotBuilt = errors.New("mpi: this binary was built without MPI: rebuild with `go build -tags mpi` (needs Open MPI: apt-get install libopenmpi-dev openmpi-bin)")

// Comm is MPI_COMM_WORLD of an initialised process; without the mpi
// build tag none exists (Init fails).
type Comm struct{}

// Init returns ErrNotBuilt: MPI needs the mpi build tag.
func Init() (*Comm, error) { return nil, ErrNotBuilt }

// Rank returns 0.
func (c *Comm) Rank() int { return 0 }

// Size returns 1.
func (c *Comm) Size() int { return 1 }

// AllReduceFloat32 returns ErrNotBuilt.
func (c *Comm) AllReduceFloat32([]float32) error { return ErrNotBuilt }

// AllReduceFloat64 returns ErrNotBuilt.
func (c *Comm) AllReduceFloat64([]float64) error { return ErrNotBuilt }

// Bcast returns ErrNotBuilt.
func (c *Comm) Bcast([]byte, int) error { return ErrNotBuilt }

// Barrier returns ErrNotBuilt.
func (c *Comm) Barrier() error { return ErrNotBuilt }

// Abort panics: without MPI there is no job to abort (Init never
// returns a Comm).
func (c *Comm) Abort(code int) { panic("mpi: Abort without MPI") }

// Finalize returns nil.
func Finalize() error { return nil }
