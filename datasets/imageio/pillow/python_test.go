package pillow

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// runPIL runs testdata/script with Debian's /usr/bin/python3 (Pillow 9.4,
// numpy) and extra arguments, writing into a new temporary folder, and
// returns that folder. It skips the test when that Python cannot import PIL
// and numpy, unless RESDET_REQUIRE_TORCH=1 (the reference toolchain is then
// mandatory), which makes it fail.
func runPIL(t *testing.T, script string, args ...string) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import PIL, numpy").CombinedOutput(); err != nil {
		if os.Getenv("RESDET_REQUIRE_TORCH") == "1" {
			t.Fatalf("%s cannot import PIL and numpy (RESDET_REQUIRE_TORCH=1): %v\n%s", py, err, out)
		}
		t.Skipf("skipping: %s cannot import PIL and numpy: %v", py, err)
	}
	dir := t.TempDir()
	cmd := exec.Command(py, append([]string{filepath.Join("testdata", script), dir}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return dir
}
