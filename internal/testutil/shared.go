package testutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// RequireSharedEnv is the variable that turns the skip of a test whose
// ../shared fixture is absent into a failure when set to 1.
const RequireSharedEnv = "RESDET_REQUIRE_SHARED"

// SharedDir returns the path of parts inside the shared fixtures folder: a
// folder named "shared" beside the clone (CI puts it there, as ../shared of
// the repository root), found by looking for "shared" in the package folder
// and each folder above it up to the repository root's parent. A user's
// clone has none: SharedDir then skips the test, or fails it when
// RESDET_REQUIRE_SHARED=1. It does the same when the folder is there but
// parts is not in it.
func SharedDir(t testing.TB, parts ...string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("shared fixtures: %v", err)
	}
	p, err := sharedPath(wd, parts...)
	if err != nil {
		if os.Getenv(RequireSharedEnv) == "1" {
			t.Fatalf("%v\n(%s=1: the shared fixtures must be present)", err, RequireSharedEnv)
		}
		t.Skipf("skipping: %v\n(set %s=1 to fail instead)", err, RequireSharedEnv)
	}
	return p
}

// errNoShared is why sharedPath found nothing.
var errNoShared = errors.New("no shared fixtures folder")

// sharedPath looks for shared/parts from dir upward, up to the parent of
// the repository root (the first folder with a go.mod at or above dir).
func sharedPath(dir string, parts ...string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	var tried []string
	root := false
	for {
		s := filepath.Join(dir, "shared")
		if fi, err := os.Stat(s); err == nil && fi.IsDir() {
			p := filepath.Join(append([]string{s}, parts...)...)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("shared fixture %s: %w", p, err)
			}
			return p, nil
		}
		tried = append(tried, s)
		if root {
			break
		}
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			root = true // look once more, beside the clone
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("%w for %s (tried %v)", errNoShared, filepath.Join(parts...), tried)
}
