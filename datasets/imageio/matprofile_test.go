//go:build matprofile

package imageio

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"resdet/box"
)

// TestMatProfile counts live Mats with gocv's profile (go test -tags
// matprofile): after load, transform and draw cycles, none may remain.
func TestMatProfile(t *testing.T) {
	path := writeTestJPEG(t)
	out := filepath.Join(filepath.Dir(path), "drawn.jpg")
	before := gocv.MatProfile.Count()
	tr := DefaultTransform()
	for i := range 20 {
		if _, err := tr.Load(path, []box.Box{{X1: 1, Y1: 1, X2: 9, Y2: 9}}, i%2 == 1); err != nil {
			t.Fatal(err)
		}
		if err := DrawFile(path, out, []Annotation{{Box: box.Box{X1: 1, Y1: 1, X2: 9, Y2: 9}, Text: "a"}}); err != nil {
			t.Fatal(err)
		}
	}
	// Failure paths close their Mats too.
	bad := filepath.Join(t.TempDir(), "bad.jpg")
	if err := os.WriteFile(bad, []byte{0xFF, 0xD8, 0xFF, 0, 0, 0}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(bad); err == nil {
		t.Fatal("no error for a broken JPEG")
	}
	if n := gocv.MatProfile.Count(); n != before {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Errorf("%d Mats alive after the cycles, %d before:\n%s", n, before, b.String())
	}
}
