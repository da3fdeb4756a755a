//go:build mpi

package mpi

/*
#cgo pkg-config: ompi-c
#include <stdlib.h>
#include <mpi.h>

static int resdet_init(void) {
	int ok = 0;
	MPI_Initialized(&ok);
	if (ok) return MPI_SUCCESS;
	int rc = MPI_Init(NULL, NULL);
	if (rc != MPI_SUCCESS) return rc;
	return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}
static int resdet_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int resdet_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int resdet_allreduce_f32(float *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static int resdet_allreduce_f64(double *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
static int resdet_bcast(void *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_BYTE, root, MPI_COMM_WORLD);
}
static int resdet_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static int resdet_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static int resdet_finalize(void) {
	int done = 0;
	MPI_Finalized(&done);
	if (done) return MPI_SUCCESS;
	return MPI_Finalize();
}
static void resdet_error_string(int code, char *buf, int *n) {
	if (MPI_Error_string(code, buf, n) != MPI_SUCCESS) *n = 0;
}
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

// Enabled reports whether the package was built with MPI (the mpi tag).
const Enabled = true

// maxCount is the largest element count of one MPI call (an int).
const maxCount = math.MaxInt32

// Comm is MPI_COMM_WORLD of an initialised process. Its methods must be
// called from the goroutine that called Init (MPI_THREAD_SINGLE); Init
// locks that goroutine to its OS thread.
type Comm struct {
	rank, size int
}

// Init initialises MPI (MPI_Init; calling it again returns the same
// world), sets MPI_ERRORS_RETURN on the world communicator and returns it.
// It locks the calling goroutine to its OS thread.
func Init() (*Comm, error) {
	runtime.LockOSThread()
	if rc := C.resdet_init(); rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Init", rc)
	}
	var r, s C.int
	if rc := C.resdet_rank(&r); rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Comm_rank", rc)
	}
	if rc := C.resdet_size(&s); rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Comm_size", rc)
	}
	return &Comm{rank: int(r), size: int(s)}, nil
}

// Rank returns this process's rank in the world, 0..Size()-1.
func (c *Comm) Rank() int { return c.rank }

// Size returns the number of processes in the world.
func (c *Comm) Size() int { return c.size }

// AllReduceFloat32 replaces buf on every rank by the element-wise sum of
// every rank's buf (MPI_Allreduce, MPI_IN_PLACE). Every rank must pass a
// buffer of the same length.
func (c *Comm) AllReduceFloat32(buf []float32) error {
	for len(buf) > 0 {
		n := min(len(buf), maxCount)
		if rc := C.resdet_allreduce_f32((*C.float)(unsafe.Pointer(&buf[0])), C.int(n)); rc != C.MPI_SUCCESS {
			return mpiError("MPI_Allreduce", rc)
		}
		buf = buf[n:]
	}
	return nil
}

// AllReduceFloat64 is AllReduceFloat32 for float64 values.
func (c *Comm) AllReduceFloat64(buf []float64) error {
	for len(buf) > 0 {
		n := min(len(buf), maxCount)
		if rc := C.resdet_allreduce_f64((*C.double)(unsafe.Pointer(&buf[0])), C.int(n)); rc != C.MPI_SUCCESS {
			return mpiError("MPI_Allreduce", rc)
		}
		buf = buf[n:]
	}
	return nil
}

// Bcast copies root's buf into every other rank's buf (MPI_Bcast of
// bytes). Every rank must pass a buffer of the same length.
func (c *Comm) Bcast(buf []byte, root int) error {
	if root < 0 || root >= c.size {
		return fmt.Errorf("mpi: broadcast from rank %d of %d", root, c.size)
	}
	for len(buf) > 0 {
		n := min(len(buf), maxCount)
		if rc := C.resdet_bcast(unsafe.Pointer(&buf[0]), C.int(n), C.int(root)); rc != C.MPI_SUCCESS {
			return mpiError("MPI_Bcast", rc)
		}
		buf = buf[n:]
	}
	return nil
}

// Barrier returns when every rank has called it.
func (c *Comm) Barrier() error {
	if rc := C.resdet_barrier(); rc != C.MPI_SUCCESS {
		return mpiError("MPI_Barrier", rc)
	}
	return nil
}

// Abort ends every process of the job with exit code code (MPI_Abort).
// It does not return.
func (c *Comm) Abort(code int) {
	C.resdet_abort(C.int(code))
	select {} // MPI_Abort does not return
}

// Finalize ends MPI (MPI_Finalize; nothing if already done).
func Finalize() error {
	if rc := C.resdet_finalize(); rc != C.MPI_SUCCESS {
		return mpiError("MPI_Finalize", rc)
	}
	return nil
}

func mpiError(call string, rc C.int) error {
	buf := make([]byte, C.MPI_MAX_ERROR_STRING)
	var n C.int
	C.resdet_error_string(rc, (*C.char)(unsafe.Pointer(&buf[0])), &n)
	return fmt.Errorf("mpi: %s: %s (error %d)", call, string(buf[:n]), int(rc))
}
