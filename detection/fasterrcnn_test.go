package detection

import (
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/weights"
)

// smallConfig is a ResNet-18 C4 detector for small images (anchors 16..64).
func smallConfig() Config {
	cfg := DefaultConfig("r18-c4", []string{"a", "b", "c"})
	cfg.Transform.MinSize, cfg.Transform.MaxSize = 64, 96
	cfg.RPN.Anchors.Sizes = []float32{16, 32, 64}
	cfg.RPN.PostNMSTopNTest = 30
	cfg.RoIHeads.ScoreThresh = 0.2
	return cfg
}

func newSmall(t *testing.T, seed int64) *FasterRCNN {
	t.Helper()
	m, err := New(smallConfig(), Options{Rng: rand.New(rand.NewSource(seed))})
	if err != nil {
		t.Fatal(err)
	}
	// Spread the class logits so that some scores pass the threshold.
	for i := range m.RoIHeads.Predictor.cls.data {
		m.RoIHeads.Predictor.cls.data[i] *= 5
	}
	return m
}

func randImage(seed int64, w, h int) Image {
	r := rand.New(rand.NewSource(seed))
	d := make([]float32, 3*w*h)
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
	return Image{Data: d, W: w, H: h, OrigW: w * 2, OrigH: h * 2}
}

func TestPredictShapesAndRebuilds(t *testing.T) {
	m := newSmall(t, 1)
	defer m.Close()
	a, b := randImage(1, 85, 64), randImage(2, 64, 96)
	first, err := m.Predict(a)
	if err != nil {
		t.Fatal(err)
	}
	if first.Len() == 0 {
		t.Fatal("no detections: the comparisons below would be empty")
	}
	for i, bx := range first.Boxes {
		if bx.X1 < 0 || bx.Y1 < 0 || bx.X2 > float32(a.OrigW) || bx.Y2 > float32(a.OrigH) || bx.Empty() {
			t.Errorf("box %d %+v outside the %dx%d original image", i, bx, a.OrigW, a.OrigH)
		}
		if first.Labels[i] < 1 || first.Labels[i] > 3 || !(first.Scores[i] > 0.2) {
			t.Errorf("detection %d: label %d score %v", i, first.Labels[i], first.Scores[i])
		}
		if i > 0 && first.Scores[i] > first.Scores[i-1] {
			t.Errorf("scores not decreasing at %d", i)
		}
	}
	if _, err := m.Predict(b); err != nil {
		t.Fatal(err)
	}
	again, err := m.Predict(a) // rebuilt graph for a's size, merged with the first
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, again) {
		t.Errorf("same image after another size gives other detections:\n%+v\n%+v", first, again)
	}
	// Switching back and forth between seen sizes adds no node to the graph.
	nodes := len(m.g.AllNodes())
	for _, img := range []Image{b, a, b} {
		if _, err := m.Predict(img); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(m.g.AllNodes()); n != nodes {
		t.Errorf("graph grew from %d to %d nodes on sizes seen before", nodes, n)
	}
	// A fresh detector with the same weights agrees.
	m2 := newSmall(t, 1)
	defer m2.Close()
	fresh, err := m2.Predict(a)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, fresh) {
		t.Errorf("fresh detector differs")
	}
	// The boxes are the resized-image boxes scaled by 2.
	a1 := a
	a1.OrigW, a1.OrigH = a.W, a.H
	unscaled, err := m.Predict(a1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range unscaled.Boxes {
		if want := unscaled.Boxes[i].Scale(2, 2); first.Boxes[i] != want {
			t.Errorf("box %d: %+v, want %+v", i, first.Boxes[i], want)
		}
	}
}

func TestPredictBadImage(t *testing.T) {
	m := newSmall(t, 1)
	defer m.Close()
	tests := []struct {
		name string
		img  Image
	}{
		{name: "short data", img: Image{Data: make([]float32, 10), W: 10, H: 10, OrigW: 10, OrigH: 10}},
		{name: "zero size", img: Image{W: 0, H: 10, OrigW: 10, OrigH: 10}},
		{name: "no original size", img: Image{Data: make([]float32, 300), W: 10, H: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := m.Predict(tt.img); err == nil || !strings.Contains(err.Error(), "detection: predict: image") {
				t.Errorf("error %v", err)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	m := newSmall(t, 1)
	defer m.Close()
	good := m.State()
	with := func(f func(s weights.State)) weights.State {
		s := make(weights.State, len(good))
		for k, v := range good {
			s[k] = v
		}
		f(s)
		return s
	}
	r34, err := New(DefaultConfig("r34-c4", []string{"a", "b", "c"}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	fourClasses, err := New(DefaultConfig("r18-c4", []string{"a", "b", "c", "d"}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		into    *FasterRCNN
		state   weights.State
		wantErr string
	}{
		{name: "other arch", into: r34, state: good, wantErr: "weights do not fit a r34-c4 detector"},
		{name: "class count", into: fourClasses, state: good, wantErr: "the weights have 3 classes, the detector 4"},
		{name: "missing head", into: m, state: with(func(s weights.State) { delete(s, "rpn.head.conv.bias") }),
			wantErr: `missing tensor "rpn.head.conv.bias"`},
		{name: "extra", into: m, state: with(func(s weights.State) { s["rpn.extra"] = weights.Tensor{Shape: []int{1}, Data: []float32{1}} }),
			wantErr: "unexpected tensors [rpn.extra]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.into.Load(tt.state); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDetectorConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(c *Config)
		wantErr string
	}{
		{name: "default", edit: func(c *Config) {}},
		{name: "arch", edit: func(c *Config) { c.Arch = "vgg16" }, wantErr: `unknown architecture "vgg16"`},
		{name: "no classes", edit: func(c *Config) { c.Classes = nil }, wantErr: "Config.Classes is empty"},
		{name: "blank class", edit: func(c *Config) { c.Classes[1] = " " }, wantErr: "Config.Classes[1] is empty"},
		{name: "min size", edit: func(c *Config) { c.Transform.MinSize = 0 }, wantErr: "TransformConfig: MinSize 0"},
		{name: "std", edit: func(c *Config) { c.Transform.Norm.Std[2] = 0 }, wantErr: "TransformConfig.Norm"},
		{name: "roi op", edit: func(c *Config) { c.RoIOp.Op = "warp" }, wantErr: `RoIOpConfig.Op = "warp"`},
		{name: "rpn", edit: func(c *Config) { c.RPN.NMSThresh = 2 }, wantErr: "RPNConfig.NMSThresh"},
		{name: "roi heads", edit: func(c *Config) { c.RoIHeads.DetectionsPerImage = 0 }, wantErr: "RoIHeadsConfig.DetectionsPerImage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig("r101-c4", []string{"a", "b"})
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestTrainGraphGrad checks that the parts' graph (Options.Train)
// differentiates with G.Grad and runs on a TapeMachine, as training needs:
// every learnable gets a non-zero gradient.
func TestTrainGraphGrad(t *testing.T) {
	cfg := smallConfig()
	m, err := New(cfg, Options{Rng: rand.New(rand.NewSource(5)), Train: true})
	if err != nil {
		t.Fatal(err)
	}
	g := m.g
	img := randImage(6, 64, 64)
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 3, 64, 64), G.WithName("train_image"),
		G.WithValue(tensor.New(tensor.WithShape(1, 3, 64, 64), tensor.WithBacking(img.Data))))
	feats, err := m.features(x)
	if err != nil {
		t.Fatal(err)
	}
	obj, dlt, err := m.RPN.Head.Forward(feats[0])
	if err != nil {
		t.Fatal(err)
	}
	rois := G.NewTensor(g, tensor.Float32, 2, G.WithShape(2, 5), G.WithName("train_rois"),
		G.WithValue(tensor.New(tensor.WithShape(2, 5), tensor.WithBacking([]float32{0, 4, 4, 40, 50, 0, 10, 0, 63, 30}))))
	pooled, err := m.RoIHeads.Pooler.Pool(feats, rois)
	if err != nil {
		t.Fatal(err)
	}
	h, err := m.RoIHeads.BoxHead.Forward(pooled)
	if err != nil {
		t.Fatal(err)
	}
	cls, bbox, err := m.RoIHeads.Predictor.Forward(h)
	if err != nil {
		t.Fatal(err)
	}
	if s := cls.Shape(); !s.Eq(tensor.Shape{2, 4}) {
		t.Fatalf("class logits %v", s)
	}
	if s := bbox.Shape(); !s.Eq(tensor.Shape{2, 16}) {
		t.Fatalf("deltas %v", s)
	}
	var loss *G.Node
	for _, n := range []*G.Node{obj, dlt, cls, bbox} {
		sq := G.Must(G.Square(n))
		s := G.Must(G.Sum(sq))
		if loss == nil {
			loss = s
		} else {
			loss = G.Must(G.Add(loss, s))
		}
	}
	learn := m.Learnables()
	if len(learn) < 10 {
		t.Fatalf("%d learnables", len(learn))
	}
	if _, err := G.Grad(loss, learn...); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(learn...))
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	for _, n := range learn {
		gv, err := n.Grad()
		if err != nil {
			t.Fatalf("%s: %v", n.Name(), err)
		}
		nz := false
		for _, v := range gv.Data().([]float32) {
			if v != 0 {
				nz = true
				break
			}
		}
		if !nz {
			t.Errorf("%s: zero gradient", n.Name())
		}
	}
}

// TestPredictInChunks runs the box stage in chunks of 7 RoIs (the last one
// short, padded) and in one run: the same detections up to float32
// rounding (oneDNN's kernels may sum in an order that depends on the
// batch size), and PredictFLOPs counts every chunk.
func TestPredictInChunks(t *testing.T) {
	m := newSmall(t, 1)
	defer m.Close()
	img := randImage(1, 85, 64)
	props, _, err := m.PredictProposals(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(props) < 15 || len(props)%7 == 0 {
		t.Fatalf("%d proposals: want at least 15, not a multiple of 7", len(props))
	}
	whole, err := m.Predict(img)
	if err != nil {
		t.Fatal(err)
	}
	flops := m.PredictFLOPs()
	m.boxChunk = 7
	chunked, err := m.Predict(img)
	if err != nil {
		t.Fatal(err)
	}
	chunks := (len(props) + 6) / 7
	if size := m.pred.box.out.classLogits.Shape()[0]; size != (len(props)+chunks-1)/chunks || m.pred.chunks != chunks {
		t.Errorf("%d proposals: %d chunks of %d rows, want %d of at most 7", len(props), m.pred.chunks, size, chunks)
	}
	if chunked.Len() != whole.Len() || !reflect.DeepEqual(chunked.Labels, whole.Labels) {
		t.Fatalf("in chunks of 7: labels %v, in one run %v", chunked.Labels, whole.Labels)
	}
	var db, ds float64
	for i := range whole.Boxes {
		a, b := whole.Boxes[i], chunked.Boxes[i]
		db = max(db, math.Abs(float64(a.X1-b.X1)), math.Abs(float64(a.Y1-b.Y1)), math.Abs(float64(a.X2-b.X2)), math.Abs(float64(a.Y2-b.Y2)))
		ds = max(ds, math.Abs(float64(whole.Scores[i]-chunked.Scores[i])))
	}
	t.Logf("%d detections; in chunks of 7 and in one run: worst box %.3g px, worst score %.3g (bounds 1e-3, 1e-5)", whole.Len(), db, ds)
	if db > 1e-3 || ds > 1e-5 {
		t.Errorf("in chunks of 7 and in one run: worst box %.3g px, worst score %.3g", db, ds)
	}
	if whole.Len() == 0 {
		t.Error("no detections to compare")
	}
	if f := m.PredictFLOPs(); f < flops {
		t.Errorf("PredictFLOPs in chunks %v, in one run %v: the chunks are not all counted", f, flops)
	}
}

// TestSetTestProposals checks that SetTestProposals bounds the proposals
// Predict uses (the top ones of the larger setting, as PredictProposals
// returns them), that the box head runs on one row per proposal, and that
// Predict's detections are those of a detector configured with that bound
// from the start.
func TestSetTestProposals(t *testing.T) {
	m := newSmall(t, 1)
	defer m.Close()
	img := randImage(1, 85, 64)
	all, _, err := m.PredictProposals(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) <= 5 {
		t.Fatalf("%d proposals with PostNMSTopNTest 30: too few to test a bound of 5", len(all))
	}
	before, err := m.Predict(img)
	if err != nil {
		t.Fatal(err)
	}
	if rows := m.pred.box.out.classLogits.Shape()[0]; rows != len(all) {
		t.Errorf("box head rows with PostNMSTopNTest 30: %d, want the %d proposals", rows, len(all))
	}
	m.SetTestProposals(5)
	few, _, err := m.PredictProposals(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(few) != 5 || !reflect.DeepEqual(few, all[:5]) {
		t.Errorf("with 5 test proposals: %v, want the first 5 of %v", few, all)
	}
	got, err := m.Predict(img)
	if err != nil {
		t.Fatalf("Predict after SetTestProposals: %v", err)
	}
	if rows := m.pred.box.out.classLogits.Shape()[0]; rows != 5 {
		t.Errorf("box head rows after SetTestProposals(5): %d, want 5", rows)
	}
	cfg := m.Config
	ref, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if err := ref.Load(m.State()); err != nil {
		t.Fatal(err)
	}
	want, err := ref.Predict(img)
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() == 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("detections after SetTestProposals(5): %d, a detector built with 5 proposals finds %d (or they differ)", got.Len(), want.Len())
	}
	if reflect.DeepEqual(got, before) {
		t.Errorf("the same %d detections with 30 and 5 proposals", got.Len())
	}
	t.Logf("detections: %d with 30 proposals, %d with 5", before.Len(), got.Len())
}
