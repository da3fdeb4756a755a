package main

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"resdet/box"
	"resdet/inference"
	"resdet/internal/cli"
	"resdet/internal/cli/clitest"
	"resdet/internal/testutil"
)

// TestDetectTorchvisionParity runs `detect --json` end to end (PNG decoding,
// imageio's resize and normalisation, the detector) on the image and .pth
// that detection/testdata/gen_fasterrcnn.py writes (ResNet-50 C4, issue 6's
// construction, 200x150 -> 400x300) and compares with torchvision's
// detections on the same PNG: every detection has a partner with the same
// class, IoU >= 0.999 and score within 1e-3, both ways, at most 1% unmatched.
func TestDetectTorchvisionParity(t *testing.T) {
	dir := t.TempDir()
	testutil.RunScript(t, "../../detection/testdata/gen_fasterrcnn.py", dir, "--depth", "50", "--classes", "5",
		"--image", "200x150", "--min-size", "300", "--max-size", "500", "--seed", "3")
	var ref struct {
		Align, Pool struct {
			Boxes  [][4]float32 `json:"boxes"`
			Scores []float32    `json:"scores"`
			Labels []int        `json:"labels"`
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "ref.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"align", "pool"} {
		t.Run(op, func(t *testing.T) {
			want := ref.Align
			if op == "pool" {
				want = ref.Pool
			}
			code, stdout, stderr := clitest.Main(func(ios *cli.IOStreams) *cobra.Command { return NewCmdDetect(ios, nil) },
				"--weights", filepath.Join(dir, "model.pth"), "--arch", "r50-c4", "--roi-op", op,
				"--min-size", "300", "--max-size", "500", "--score-thresh", "0.05", "--json", filepath.Join(dir, "image.png"))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var got inference.Result
			sc := bufio.NewScanner(strings.NewReader(stdout))
			sc.Buffer(nil, 1<<20)
			if !sc.Scan() {
				t.Fatal("no output")
			}
			if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Width != 200 || got.Height != 150 {
				t.Errorf("size %dx%d, want 200x150", got.Width, got.Height)
			}
			used := make([]bool, len(got.Detections))
			unRef := 0
			minIoU, maxScoreDiff := 1.0, 0.0 // over the matched pairs
			for i, wb := range want.Boxes {
				rb := box.Box{X1: wb[0], Y1: wb[1], X2: wb[2], Y2: wb[3]}
				found := false
				for j, d := range got.Detections {
					sd := math.Abs(float64(d.Score - want.Scores[i]))
					if used[j] || d.ClassID != want.Labels[i] || sd > 1e-3 {
						continue
					}
					if iou := float64(rb.IoU(d.BoxValue())); iou >= 0.999 {
						used[j], found = true, true
						minIoU, maxScoreDiff = min(minIoU, iou), max(maxScoreDiff, sd)
						break
					}
				}
				if !found {
					unRef++
				}
			}
			unGot := 0
			for _, u := range used {
				if !u {
					unGot++
				}
			}
			n := max(len(want.Boxes), len(got.Detections))
			if len(want.Boxes) == 0 || unRef > n/100 || unGot > n/100 {
				t.Errorf("%d reference and %d detect detections; unmatched %d and %d (at most %d)", len(want.Boxes), len(got.Detections), unRef, unGot, n/100)
			}
			t.Logf("%d detections, unmatched %d/%d (bound %d each); matched pairs: lowest IoU %.6f (bound 0.999), largest score difference %.2e (bound 1e-3)",
				len(want.Boxes), unRef, unGot, n/100, minIoU, maxScoreDiff)
		})
	}
}
