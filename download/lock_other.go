//go:build !unix

package download

// lockFile does nothing where flock is not available: concurrent Fetches of
// one path are not coordinated there.
func lockFile(path string) (unlock func(), err error) { return func() {}, nil }
