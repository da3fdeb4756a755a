package detection

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/backbone"
	"resdet/box"
	"resdet/nn"
)

func TestMultiLevelAnchors(t *testing.T) {
	g := FPNAnchorGenerator()
	// An 800x1088 padded image: P2..P5 at strides 4..32, P6 13x17 cells,
	// whose stride torchvision computes as 800//13 = 61 (y) and 1088//17 =
	// 64 (x).
	padded := Size{W: 1088, H: 800}
	feats := []Size{{W: 272, H: 200}, {W: 136, H: 100}, {W: 68, H: 50}, {W: 34, H: 25}, {W: 17, H: 13}}
	all := g.MultiLevelAnchors(padded, feats)
	if g.NumAnchors() != 3 || g.NumLevels() != 5 {
		t.Fatalf("A = %d, levels = %d, want 3 and 5", g.NumAnchors(), g.NumLevels())
	}
	tests := []struct {
		name        string
		level, y, x int
		a           int // anchor within the cell: ratio 0.5, 1, 2
		want        box.Box
	}{
		// size 32, ratio 0.5: w = 32/sqrt(0.5) = 45.25 -> (-23, -11, 23, 11).
		{name: "P2 origin ratio 0.5", level: 0, a: 0, want: box.Box{X1: -23, Y1: -11, X2: 23, Y2: 11}},
		{name: "P2 cell (1,2) ratio 1", level: 0, y: 1, x: 2, a: 1, want: box.Box{X1: 8 - 16, Y1: 4 - 16, X2: 8 + 16, Y2: 4 + 16}},
		{name: "P5 cell (2,3) ratio 2", level: 3, y: 2, x: 3, a: 2, want: box.Box{X1: 96 - 91, Y1: 64 - 181, X2: 96 + 91, Y2: 64 + 181}},
		{name: "P6 stride 61 x 64", level: 4, y: 1, x: 1, a: 1, want: box.Box{X1: 64 - 256, Y1: 61 - 256, X2: 64 + 256, Y2: 61 + 256}},
		{name: "P6 last cell", level: 4, y: 12, x: 16, a: 1, want: box.Box{X1: 16*64 - 256, Y1: 12*61 - 256, X2: 16*64 + 256, Y2: 12*61 + 256}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off := 0
			for l := 0; l < tt.level; l++ {
				off += feats[l].W * feats[l].H * 3
			}
			got := all[off+(tt.y*feats[tt.level].W+tt.x)*3+tt.a]
			if got != tt.want {
				t.Errorf("anchor = %v, want %v", got, tt.want)
			}
		})
	}
	n := 0
	for _, f := range feats {
		n += 3 * f.W * f.H
	}
	if len(all) != n {
		t.Errorf("%d anchors, want %d", len(all), n)
	}
}

func TestLevelMapper(t *testing.T) {
	tv := TorchvisionLevelMapper()
	d2 := tv
	d2.Eps, d2.EpsInLog = 1e-8, true
	sq := func(s float32) box.Box { return box.Box{X1: 10, Y1: 20, X2: 10 + s, Y2: 20 + s} }
	tests := []struct {
		name string
		m    LevelMapper
		b    box.Box
		want int
	}{
		{name: "canonical 224", m: tv, b: sq(224), want: 4},
		{name: "112", m: tv, b: sq(112), want: 3},
		{name: "111 below 112", m: tv, b: sq(111), want: 2},
		{name: "448", m: tv, b: sq(448), want: 5},
		{name: "tiny clamps to 2", m: tv, b: sq(1), want: 2},
		{name: "empty clamps to 2", m: tv, b: sq(0), want: 2},
		{name: "huge clamps to 5", m: tv, b: sq(5000), want: 5},
		{name: "rectangle 56x224 = 112", m: tv, b: box.Box{X2: 56, Y2: 224}, want: 3},
		{name: "d2 224", m: d2, b: sq(224), want: 4},
		{name: "d2 tiny", m: d2, b: sq(1), want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Level(tt.b); got != tt.want {
				t.Errorf("Level(%v) = %d, want %d", tt.b, got, tt.want)
			}
		})
	}
}

func TestInferScale(t *testing.T) {
	tests := []struct {
		feat, img int
		want      float32
	}{
		{200, 800, 0.25}, {152, 600, 0.25}, {25, 800, 1.0 / 32}, {13, 800, 1.0 / 64},
	}
	for _, tt := range tests {
		if got := InferScale(tt.feat, tt.img); got != tt.want {
			t.Errorf("InferScale(%d, %d) = %v, want %v", tt.feat, tt.img, got, tt.want)
		}
	}
}

func TestFilterProposalsLevels(t *testing.T) {
	c := DefaultRPNConfig()
	c.PreNMSTopNTest, c.PostNMSTopNTest = 2, 10
	img := Size{W: 100, H: 100}
	a := box.Box{X1: 10, Y1: 10, X2: 50, Y2: 50}
	b := box.Box{X1: 60, Y1: 60, X2: 90, Y2: 90}
	z := box.Delta{}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		name       string
		d2         bool // Detectron2's find_top_rpn_proposals (LogitScores)
		post       int  // PostNMSTopNTest if not 0
		levels     []LevelPredictions
		wantScores []float32
	}{
		{
			// Top 2 per level, scores are logits: the NaN and +Inf logits
			// are among the top and then dropped, not replaced.
			name: "Detectron2: non-finite logits dropped after the top-n", d2: true,
			levels: []LevelPredictions{
				{Anchors: []box.Box{a, b, a}, Logits: []float32{nan, 3, 2}, Deltas: []box.Delta{z, z, z}},
				{Anchors: []box.Box{a, b}, Logits: []float32{-1, inf}, Deltas: []box.Delta{z, z}},
			},
			wantScores: []float32{3, -1},
		},
		{
			// NMS within each level only, then the best 2 logits of all
			// levels together.
			name: "Detectron2: post-NMS top-n over the levels", d2: true, post: 2,
			levels: []LevelPredictions{
				{Anchors: []box.Box{a}, Logits: []float32{1}, Deltas: []box.Delta{z}},
				{Anchors: []box.Box{b, b}, Logits: []float32{4, 3.5}, Deltas: []box.Delta{z, z}},
				{Anchors: []box.Box{a}, Logits: []float32{2}, Deltas: []box.Delta{z}},
			},
			wantScores: []float32{4, 2},
		},
		{
			// Clipped to a zero width: dropped (sides must be > 0).
			name: "Detectron2: empty after clipping", d2: true,
			levels: []LevelPredictions{
				{Anchors: []box.Box{{X1: 100, Y1: 10, X2: 150, Y2: 20}, b}, Logits: []float32{5, 0}, Deltas: []box.Delta{z, z}},
			},
			wantScores: []float32{0},
		},
		{
			// Top 2 per level: level 0 keeps logits 3 and 2 (not 1); the
			// same box on two levels survives NMS on both.
			name: "per-level top-n and NMS by level",
			levels: []LevelPredictions{
				{Anchors: []box.Box{a, b, a}, Logits: []float32{1, 3, 2}, Deltas: []box.Delta{z, z, z}},
				{Anchors: []box.Box{a}, Logits: []float32{0}, Deltas: []box.Delta{z}},
			},
			wantScores: []float32{sigmoid(3), sigmoid(2), sigmoid(0)},
		},
		{
			// Two equal boxes on one level: NMS keeps the better.
			name: "NMS within a level",
			levels: []LevelPredictions{
				{Anchors: []box.Box{a, a}, Logits: []float32{-1, 1}, Deltas: []box.Delta{z, z}},
			},
			wantScores: []float32{sigmoid(1)},
		},
		{
			// A box clipped to nothing is dropped.
			name: "outside the image",
			levels: []LevelPredictions{
				{Anchors: []box.Box{{X1: 120, Y1: 10, X2: 150, Y2: 20}, b}, Logits: []float32{5, 0}, Deltas: []box.Delta{z, z}},
			},
			wantScores: []float32{sigmoid(0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := c
			c.LogitScores = tt.d2
			if tt.post > 0 {
				c.PostNMSTopNTest = tt.post
			}
			_, scores := c.FilterProposalsLevels(tt.levels, img, false)
			if len(scores) != len(tt.wantScores) {
				t.Fatalf("scores %v, want %v", scores, tt.wantScores)
			}
			for i := range scores {
				if scores[i] != tt.wantScores[i] {
					t.Errorf("scores %v, want %v", scores, tt.wantScores)
				}
			}
		})
	}
}

// TestRPNLossLevels checks the multi-level loss against the
// binary cross-entropy computed here from the head outputs at the anchors
// of each level.
func TestRPNLossLevels(t *testing.T) {
	g := G.NewGraph()
	r := rand.New(rand.NewSource(3))
	const n, a = 2, 3
	sizes := [][2]int{{4, 5}, {2, 3}, {1, 2}}
	var objs, dlts []*G.Node
	var objData [][]float32
	total := 0
	for i, s := range sizes {
		hw := s[0] * s[1]
		total += hw
		od := make([]float32, n*a*hw)
		for j := range od {
			od[j] = float32(r.NormFloat64())
		}
		objData = append(objData, od)
		o := G.NewTensor(g, tensor.Float32, 4, G.WithShape(n, a, s[0], s[1]), G.WithName("obj"+string(rune('0'+i))),
			G.WithValue(tensor.New(tensor.WithShape(n, a, s[0], s[1]), tensor.WithBacking(od))))
		d := G.NewTensor(g, tensor.Float32, 4, G.WithShape(n, 4*a, s[0], s[1]), G.WithName("dlt"+string(rune('0'+i))),
			G.WithValue(tensor.New(tensor.WithShape(n, 4*a, s[0], s[1]), tensor.WithBacking(make([]float32, n*4*a*hw)))))
		objs, dlts = append(objs, o), append(dlts, d)
	}
	L := a * total
	batch := make([]RPNSample, n)
	var want float64
	count := 0
	for img := range batch {
		labels := make([]int, L)
		batch[img].Targets = AnchorTargets{Labels: labels, Deltas: make([]box.Delta, L)}
		for i := 0; i < L; i += 1 + img {
			labels[i] = i % 2
			if i%2 == 1 {
				batch[img].Pos = append(batch[img].Pos, i)
			} else {
				batch[img].Neg = append(batch[img].Neg, i)
			}
			// The logit of anchor i: find its level, cell and anchor.
			j, lvl := i, 0
			for j >= a*sizes[lvl][0]*sizes[lvl][1] {
				j -= a * sizes[lvl][0] * sizes[lvl][1]
				lvl++
			}
			hw := sizes[lvl][0] * sizes[lvl][1]
			z := float64(objData[lvl][(img*a+j%a)*hw+j/a])
			y := float64(i % 2)
			want += math.Max(z, 0) - z*y + math.Log1p(math.Exp(-math.Abs(z)))
			count++
		}
	}
	want /= float64(count)
	l, err := NewRPNLossLevels(objs, dlts, batch)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := nn.NewExecutor(g, l.Objectness, l.BoxReg)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	if err := ex.Run(); err != nil {
		t.Fatal(err)
	}
	got := float64(l.Objectness.Value().Data().(float32))
	if math.Abs(got-want) > 1e-5*math.Abs(want) {
		t.Errorf("objectness loss %v, want %v", got, want)
	}
	t.Logf("objectness loss %v (reference %v, %d anchors)", got, want, count)
}

// fpnSmokeConfig is a small configuration of the FPN arch (DefaultConfig:
// torchvision's or Detectron2's settings) for fast tests.
func fpnSmokeConfig(arch string) Config {
	cfg := DefaultConfig(arch, DefaultClassNames(4))
	cfg.Transform.MinSize, cfg.Transform.MaxSize = 128, 160
	cfg.RPN.PostNMSTopNTrain, cfg.RPN.PreNMSTopNTrain = 50, 100
	cfg.RPN.PostNMSTopNTest, cfg.RPN.PreNMSTopNTest = 30, 60
	cfg.RoIHeads.BatchSizePerImage = 16
	return cfg
}

// TestFPNDetectorBuildsPredictsAndTrains builds each FPN arch with random
// weights, predicts, round-trips State/Load, and (torchvision's) runs a
// training step with finite losses and gradients on every parameter.
func TestFPNDetectorBuildsPredictsAndTrains(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ResNet-50 FPN detectors")
	}
	for _, arch := range []string{ArchTVR50FPN, ArchTVR50FPNV2, ArchD2R50FPN} {
		t.Run(arch, func(t *testing.T) {
			cfg := fpnSmokeConfig(arch)
			r := rand.New(rand.NewSource(5))
			const w, h = 160, 128
			data := make([]float32, 3*w*h)
			for i := range data {
				data[i] = float32(r.NormFloat64())
			}
			m, err := New(cfg, Options{Rng: rand.New(rand.NewSource(1))})
			if err != nil {
				t.Fatal(err)
			}
			props, _, err := m.PredictProposals(Image{Data: data, W: w, H: h, OrigW: w, OrigH: h})
			if err != nil {
				t.Fatal(err)
			}
			if len(props) == 0 || len(props) > cfg.RPN.PostNMSTopNTest {
				t.Errorf("%d proposals, want 1..%d", len(props), cfg.RPN.PostNMSTopNTest)
			}
			if _, err := m.Predict(Image{Data: data, W: w, H: h, OrigW: w, OrigH: h}); err != nil {
				t.Fatal(err)
			}
			// State and Load round trip through a fresh detector.
			st := m.State()
			m2, err := New(cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := m2.Load(st); err != nil {
				t.Fatal(err)
			}
			props2, _, err := m2.PredictProposals(Image{Data: data, W: w, H: h, OrigW: w, OrigH: h})
			if err != nil {
				t.Fatal(err)
			}
			if len(props2) != len(props) || props2[0] != props[0] {
				t.Errorf("after State/Load: %d proposals, first %v; want %d, %v", len(props2), props2[0], len(props), props[0])
			}
			m.Close()
			m2.Close()
			if cfg.RoIHeads.BackgroundLast {
				// Detectron2's predictor layout (4*K deltas, background
				// last) has no training loss yet: FastRCNNLoss wants 4*NC.
				return
			}

			tm, err := NewTrainable(cfg, TrainBuild{Rng: rand.New(rand.NewSource(1)), Norm: backbone.FrozenBN, FreezeAt: 2})
			if err != nil {
				t.Fatal(err)
			}
			tr := NewTrainer(tm, TrainerConfig{PadMultiple: 32})
			defer tr.Close()
			im := TrainImage{Data: data, W: w, H: h, Boxes: []box.Box{{X1: 10, Y1: 20, X2: 90, Y2: 100}}, Labels: []int{2}}
			l, err := tr.Step([]TrainImage{im}, rand.New(rand.NewSource(2)))
			if err != nil {
				t.Fatal(err)
			}
			for name, v := range map[string]float64{"objectness": l.Objectness, "rpn box": l.RPNBoxReg, "classifier": l.Classifier, "box": l.BoxReg} {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Errorf("%s loss %v, want finite >= 0", name, v)
				}
			}
			nonzero := map[string]bool{}
			for _, p := range tr.Params() {
				g, err := p.Grad()
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range g.Data().([]float32) {
					if v != 0 {
						nonzero[p.(interface{ Name() string }).Name()] = true
						break
					}
				}
			}
			for _, name := range []string{"backbone.fpn.inner_blocks.0.0.weight", "rpn.head.cls_logits.weight", "roi_heads.box_predictor.cls_score.weight"} {
				if !nonzero[name] {
					t.Errorf("gradient of %s is zero or missing", name)
				}
			}
			t.Logf("losses %+v; %d of %d parameters with non-zero gradients", l, len(nonzero), len(tr.Params()))
		})
	}
}
