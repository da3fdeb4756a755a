package imageio

import (
	"bufio"
	"bytes"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"resdet/box"
)

// rssBytes returns the resident set size of this process after a GC, from
// /proc/self/status.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parse VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmRSS in /proc/self/status")
	return 0
}

// writeTestJPEG writes a 320x240 pattern image as JPEG and returns its path.
func writeTestJPEG(t *testing.T) string {
	t.Helper()
	im := pattern(320, 240)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, im.ToRGBA(), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cycle.jpg")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// growthLimit is the RSS growth allowed over the measured cycles. One leaked
// Mat per cycle would be at least the 230 KB of a decoded 320x240 image, over
// 70 MB in 300 cycles; the float planes of a 800x600 resize are 1.9 MB each.
const growthLimit = 24 << 20

// TestNoMemoryGrowth runs 300 load+flip+normalise+resize+batch+draw cycles
// and checks the RSS does not grow: every Mat is closed.
func TestNoMemoryGrowth(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	path := writeTestJPEG(t)
	out := filepath.Join(filepath.Dir(path), "drawn.jpg")
	tr := DefaultTransform()
	boxes := []box.Box{{X1: 10, Y1: 20, X2: 100, Y2: 200}}
	cycle := func(i int) {
		s, err := tr.Load(path, boxes, i%2 == 0)
		if err != nil {
			t.Fatal(err)
		}
		if s.Image.W != 800 || s.Image.H != 600 {
			t.Fatalf("cycle %d: %dx%d, want 800x600", i, s.Image.W, s.Image.H)
		}
		if _, err := Batch([]Tensor{s.Image}, 32); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := DrawFile(path, out, []Annotation{{Box: boxes[0], Text: "x", Score: 0.5, HasScore: true}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 30 { // warm up allocator and OpenCV's caches
		cycle(i)
	}
	before := rssBytes(t)
	for i := range 300 {
		cycle(i)
	}
	after := rssBytes(t)
	t.Logf("RSS before %d MB, after 300 cycles %d MB", before>>20, after>>20)
	if after-before > growthLimit {
		t.Errorf("RSS grew by %d MB over 300 cycles (limit %d MB): Mats leak", (after-before)>>20, growthLimit>>20)
	}
}

// TestLeakIsDetected makes sure the measurement above can fail: it leaks
// decoded images on purpose (closing them only at the end) and checks the
// RSS grows past the limit.
func TestLeakIsDetected(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	data, err := os.ReadFile(writeTestJPEG(t))
	if err != nil {
		t.Fatal(err)
	}
	before := rssBytes(t)
	var leaked []gocv.Mat
	defer func() {
		for i := range leaked {
			leaked[i].Close()
		}
	}()
	for range 300 {
		m, err := gocv.IMDecode(data, gocv.IMReadColor)
		if err != nil {
			t.Fatal(err)
		}
		leaked = append(leaked, m)
	}
	after := rssBytes(t)
	t.Logf("RSS before %d MB, after 300 leaked Mats %d MB", before>>20, after>>20)
	if after-before <= growthLimit {
		t.Errorf("RSS grew by only %s with 300 leaked Mats: the leak test cannot see leaks", fmt.Sprint((after-before)>>20, " MB"))
	}
}
