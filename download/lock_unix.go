//go:build unix

package download

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on path (created if needed) without
// waiting: errBusy when another process (or another Fetch) holds it. unlock
// removes the file and releases the lock; the lock also goes away with the
// process, so a crash leaves no stale lock.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errBusy
		}
		return nil, err
	}
	return func() {
		os.Remove(path)
		f.Close()
	}, nil
}
