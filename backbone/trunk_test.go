package backbone

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"

	"resdet/internal/testutil"
)

// withBlocks returns cfg with the depth table's blocks per stage replaced by b.
func withBlocks(cfg Config, b [4]int) Config {
	cfg.blocks = b
	return cfg
}

// Narrow Detectron2 widths, as in ../shared/fixtures/detectron2 (WIDTH_PER_GROUP 16,
// RES2_OUT_CHANNELS 64), and the fixture arguments that build them in torchvision.
var narrowArgs = []string{"--width-per-group", "16", "--res2-out", "64"}

func args(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// TestParityPublishedTrunks compares the trunks of the published detectors (ResNeXt
// groups, Detectron2's stride in the 1x1, narrow widths, DC5 dilation in both
// conventions, BN epsilon 0) with torchvision models built or modified to compute
// the same (testdata/gen_fixtures.py), with random weights and BN statistics. Every
// case checks the logits, C4, Res5 on pooled-size features and the stem and res2 ..
// res5 from one Outputs pass; with frozen BN folded into the convolutions (Inference),
// unfolded (the training path: convolution with BN scale and shift) and, for some, as
// trainable BN in eval mode.
func TestParityPublishedTrunks(t *testing.T) {
	r50short := [4]int{1, 1, 1, 1}
	dc5short := [4]int{1, 1, 1, 2} // two res5 blocks: the first and a later one
	fixtures := map[string][]string{
		// ResNeXt-101 32x8d's widths (256 channels in 32 groups in res2's 3x3).
		"x32x8d": {"resnet101", "--layers", "1", "1", "1", "1", "--groups", "32", "--width-per-group", "8", "--size", "64", "96"},
		// 4 groups of 2: 8-channel activations, so the frozen-BN path runs in NCHW.
		"x4x2d": {"resnet50", "--layers", "1", "1", "1", "1", "--groups", "4", "--width-per-group", "2", "--size", "65", "97"},
		// Detectron2's R50 as in the fixture models: stride in the 1x1, narrow.
		"d2narrow": args([]string{"resnet50", "--variant", "stride1x1", "--size", "64", "96"}, narrowArgs),
		// DC5 as torchvision's replace_stride_with_dilation and as Detectron2's
		// RES5_DILATION 2 (with its stride in the 1x1).
		"dc5tv": args([]string{"resnet50", "--layers", "1", "1", "1", "2", "--dilate5", "tv", "--size", "64", "96"}, narrowArgs),
		"dc5d2": args([]string{"resnet50", "--layers", "1", "1", "1", "2", "--dilate5", "d2", "--variant", "stride1x1", "--size", "65", "97"}, narrowArgs),
		// torchvision's COCO_V1 FPN trunk: BN epsilon 0.
		"eps0": {"resnet50", "--layers", "1", "1", "1", "1", "--eps0", "--size", "64", "96"},
	}
	x32x8d := withBlocks(Config{Depth: 101, NumClasses: 1000, Groups: 32, WidthPerGroup: 8}, r50short)
	x4x2d := withBlocks(Config{Depth: 50, NumClasses: 1000, Groups: 4, WidthPerGroup: 2}, r50short)
	d2narrow := Config{Depth: 50, NumClasses: 1000, StrideIn1x1: true, WidthPerGroup: 16, Res2OutChannels: 64}
	dc5tv := withBlocks(Config{Depth: 50, NumClasses: 1000, WidthPerGroup: 16, Res2OutChannels: 64, Res5Dilation: 2, Res5FirstUndilated: true}, dc5short)
	dc5d2 := withBlocks(Config{Depth: 50, NumClasses: 1000, WidthPerGroup: 16, Res2OutChannels: 64, Res5Dilation: 2, StrideIn1x1: true}, dc5short)
	eps0 := withBlocks(Config{Depth: 50, NumClasses: 1000, BNEpsZero: true}, r50short)
	type variant struct {
		name string
		cfg  func(Config) Config
		tape bool
	}
	inference := variant{name: "inference folded", cfg: func(c Config) Config { c.Inference = true; return c }}
	unfolded := variant{name: "frozen unfolded", cfg: func(c Config) Config { return c }}
	trainable := variant{name: "trainable BN eval", cfg: func(c Config) Config { c.Norm = TrainableBN; return c }, tape: true}
	cases := []struct {
		name     string
		fixture  string
		cfg      Config
		variants []variant
	}{
		{name: "resnext 32x8d", fixture: "x32x8d", cfg: x32x8d, variants: []variant{inference, unfolded}},
		{name: "resnext 4x2d NCHW", fixture: "x4x2d", cfg: x4x2d, variants: []variant{inference, unfolded, trainable}},
		{name: "detectron2 R50 narrow stride in 1x1", fixture: "d2narrow", cfg: d2narrow, variants: []variant{inference, unfolded}},
		{name: "DC5 torchvision", fixture: "dc5tv", cfg: dc5tv, variants: []variant{inference, unfolded}},
		{name: "DC5 detectron2", fixture: "dc5d2", cfg: dc5d2, variants: []variant{inference, unfolded, trainable}},
		{name: "BN eps 0", fixture: "eps0", cfg: eps0, variants: []variant{inference, unfolded, trainable}},
	}
	var argLists [][]string
	index := map[string]int{}
	for name, a := range fixtures {
		index[name] = len(argLists)
		argLists = append(argLists, a)
	}
	dirs := genFixtures(t, argLists...)
	for _, tc := range cases {
		for _, v := range tc.variants {
			t.Run(tc.name+"/"+v.name, func(t *testing.T) {
				checkParity(t, dirs[index[tc.fixture]], v.cfg(tc.cfg), v.tape)
			})
		}
	}
	// The fixtures tell the conventions apart: the other DC5 convention and the
	// default epsilon miss torch by far more than the bound.
	for _, tc := range []struct {
		name    string
		fixture string
		cfg     Config
		output  string
	}{
		{name: "DC5 torchvision fixture, detectron2 dilation", fixture: "dc5tv", cfg: func() Config { c := dc5tv; c.Res5FirstUndilated = false; return c }(), output: "res5"},
		{name: "DC5 detectron2 fixture, torchvision dilation", fixture: "dc5d2", cfg: func() Config { c := dc5d2; c.Res5FirstUndilated = true; return c }(), output: "res5"},
		{name: "BN eps 0 fixture, eps 1e-5", fixture: "eps0", cfg: func() Config { c := eps0; c.BNEpsZero = false; return c }(), output: "res2"},
	} {
		t.Run("mismatch/"+tc.name, func(t *testing.T) {
			c := tc.cfg
			c.Inference = true
			errs := parityErrors(t, dirs[index[tc.fixture]], c, false)
			if e := errs[tc.output]; !(e > 100*parityTol) {
				t.Errorf("%s: max relative error %.3g, want > %g: the fixture does not tell the conventions apart", tc.output, e, 100*parityTol)
			}
		})
	}
}

// TestTrunkShapes checks the channels and strides the options give, against the
// published networks' (torchvision's resnext101_32x8d, Detectron2's narrow fixture
// models and DC5) and the block geometry of the 3x3 convolutions.
func TestTrunkShapes(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want map[string]ShapeSpec
		// res2's first block and res5's first and last blocks: [Width, Groups,
		// Dilation, Stride].
		res2, res5first, res5last [4]int
		nchw                      bool // some channel count is not a multiple of 16
	}{
		{name: "resnext101 32x8d", cfg: Config{Depth: 101, Groups: 32, WidthPerGroup: 8},
			want: map[string]ShapeSpec{"stem": {64, 4}, "res2": {256, 4}, "res3": {512, 8}, "res4": {1024, 16}, "res5": {2048, 32}},
			res2: [4]int{256, 32, 1, 1}, res5first: [4]int{2048, 32, 1, 2}, res5last: [4]int{2048, 32, 1, 1}},
		{name: "detectron2 narrow", cfg: Config{Depth: 50, StrideIn1x1: true, WidthPerGroup: 16, Res2OutChannels: 64},
			want: map[string]ShapeSpec{"stem": {64, 4}, "res2": {64, 4}, "res3": {128, 8}, "res4": {256, 16}, "res5": {512, 32}},
			res2: [4]int{16, 1, 1, 1}, res5first: [4]int{128, 1, 1, 2}, res5last: [4]int{128, 1, 1, 1}},
		{name: "R101 DC5 detectron2", cfg: Config{Depth: 101, StrideIn1x1: true, Res5Dilation: 2},
			want: map[string]ShapeSpec{"stem": {64, 4}, "res2": {256, 4}, "res3": {512, 8}, "res4": {1024, 16}, "res5": {2048, 16}},
			res2: [4]int{64, 1, 1, 1}, res5first: [4]int{512, 1, 2, 1}, res5last: [4]int{512, 1, 2, 1}},
		{name: "R50 DC5 torchvision", cfg: Config{Depth: 50, Res5Dilation: 2, Res5FirstUndilated: true},
			want: map[string]ShapeSpec{"stem": {64, 4}, "res2": {256, 4}, "res3": {512, 8}, "res4": {1024, 16}, "res5": {2048, 16}},
			res2: [4]int{64, 1, 1, 1}, res5first: [4]int{512, 1, 1, 1}, res5last: [4]int{512, 1, 2, 1}},
		{name: "wide resnet50-2", cfg: Config{Depth: 50, WidthPerGroup: 128},
			want: map[string]ShapeSpec{"stem": {64, 4}, "res2": {256, 4}, "res3": {512, 8}, "res4": {1024, 16}, "res5": {2048, 32}},
			res2: [4]int{128, 1, 1, 1}, res5first: [4]int{1024, 1, 1, 2}, res5last: [4]int{1024, 1, 1, 1}},
		{name: "resnext 4x2d", cfg: Config{Depth: 50, Groups: 4, WidthPerGroup: 2},
			want: map[string]ShapeSpec{"stem": {64, 4}, "res2": {256, 4}, "res3": {512, 8}, "res4": {1024, 16}, "res5": {2048, 32}},
			res2: [4]int{8, 4, 1, 1}, res5first: [4]int{64, 4, 1, 2}, res5last: [4]int{64, 4, 1, 1}, nchw: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(G.NewGraph(), tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.blk == tc.nchw {
				t.Errorf("activations in nChw16c: %v, want %v", r.blk, !tc.nchw)
			}
			got := r.OutputShapes()
			for _, name := range r.OutputNames() {
				if got[name] != tc.want[name] {
					t.Errorf("%s: %+v, want %+v", name, got[name], tc.want[name])
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("outputs %v, want %v", got, tc.want)
			}
			if r.C4Out() != tc.want["res4"] || r.Res5().Out != tc.want["res5"] {
				t.Errorf("C4Out %+v and Res5().Out %+v, want res4 %+v and res5 %+v", r.C4Out(), r.Res5().Out, tc.want["res4"], tc.want["res5"])
			}
			res5 := r.Stages[3].Blocks
			for _, c := range []struct {
				name string
				b    *Block
				want [4]int
			}{
				{"res2 block 0", r.Stages[0].Blocks[0], tc.res2},
				{"res5 block 0", res5[0], tc.res5first},
				{"res5 last block", res5[len(res5)-1], tc.res5last},
			} {
				if got := [4]int{c.b.Width, c.b.Groups, c.b.Dilation, c.b.Stride}; got != c.want {
					t.Errorf("%s: [Width Groups Dilation Stride] %v, want %v", c.name, got, c.want)
				}
				conv2 := c.b.convs[1].conv
				if c.b.Kind == Bottleneck && (conv2.shape[1] != c.b.Width/c.b.Groups || conv2.cs.dilation != c.b.Dilation || conv2.cs.pad != c.b.Dilation) {
					t.Errorf("%s: 3x3 weight %v, dilation %d, padding %d; want [%d %d 3 3], dilation and padding %d",
						c.name, conv2.shape, conv2.cs.dilation, conv2.cs.pad, c.b.Width, c.b.Width/c.b.Groups, c.b.Dilation)
				}
			}
		})
	}
}

// TestOutputsErrors: bad output names are errors naming the name and the choices.
func TestOutputsErrors(t *testing.T) {
	g := G.NewGraph()
	r, err := New(g, Config{Depth: 18}, nil)
	if err != nil {
		t.Fatal(err)
	}
	x := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 3, 32, 32), G.WithName("x"))
	for _, tc := range []struct {
		name  string
		names []string
		want  []string
	}{
		{name: "none", want: []string{"no output names", "res5"}},
		{name: "unknown", names: []string{"res2", "res6"}, want: []string{`"res6"`, "res5"}},
		{name: "torchvision name", names: []string{"layer1"}, want: []string{`"layer1"`}},
		{name: "twice", names: []string{"res3", "res3"}, want: []string{`"res3"`, "twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Outputs(x, tc.names...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
	c, err := New(G.NewGraph(), CIFARConfig(3), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.OutputNames(), " "); got != "stem res2 res3 res4" {
		t.Errorf("CIFAR OutputNames %q, want stem res2 res3 res4", got)
	}
}

// TestBNEpsZero: with BNEpsZero the folded scale is gamma/sqrt(var) exactly; with the
// default epsilon gamma/sqrt(var+1e-5).
func TestBNEpsZero(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		eps  float64
	}{
		{name: "default", cfg: Config{Depth: 18}, eps: 1e-5},
		{name: "BNEps", cfg: Config{Depth: 18, BNEps: 1e-3}, eps: 1e-3},
		{name: "BNEpsZero", cfg: Config{Depth: 18, BNEpsZero: true}, eps: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(G.NewGraph(), tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			bn := r.conv1.bn
			for i := range bn.vari {
				bn.gamma[i], bn.vari[i] = 2, 1e-4*float32(i+1)
			}
			scale, _ := bn.fold()
			for i, s := range scale {
				want := 2 / math.Sqrt(1e-4*float64(i+1)+tc.eps)
				if d := math.Abs(float64(s)-want) / want; d > 1e-6 {
					t.Fatalf("scale[%d] = %v, want %v", i, s, want)
				}
			}
		})
	}
}

// TestDetectron2FixtureShapes: the narrow Config (WidthPerGroup 16, Res2OutChannels 64,
// stride in the 1x1) has exactly the trunk tensors, with their shapes, of the
// Detectron2 fixture models (../shared/fixtures/detectron2: R50-C4 with res5 in the
// RoI head, R50-FPN with res2..res5 in the backbone), read from their model-zoo
// pickles by testdata/d2_trunk_shapes.py under torchvision's names.
func TestDetectron2FixtureShapes(t *testing.T) {
	dir := testutil.SharedDir(t, "fixtures", "detectron2")
	testutil.Python(t, "numpy")
	r, err := New(G.NewGraph(), Config{Depth: 50, StrideIn1x1: true, WidthPerGroup: 16, Res2OutChannels: 64}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ours := r.State()
	for _, model := range []string{"r50-c4", "r50-fpn"} {
		t.Run(model, func(t *testing.T) {
			pkl := filepath.Join(dir, model, "model_final.pkl")
			var theirs map[string][]int
			testutil.ScriptJSON(t, &theirs, filepath.Join("testdata", "d2_trunk_shapes.py"), pkl)
			for name, shape := range theirs {
				o, ok := ours[name]
				if !ok {
					t.Errorf("%s: in the Detectron2 model, not in ours", name)
				} else if !sameShape(o.Shape, shape) {
					t.Errorf("%s: shape %v, Detectron2 %v", name, o.Shape, shape)
				}
			}
			for name := range ours {
				if _, ok := theirs[name]; !ok {
					t.Errorf("%s: in ours, not in the Detectron2 model", name)
				}
			}
			t.Logf("%d trunk tensors compared", len(theirs))
			if len(theirs) != len(ours) {
				t.Errorf("%d trunk tensors in the Detectron2 model, %d in ours", len(theirs), len(ours))
			}
		})
	}
}
