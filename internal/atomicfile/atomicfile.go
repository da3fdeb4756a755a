package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write writes path through fill with mode 0644: fill writes the whole
// content to w, which is buffered; a failed write to w is also returned by
// Write, so fill may ignore the errors of its writes. The content lands in a
// temporary file ".<base>.tmp*" in path's folder, flushed, fsync'ed, closed
// and renamed over path only when fill and all of that succeed; otherwise
// the temporary file is removed and path is untouched. Errors name path.
func Write(path string, fill func(w io.Writer) error) error {
	return write(path, 0o644, fill)
}

// WriteFile writes data to path with permission bits perm, as Write does.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

func write(path string, perm fs.FileMode, fill func(w io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<16)
	if err = fill(w); err != nil {
		return err
	}
	if err = w.Flush(); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
