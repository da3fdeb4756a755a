// Package atomicfile writes files so that readers never see a partial one:
// the content goes to a temporary file in the destination's folder, which is
// flushed, fsync'ed and renamed over the destination. On any error the
// temporary file is removed and the destination is left as it was.
//
// It is the only place in the repository that writes files this way; every
// writer of outputs, annotations, result files, plots and run files goes
// through it. It imports only the standard library.
package atomicfile
