package detection

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gorgonia.org/tensor"

	"resdet/backbone"
	"resdet/box"
	"resdet/optim"
	"resdet/weights"

	"resdet/internal/testutil"
)

// trainRef is ref.json of testdata/gen_train_parity.py.
type trainRef struct {
	Batches     []trainBatchRef `json:"batches"`
	Steps       []trainStepRef  `json:"steps"`
	Classes     int             `json:"classes"`
	PreNMS      int             `json:"pre_nms"`
	PostNMS     int             `json:"post_nms"`
	LR          float64         `json:"lr"`
	WeightDecay float64         `json:"weight_decay"`
	Momentum    float64         `json:"momentum"`
}

// trainBatchRef is one batch of the reference: its padded size, the size
// of each image in it and their ground truth (resized pixels).
type trainBatchRef struct {
	Padded [2]int         `json:"padded"` // W, H
	Sizes  [][2]int       `json:"sizes"`  // W, H of each image
	Boxes  [][][4]float32 `json:"boxes"`
	Labels [][]int        `json:"labels"`
}

// trainStepRef is one training step of the reference: its losses and the
// counts its samplers took per image.
type trainStepRef struct {
	Losses     Losses `json:"losses"`
	RoIs       []int  `json:"rois"`
	FG         []int  `json:"fg"`
	Anchors    []int  `json:"anchors"`
	PosAnchors []int  `json:"pos_anchors"`
}

// trainParity is a run of testdata/gen_train_parity.py: its output folder,
// ref.json, and the batches read back.
type trainParity struct {
	dir     string
	ref     trainRef
	batches [][]TrainImage
}

// runTrainParity runs gen_train_parity.py with args into a temporary
// folder and reads what it wrote.
func runTrainParity(t *testing.T, args ...string) trainParity {
	t.Helper()
	py := testutil.Python(t)
	dir := t.TempDir()
	start := time.Now()
	out, err := exec.Command(py, append([]string{"testdata/gen_train_parity.py", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("gen_train_parity.py %v: %v\n%s", args, err, out)
	}
	t.Logf("reference (%v): %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(out)))
	data, err := os.ReadFile(filepath.Join(dir, "ref.json"))
	if err != nil {
		t.Fatal(err)
	}
	p := trainParity{dir: dir}
	if err := json.Unmarshal(data, &p.ref); err != nil {
		t.Fatalf("ref.json: %v", err)
	}
	if len(p.ref.Batches) == 0 || len(p.ref.Steps) == 0 {
		t.Fatalf("ref.json: %d batches, %d steps", len(p.ref.Batches), len(p.ref.Steps))
	}
	for b, br := range p.ref.Batches {
		p.batches = append(p.batches, readTrainBatch(t, filepath.Join(dir, fmt.Sprintf("input_%d.f32", b)), br))
	}
	return p
}

// readTrainBatch reads a padded batch [N, 3, PH, PW] (raw float32) and
// cuts each image back to its size, with its ground truth.
func readTrainBatch(t *testing.T, path string, ref trainBatchRef) []TrainImage {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, pw, ph := len(ref.Sizes), ref.Padded[0], ref.Padded[1]
	if len(raw) != 4*n*3*ph*pw {
		t.Fatalf("%s has %d bytes, want %d", path, len(raw), 4*n*3*ph*pw)
	}
	at := func(i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])) }
	batch := make([]TrainImage, n)
	for i, sz := range ref.Sizes {
		w, h := sz[0], sz[1]
		im := TrainImage{Data: make([]float32, 3*w*h), W: w, H: h, Boxes: toBoxes(ref.Boxes[i]), Labels: ref.Labels[i]}
		for c := range 3 {
			for y := range h {
				for x := range w {
					im.Data[(c*h+y)*w+x] = at(((i*3+c)*ph+y)*pw + x)
				}
			}
		}
		batch[i] = im
	}
	return batch
}

// relMax returns max|got-want| / max|want|.
func relMax(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = max(m, math.Abs(float64(want[i])))
	}
	return d / m
}

// trainParityCase is one detector of the parity tests: the script's
// arguments and our matching configuration.
type trainParityCase struct {
	name     string
	args     []string
	arch     string
	width    int // ResNet.WidthPerGroup (0: 64)
	anchors  []float32
	norm     backbone.Norm
	freezeAt int
	// maxGT is the most ground-truth boxes of an image (room for them in
	// the RoI rows).
	maxGT int
	// exactRows gives each image exactly post-NMS + maxGT RoI rows, no
	// padding: with trainable BN padding rows would enter res5's batch
	// statistics (torchvision's box head sees only the sampled RoIs).
	exactRows bool
}

// trainer builds our detector for c with the reference's initial weights:
// both samplers take every candidate (torchvision's replaced by a take-all
// sampler; ours given room for all), RPN top-n as the reference's.
func (c trainParityCase) trainer(t *testing.T, p trainParity) (*Trainer, *FasterRCNN) {
	t.Helper()
	state, err := weights.LoadTorch(filepath.Join(p.dir, "model.pth"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(c.arch, DefaultClassNames(p.ref.Classes))
	cfg.ResNet.WidthPerGroup = c.width
	if c.anchors != nil {
		cfg.RPN.Anchors.Sizes = c.anchors
	}
	cfg.RPN.PreNMSTopNTrain, cfg.RPN.PostNMSTopNTrain = p.ref.PreNMS, p.ref.PostNMS
	cfg.RPN.BatchSizePerImage = 1_000_000 // every anchor that is not ignored
	// Room for every sampled RoI (the proposals and the ground truth), so
	// that our sampler takes them all; the rest of the rows is padding.
	cfg.RoIHeads.BatchSizePerImage = p.ref.PostNMS + c.maxGT
	if !c.exactRows {
		cfg.RoIHeads.BatchSizePerImage += 8
	}
	cfg.RoIHeads.PositiveFraction = 1
	m, err := NewTrainable(cfg, TrainBuild{Norm: c.norm, FreezeAt: c.freezeAt})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Load(state); err != nil {
		t.Fatal(err)
	}
	tr := NewTrainer(m, TrainerConfig{})
	t.Cleanup(tr.Close)
	return tr, m
}

// checkCounts compares the RoIs and foreground RoIs our step sampled with
// the reference step's.
func checkCounts(t *testing.T, step int, tr *Trainer, want trainStepRef, rows int) {
	t.Helper()
	var wantRoIs, wantFG int
	for i := range want.RoIs {
		wantRoIs += want.RoIs[i]
		wantFG += want.FG[i]
	}
	if tr.LastRoIs() != wantRoIs || tr.LastForeground() != wantFG {
		t.Errorf("step %d: sampled %d RoIs (%d foreground), torchvision %d (%d)", step, tr.LastRoIs(), tr.LastForeground(), wantRoIs, wantFG)
	}
	if wantRoIs > rows {
		t.Errorf("step %d: %d RoIs in %d rows", step, wantRoIs, rows)
	}
}

var (
	// c4Frozen is the R50-C4 construction with frozen BN (random
	// statistics), conv1 and layer1 frozen: the paper's fine-tuning setting.
	c4Frozen = trainParityCase{name: "r50-c4 frozen BN", arch: "r50-c4", norm: backbone.FrozenBN, freezeAt: 2, maxGT: 5}
	// c4Trainable is the demo's setting (--norm trainable, nothing frozen)
	// on the demo's ResNet-18 with its anchors: torchvision's
	// nn.BatchNorm2d in train mode. Two images with four boxes each, so
	// that both have 24 + 4 RoIs and res5's batch holds no padding row.
	c4Trainable = trainParityCase{name: "r18-c4 trainable BN",
		args: []string{"--depth", "18", "--norm", "trainable", "--freeze-at", "0", "--counts", "4,4", "--anchors", "32,64,128"},
		arch: "r18-c4", anchors: []float32{32, 64, 128}, norm: backbone.TrainableBN, maxGT: 4, exactRows: true}
	// fpnFrozen is fasterrcnn_resnet50_fpn (v1, frozen BN of eps 0, conv1
	// and layer1 frozen) with 4x narrower bottlenecks (width_per_group
	// 16), torchvision's training top-n (2000 per level before NMS, 2000
	// after).
	fpnFrozen = trainParityCase{name: "tv-r50-fpn frozen BN", args: []string{"--arch", "fpn", "--width", "16"},
		arch: ArchTVR50FPN, width: 16, norm: backbone.FrozenBN, freezeAt: 2, maxGT: 5}
)

// TestTrainingStepMatchesTorchvision runs one training step of torchvision's
// FasterRCNN (train mode; seeded random weights made by
// testdata/gen_train_parity.py at test time) and of our detector with the
// same weights (NewTrainable) on the same padded batch of two images of
// different sizes, for the C4 detector with frozen BN (R50, conv1 and
// layer1 frozen), the C4 detector with trainable BN (the demo's R18,
// nothing frozen; torchvision's nn.BatchNorm2d in train mode) and
// fasterrcnn_resnet50_fpn (frozen BN, narrow bottlenecks; multi-level
// anchor targets, per-level proposal selection with torchvision's training
// top-n, RoI level assignment, the two-FC head). Both samplers take every
// candidate (torchvision's replaced by a take-all sampler; ours given room
// for all), so the steps are deterministic; with frozen BN our second stage
// pads each image's RoIs to BatchSizePerImage rows, which must not count.
// The four losses must agree within 1e-4 relative and the gradient of every
// learnable parameter within 1e-3 relative (max|go - torch| / max|torch|,
// per tensor). The script's BN biases keep most ReLU inputs away from zero
// (its --shift says why: at half negative, float32 rounding alone moves
// these gradients by ~1%).
func TestTrainingStepMatchesTorchvision(t *testing.T) {
	for _, c := range []trainParityCase{c4Frozen, c4Trainable, fpnFrozen} {
		t.Run(c.name, func(t *testing.T) {
			if testing.Short() && c.arch != c4Frozen.arch {
				t.Skip("-short: the R50-C4 case only")
			}
			p := runTrainParity(t, c.args...)
			start := time.Now()
			tr, _ := c.trainer(t, p)
			t.Logf("load and build: %v", time.Since(start).Round(time.Millisecond))
			grads, err := weights.LoadTorch(filepath.Join(p.dir, "grads.pth"))
			if err != nil {
				t.Fatal(err)
			}

			start = time.Now()
			got, err := tr.Step(p.batches[0], rand.New(rand.NewSource(1)))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("step: %v", time.Since(start).Round(time.Millisecond))
			rows := len(p.batches[0]) * tr.m.Config.RoIHeads.BatchSizePerImage
			checkCounts(t, 0, tr, p.ref.Steps[0], rows)
			if c.exactRows && tr.LastRoIs() != rows {
				t.Errorf("%d RoIs in %d rows: padding rows would enter res5's batch statistics", tr.LastRoIs(), rows)
			}
			if !c.exactRows && tr.LastRoIs() >= rows {
				t.Errorf("%d RoIs in %d rows: no padding row, the test does not exercise padding", tr.LastRoIs(), rows)
			}
			expectLosses(t, "", got, p.ref.Steps[0].Losses, 1e-4)
			compareGrads(t, tr, grads)
		})
	}
}

// expectLosses compares the four losses within rtol relative.
func expectLosses(t *testing.T, prefix string, got, want Losses, rtol float64) float64 {
	t.Helper()
	var worst float64
	for _, l := range []struct {
		name      string
		got, want float64
	}{
		{"loss_objectness", got.Objectness, want.Objectness},
		{"loss_rpn_box_reg", got.RPNBoxReg, want.RPNBoxReg},
		{"loss_classifier", got.Classifier, want.Classifier},
		{"loss_box_reg", got.BoxReg, want.BoxReg},
	} {
		if prefix == "" {
			testutil.ExpectScalarRel(t, l.name, l.got, l.want, rtol)
		}
		rel := math.Abs(l.got-l.want) / math.Abs(l.want)
		worst = max(worst, rel)
		if prefix != "" && !(rel <= rtol) {
			t.Errorf("%s%s = %.9g, torch %.9g (relative diff %.3g, bound %.3g)", prefix, l.name, l.got, l.want, rel, rtol)
		}
	}
	return worst
}

// compareGrads compares the gradient of every learnable parameter of tr's
// last step with torchvision's (grads.pth, resdet's names): within 1e-3 of
// max|torch| per tensor, and the same set of parameters.
func compareGrads(t *testing.T, tr *Trainer, grads weights.State) {
	t.Helper()
	var worst float64
	var worstName string
	seen := 0
	for _, p := range tr.Params() {
		name := p.(interface{ Name() string }).Name()
		want, ok := grads["backbone."+name]
		if !ok {
			want, ok = grads[name]
		}
		if !ok {
			t.Errorf("%s: learnable here, no gradient in torchvision", name)
			continue
		}
		seen++
		g, err := p.Grad()
		if err != nil {
			t.Fatal(err)
		}
		gd, ok := g.(tensor.Tensor)
		if !ok || !slices.Equal(gd.Shape(), tensor.Shape(want.Shape)) {
			t.Errorf("%s: gradient %v, torchvision shape %v", name, g.Shape(), want.Shape)
			continue
		}
		if maxAbs(want.Data) == 0 {
			t.Errorf("gradient %s: zero in torchvision, the comparison proves nothing", name)
			continue
		}
		rel := relMax(gd.Data().([]float32), want.Data)
		if rel > worst {
			worst, worstName = rel, name
		}
		if !(rel <= 1e-3) {
			t.Errorf("gradient %s: relative diff %.3g (max|torch| %.3g), want <= 1e-3", name, rel, maxAbs(want.Data))
		}
	}
	if seen != len(grads) {
		t.Errorf("%d gradients compared, torchvision has %d", seen, len(grads))
	}
	t.Logf("%d gradients, worst relative diff %.3g (%s; bound 1e-3)", seen, worst, worstName)
}

func maxAbs(v []float32) float64 {
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}

func toBoxes(b [][4]float32) []box.Box {
	out := make([]box.Box, len(b))
	for i, v := range b {
		out[i] = box.Box{X1: v[0], Y1: v[1], X2: v[2], Y2: v[3]}
	}
	return out
}

// TestTrainingTrajectoryMatchesTorchvision trains 20 steps of SGD (momentum
// 0.9, weight decay on every learnable parameter, as optim.SGD and
// torch.optim.SGD over model.parameters() that require a gradient, which is
// torchvision's reference recipe) on two batches of two images in turn, on
// our detector and on torchvision's, from the same seeded random weights
// (testdata/gen_train_parity.py --steps 20), with take-all samplers: the
// C4 detector with trainable BN (the demo's setting: ResNet-18, nothing
// frozen, batch statistics and running averages) and
// fasterrcnn_resnet50_fpn (frozen BN, narrow bottlenecks). Every step's
// four losses must agree within 1e-3 relative, and after the last step
// every tensor of the state (parameters, and the running statistics of
// trainable BN) within 1e-3 of its largest torch value. The log also gives
// the worst difference relative to how far the tensor moved in the 20
// steps (max|go - torch| / max|torch final - initial|).
func TestTrainingTrajectoryMatchesTorchvision(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: trains 20 steps twice")
	}
	const steps = 20
	for _, c := range []struct {
		trainParityCase
		extra []string
	}{
		{c4Trainable, []string{"--counts", "4,4,4,4", "--lr", "0.0005", "--min-size", "96", "--max-size", "128"}},
		// The random R50-FPN is far less well conditioned than the R18.
		// With --shift 1.5 applied after calibration (the one-step test's)
		// the shifts compound and res5's maps reach a std of ~900: SGD at
		// lr 5e-4 gave NaN in two steps in torch itself; --shift-during
		// keeps them at ~2-3. At --shift 0 float32 rounding flips ReLUs
		// (one-step gradients up to 12% apart at these sizes, 3.1e-6 at
		// 1.5) and the runs parted at step 1 or 2. lr 2e-5: at 1e-4 and
		// above the classification loss of these random heads climbs
		// (box-head features of large norm).
		{fpnFrozen, []string{"--counts", "3,5,4,2", "--lr", "0.00002", "--shift-during", "--min-size", "96", "--max-size", "128", "--post-nms", "200"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.arch != c4Trainable.arch && os.Getenv("RESDET_LONG") == "" {
				t.Skip("the FPN trajectory takes 3-6 minutes (too long for make test's CI budget): RESDET_LONG=1 runs it")
			}
			trajectoryParity(t, c.trainParityCase, append(append(slices.Clone(c.args), c.extra...), "--steps", fmt.Sprint(steps)), steps)
		})
	}
}

// trajectoryParity runs gen_train_parity.py with args (which train steps
// steps) and the same steps of our detector c, and compares the losses of
// every step and the final state.
func trajectoryParity(t *testing.T, c trainParityCase, args []string, steps int) {
	p := runTrainParity(t, args...)
	if len(p.ref.Steps) != steps || len(p.batches) != 2 {
		t.Fatalf("reference: %d steps, %d batches; want %d, 2", len(p.ref.Steps), len(p.batches), steps)
	}
	tr, m := c.trainer(t, p)
	initial := m.State()
	sgd, err := optim.NewSGD(tr.Params(), optim.SGDConfig{Momentum: float32(p.ref.Momentum), WeightDecay: float32(p.ref.WeightDecay)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var worstLoss float64
	for s := range steps {
		got, err := tr.Step(p.batches[s%len(p.batches)], rand.New(rand.NewSource(int64(s))))
		if err != nil {
			t.Fatalf("step %d: %v", s, err)
		}
		rows := len(p.batches[0]) * tr.m.Config.RoIHeads.BatchSizePerImage
		checkCounts(t, s, tr, p.ref.Steps[s], rows)
		if c.exactRows && tr.LastRoIs() != rows {
			t.Errorf("step %d: %d RoIs in %d rows: padding rows would enter res5's batch statistics", s, tr.LastRoIs(), rows)
		}
		worstLoss = max(worstLoss, expectLosses(t, fmt.Sprintf("step %d: ", s), got, p.ref.Steps[s].Losses, 1e-3))
		if err := sgd.Step(p.ref.LR); err != nil {
			t.Fatalf("step %d: %v", s, err)
		}
	}
	t.Logf("%d steps: %v; worst loss relative diff %.3g (bound 1e-3); first losses %+v, last %+v", steps,
		time.Since(start).Round(time.Millisecond), worstLoss, p.ref.Steps[0].Losses, p.ref.Steps[steps-1].Losses)
	if err := tr.Sync(); err != nil {
		t.Fatal(err)
	}
	final, err := weights.LoadTorch(filepath.Join(p.dir, "final.pth"))
	if err != nil {
		t.Fatal(err)
	}
	got := m.State()
	var worst, worstMoved float64
	var worstName, worstMovedName string
	moved := 0
	for name, want := range final {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: in torchvision's state, not in ours", name)
			continue
		}
		if !slices.Equal(g.Shape, want.Shape) {
			t.Errorf("%s: shape %v, torchvision %v", name, g.Shape, want.Shape)
			continue
		}
		rel := relMax(g.Data, want.Data)
		if rel > worst {
			worst, worstName = rel, name
		}
		if !(rel <= 1e-3) {
			t.Errorf("final %s: relative diff %.3g (max|torch| %.3g), want <= 1e-3", name, rel, maxAbs(want.Data))
		}
		step := make([]float32, len(want.Data))
		for i, v := range want.Data {
			step[i] = v - initial[name].Data[i]
		}
		if d := maxAbs(step); d > 0 {
			moved++
			var diff float64
			for i := range want.Data {
				diff = max(diff, math.Abs(float64(g.Data[i])-float64(want.Data[i])))
			}
			if r := diff / d; r > worstMoved {
				worstMoved, worstMovedName = r, name
			}
		}
	}
	if len(got) != len(final) {
		t.Errorf("our state has %d tensors, torchvision's %d", len(got), len(final))
	}
	if moved == 0 {
		t.Errorf("no tensor moved in %d steps: the comparison proves nothing", steps)
	}
	t.Logf("final state: %d tensors (%d moved), worst relative diff %.3g (%s; bound 1e-3), worst diff relative to the move %.3g (%s)",
		len(final), moved, worst, worstName, worstMoved, worstMovedName)
}
