package nn

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>

static void rd_openblas_sgemm(int ta, int tb, int m, int n, int k, float alpha,
		const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
		m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// rd_sgemm (dnnl.go) is dnnl_sgemm with asynchronous signals blocked.
extern int rd_sgemm(int ta, int tb, int m, int n, int k, float alpha,
		const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
*/
import "C"

import (
	"fmt"
	"sync"
)

// sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major float32
// matrices, op(A) [m, k], op(B) [k, n], C [m, n], with oneDNN's dnnl_sgemm on
// an oneDNN engine lane (Threads() OpenMP threads; see dnnlEngine). The
// slices must hold the addressed elements (the callers check the shapes).
// dnnl_sgemm beat OpenBLAS on every Linear shape measured
// (BenchmarkLinearBackends), by 10x for a single row. Asynchronous signals
// are blocked during the call (rd_sig_block in dnnl.go: oneDNN 2.6.3's GEMM
// kernels corrupt the heap if a signal arrives, e.g. Go's CPU profiler).
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) error {
	if m == 0 || n == 0 {
		return nil
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
		return nil
	}
	e, err := dnnlGet()
	if err != nil {
		return err
	}
	var s C.int
	e.do(func(*dnnlLane) {
		s = C.rd_sgemm(cbool(transA), cbool(transB), C.int(m), C.int(n), C.int(k), C.float(alpha),
			(*C.float)(&a[0]), C.int(lda), (*C.float)(&b[0]), C.int(ldb), C.float(beta), (*C.float)(&c[0]), C.int(ldc))
	})
	if s != 0 {
		return fmt.Errorf("nn: dnnl_sgemm(m=%d, n=%d, k=%d): status %d", m, n, k, int(s))
	}
	return nil
}

// sgemmOpenBLAS is sgemm through OpenBLAS's cblas_sgemm, kept for
// BenchmarkLinearBackends.
func sgemmOpenBLAS(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	openblasThreads()
	C.rd_openblas_sgemm(cbool(transA), cbool(transB), C.int(m), C.int(n), C.int(k), C.float(alpha),
		(*C.float)(&a[0]), C.int(lda), (*C.float)(&b[0]), C.int(ldb), C.float(beta), (*C.float)(&c[0]), C.int(ldc))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// openblasMu guards the thread count given to OpenBLAS.
var openblasMu sync.Mutex
var openblasN int

// openblasThreads passes Threads() to OpenBLAS when it changed.
func openblasThreads() {
	n := Threads()
	openblasMu.Lock()
	if n != openblasN {
		C.openblas_set_num_threads(C.int(n))
		openblasN = n
	}
	openblasMu.Unlock()
}
