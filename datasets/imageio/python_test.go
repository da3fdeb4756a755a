package imageio

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// runPython runs a reference script with Debian's /usr/bin/python3 (Pillow
// 9.4, numpy), passing it a new temporary folder and returning that folder.
// It skips the test when that Python cannot import PIL and numpy, unless
// RESDET_REQUIRE_TORCH=1 (the reference toolchain is then mandatory), which
// makes it fail.
func runPython(t *testing.T, script string) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import PIL, numpy").CombinedOutput(); err != nil {
		if os.Getenv("RESDET_REQUIRE_TORCH") == "1" {
			t.Fatalf("%s cannot import PIL and numpy (RESDET_REQUIRE_TORCH=1): %v\n%s", py, err, out)
		}
		t.Skipf("skipping: %s cannot import PIL and numpy: %v", py, err)
	}
	dir := t.TempDir()
	if out, err := exec.Command(py, script, dir).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return dir
}

// detectron2Fixtures returns the folder of the shared Detectron2 fixture
// images (shared/fixtures/detectron2/images, found in this folder or one of
// its parents: ../shared beside the clone in CI). It skips the test when
// there is none, unless RESDET_REQUIRE_SHARED=1, which makes it fail.
func detectron2Fixtures(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "shared", "fixtures", "detectron2", "images")
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if os.Getenv("RESDET_REQUIRE_SHARED") == "1" {
		t.Fatal("shared/fixtures/detectron2/images not found in any parent folder (RESDET_REQUIRE_SHARED=1)")
	}
	t.Skip("skipping: shared/fixtures/detectron2/images not found in any parent folder (it sits beside the clone in CI)")
	return ""
}
