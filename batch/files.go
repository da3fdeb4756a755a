package batch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"

	"resdet/internal/atomicfile"
)

// isLocal reports whether path is a path of this machine's file system
// (no scheme, or file://), as opposed to gs://, s3:// and the like.
func isLocal(path string) bool {
	scheme, _, ok := strings.Cut(path, "://")
	return !ok || scheme == "file"
}

// localPath strips file:// from a local path.
func localPath(path string) string { return strings.TrimPrefix(path, "file://") }

// fetchLocal returns a local path holding the file at path: path itself
// when it is local, else a copy in dir read through Beam's filesystems
// (the caller removes it).
func fetchLocal(ctx context.Context, path, dir string) (local string, remove func(), err error) {
	if isLocal(path) {
		return localPath(path), func() {}, nil
	}
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return "", nil, err
	}
	defer fs.Close()
	r, err := fs.OpenRead(ctx, path)
	if err != nil {
		return "", nil, err
	}
	defer r.Close()
	base := path[strings.LastIndex(path, "/")+1:]
	f, err := os.CreateTemp(dir, "*-"+base)
	if err != nil {
		return "", nil, err
	}
	remove = func() { os.Remove(f.Name()) }
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		remove()
		return "", nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		remove()
		return "", nil, err
	}
	return f.Name(), remove, nil
}

// writeOutput writes a file whole (creating a local file's folder):
// locally through internal/atomicfile
// (temporary file, fsync, rename), elsewhere through Beam's filesystems
// (object stores make an object visible when it is complete).
func writeOutput(ctx context.Context, path string, fill func(w io.Writer) error) error {
	if isLocal(path) {
		if err := os.MkdirAll(filepath.Dir(localPath(path)), 0o755); err != nil {
			return err
		}
		return atomicfile.Write(localPath(path), fill)
	}
	var buf bytes.Buffer
	if err := fill(&buf); err != nil {
		return err
	}
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return err
	}
	defer fs.Close()
	if err := filesystem.Write(ctx, fs, path, buf.Bytes()); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeViaLocal runs write on a local path and then puts the file at
// path: directly when path is local, else by copying a temporary file.
func writeViaLocal(ctx context.Context, path string, write func(local string) error) error {
	if isLocal(path) {
		if err := os.MkdirAll(filepath.Dir(localPath(path)), 0o755); err != nil {
			return err
		}
		return write(localPath(path))
	}
	dir, err := os.MkdirTemp("", "resdet-batch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tmp := dir + "/out"
	if err := write(tmp); err != nil {
		return err
	}
	return writeOutput(ctx, path, func(w io.Writer) error {
		f, err := os.Open(tmp)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
}

// ReadFile reads a whole file through Beam's filesystems (local, gs://,
// s3://): the launcher reads the outputs a run wrote with it.
func ReadFile(ctx context.Context, path string) ([]byte, error) {
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	b, err := filesystem.Read(ctx, fs, path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
