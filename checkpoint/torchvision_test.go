package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"resdet/box"
	"resdet/detection"
)

// frcRef is ref.json of testdata/gen_fasterrcnn.py.
type frcRef struct {
	Orig, Resized    [2]int
	Depth, Classes   int
	MinSize, MaxSize int `json:"-"`
	Align, Pool      frcOut
}

type frcOut struct {
	Proposals [][4]float32 `json:"proposals"`
	Boxes     [][4]float32 `json:"boxes"`
	Scores    []float32    `json:"scores"`
	Labels    []int        `json:"labels"`
}

func toBoxes(b [][4]float32) []box.Box {
	out := make([]box.Box, len(b))
	for i, v := range b {
		out[i] = box.Box{X1: v[0], Y1: v[1], X2: v[2], Y2: v[3]}
	}
	return out
}

// requireTorch skips the test if /usr/bin/python3 cannot import torch and
// torchvision, unless RESDET_REQUIRE_TORCH=1 (then it fails).
func requireTorch(t *testing.T) {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import torch, torchvision").Run(); err != nil {
		if os.Getenv("RESDET_REQUIRE_TORCH") == "1" {
			t.Fatalf("RESDET_REQUIRE_TORCH=1 but /usr/bin/python3 cannot import torch and torchvision: %v", err)
		}
		t.Skipf("/usr/bin/python3 cannot import torch and torchvision (%v); set RESDET_REQUIRE_TORCH=1 to fail instead", err)
	}
}

// genFasterRCNN runs testdata/gen_fasterrcnn.py into a temporary directory.
func genFasterRCNN(t *testing.T, args ...string) (string, frcRef) {
	t.Helper()
	requireTorch(t)
	dir := t.TempDir()
	start := time.Now()
	out, err := exec.Command("/usr/bin/python3", append([]string{"../detection/testdata/gen_fasterrcnn.py", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("gen_fasterrcnn.py %v: %v\n%s", args, err, out)
	}
	t.Logf("reference (%v): %s", time.Since(start).Round(time.Millisecond), out)
	data, err := os.ReadFile(filepath.Join(dir, "ref.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref frcRef
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	return dir, ref
}

// readInput reads input.f32, the transformed image [3, h, w].
func readInput(t *testing.T, dir string, ref frcRef) detection.Image {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "input.f32"))
	if err != nil {
		t.Fatal(err)
	}
	w, h := ref.Resized[0], ref.Resized[1]
	if len(raw) != 4*3*w*h {
		t.Fatalf("input.f32 has %d bytes, want %d", len(raw), 4*3*w*h)
	}
	data := make([]float32, 3*w*h)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return detection.Image{Data: data, W: w, H: h, OrigW: ref.Orig[0], OrigH: ref.Orig[1]}
}

// matchSets pairs every box of a with an unused box of b of IoU >= minIoU
// for which same(i, j) holds, greedily (the best IoU first come), and
// returns the partner in b of each box of a (-1 for none) and the numbers
// of boxes of a and of b left without a partner.
func matchSets(a, b []box.Box, minIoU float32, same func(i, j int) bool) (partner []int, unA, unB int) {
	used := make([]bool, len(b))
	partner = make([]int, len(a))
	for i, x := range a {
		best, bestIoU := -1, minIoU
		for j, y := range b {
			if used[j] || !same(i, j) {
				continue
			}
			if iou := x.IoU(y); iou >= bestIoU {
				best, bestIoU = j, iou
			}
		}
		partner[i] = best
		if best < 0 {
			unA++
			continue
		}
		used[best] = true
	}
	for _, u := range used {
		if !u {
			unB++
		}
	}
	return partner, unA, unB
}

// worstPair returns the smallest IoU of the matched pairs and the largest
// |diff(i, j)| over them.
func worstPair(a, b []box.Box, partner []int, diff func(i, j int) float64) (minIoU float32, maxDiff float64) {
	minIoU = 1
	for i, j := range partner {
		if j >= 0 {
			minIoU = min(minIoU, a[i].IoU(b[j]))
			maxDiff = max(maxDiff, math.Abs(diff(i, j)))
		}
	}
	return minIoU, maxDiff
}

// checkAgree fails the test if more than 1% of either set is unmatched.
func checkAgree(t *testing.T, what string, n, m, unRef, unGot int) {
	t.Helper()
	allowed := max(n, m) / 100
	if unRef > allowed || unGot > allowed {
		t.Errorf("%s: %d of %d reference and %d of %d ours without a partner (at most %d allowed)", what, unRef, n, unGot, m, allowed)
	} else {
		t.Logf("%s: %d reference, %d ours, unmatched %d/%d", what, n, m, unRef, unGot)
	}
	if n == 0 {
		t.Errorf("%s: the reference is empty: the test would prove nothing", what)
	}
}

// TestFasterRCNNTorchvisionParity loads (LoadTorchvision) the state_dict of
// torchvision's FasterRCNN built as the C4 construction (seeded random
// weights) and
// checks proposals and detections on the same image, for RoIAlign and
// RoIPool: every reference detection has a partner with the same label,
// IoU >= 0.999 and score within 1e-3, and vice versa, at most 1% unmatched.
// The ResNet-101 case at the paper's size is skipped with -short.
func TestFasterRCNNTorchvisionParity(t *testing.T) {
	tests := []struct {
		name, arch string
		args       []string
		minSize    int
		maxSize    int
		long       bool
	}{
		{name: "r50-c4 200x150 to 400x300", arch: "r50-c4", minSize: 300, maxSize: 500,
			args: []string{"--depth", "50", "--classes", "5", "--image", "200x150", "--min-size", "300", "--max-size", "500"}},
		{name: "r101-c4 500x375 to 800x600", arch: "r101-c4", minSize: 600, maxSize: 1000, long: true,
			args: []string{"--depth", "101", "--classes", "20", "--image", "500x375", "--min-size", "600", "--max-size", "1000", "--seed", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.long && testing.Short() {
				t.Skip("ResNet-101 at 800x600: skipped with -short")
			}
			dir, ref := genFasterRCNN(t, tt.args...)
			cfg := detection.DefaultConfig(tt.arch, nil)
			cfg.Transform.MinSize, cfg.Transform.MaxSize = tt.minSize, tt.maxSize
			start := time.Now()
			m, err := LoadTorchvision(filepath.Join(dir, "model.pth"), cfg, detection.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			t.Logf("load: %v", time.Since(start).Round(time.Millisecond))
			if got := len(m.Config.Classes); got != ref.Classes {
				t.Fatalf("%d classes from the checkpoint, want %d", got, ref.Classes)
			}
			img := readInput(t, dir, ref)

			props, _, err := m.PredictProposals(img)
			if err != nil {
				t.Fatal(err)
			}
			refProps := toBoxes(ref.Align.Proposals)
			pp, unR, unG := matchSets(refProps, props, 0.999, func(int, int) bool { return true })
			checkAgree(t, "proposals", len(refProps), len(props), unR, unG)
			iou, _ := worstPair(refProps, props, pp, func(int, int) float64 { return 0 })
			t.Logf("proposals: worst IoU of a matched pair %.7f (bound 0.999)", iou)

			for _, op := range []string{detection.RoIOpAlign, detection.RoIOpPool} {
				want := ref.Align
				if op == detection.RoIOpPool {
					want = ref.Pool
					if err := m.SetRoIOp(detection.RoIOpConfig{Op: detection.RoIOpPool, Size: 14}); err != nil {
						t.Fatal(err)
					}
				}
				start := time.Now()
				det, err := m.Predict(img)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: predict %v", op, time.Since(start).Round(time.Millisecond))
				refBoxes := toBoxes(want.Boxes)
				same := func(i, j int) bool {
					return want.Labels[i] == det.Labels[j] && math.Abs(float64(want.Scores[i]-det.Scores[j])) <= 1e-3
				}
				dp, unR, unG := matchSets(refBoxes, det.Boxes, 0.999, same)
				checkAgree(t, "detections ("+op+")", len(refBoxes), det.Len(), unR, unG)
				iou, ds := worstPair(refBoxes, det.Boxes, dp, func(i, j int) float64 { return float64(want.Scores[i] - det.Scores[j]) })
				t.Logf("detections (%s): worst IoU of a matched pair %.7f (bound 0.999), worst score difference %.3g (bound 1e-3)", op, iou, ds)
			}
		})
	}
}
