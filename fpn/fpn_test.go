package fpn

import (
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/backbone"
	"resdet/weights"
)

// resnet50In are ResNet-50's C2..C5.
var resnet50In = []backbone.ShapeSpec{{Channels: 256, Stride: 4}, {Channels: 512, Stride: 8}, {Channels: 1024, Stride: 16}, {Channels: 2048, Stride: 32}}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "no levels", cfg: Config{}, want: "no input levels"},
		{name: "negative width", cfg: Config{In: fixtureInputs, OutChannels: -1}, want: "OutChannels -1"},
		{name: "unknown norm", cfg: Config{In: fixtureInputs, Norm: Norm(7)}, want: "unknown norm Norm(7)"},
		{name: "negative eps", cfg: Config{In: fixtureInputs, Norm: FrozenBN, BNEps: -1}, want: "BNEps -1"},
		{name: "zero channels", cfg: Config{In: []backbone.ShapeSpec{{Channels: 0, Stride: 4}}}, want: "input level 0"},
		{name: "coarsest first", cfg: Config{In: []backbone.ShapeSpec{{Channels: 8, Stride: 8}, {Channels: 8, Stride: 4}}},
			want: "input level 1: stride 4 after 8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(G.NewGraph(), tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestOutputShapes checks Forward's shapes against the rule: P_i has C_i's
// size, P6 is P5[::2, ::2], all OutChannels wide; and OutputShapes/Names.
func TestOutputShapes(t *testing.T) {
	cases := []struct {
		name  string
		sizes [4][2]int // C2..C5 (H, W)
		out   int
	}{
		{name: "800x1216 padded", sizes: [4][2]int{{200, 304}, {100, 152}, {50, 76}, {25, 38}}, out: 0},
		{name: "odd 81x113", sizes: [4][2]int{{21, 29}, {11, 15}, {6, 8}, {3, 4}}, out: 8},
		{name: "one pixel", sizes: [4][2]int{{4, 4}, {2, 2}, {1, 1}, {1, 1}}, out: 16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := G.NewGraph()
			f, err := New(g, Config{In: resnet50In, OutChannels: tc.out}, nil)
			if err != nil {
				t.Fatal(err)
			}
			width := tc.out
			if width == 0 {
				width = 256
			}
			in := make([]*G.Node, 4)
			for i, s := range tc.sizes {
				in[i] = G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, resnet50In[i].Channels, s[0], s[1]), G.WithName(fmt.Sprintf("c%d", i+2)))
			}
			out, err := f.Forward(in)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]tensor.Shape, 5)
			for i, s := range tc.sizes {
				want[i] = tensor.Shape{2, width, s[0], s[1]}
			}
			want[4] = tensor.Shape{2, width, (tc.sizes[3][0]-1)/2 + 1, (tc.sizes[3][1]-1)/2 + 1}
			for i, o := range out {
				if !o.Shape().Eq(want[i]) {
					t.Errorf("output %d: shape %v, want %v", i, o.Shape(), want[i])
				}
			}
			wantSpecs := []backbone.ShapeSpec{{Channels: width, Stride: 4}, {Channels: width, Stride: 8},
				{Channels: width, Stride: 16}, {Channels: width, Stride: 32}, {Channels: width, Stride: 64}}
			if got := f.OutputShapes(); !reflect.DeepEqual(got, wantSpecs) {
				t.Errorf("OutputShapes = %v, want %v", got, wantSpecs)
			}
			if got, want := f.OutputNames(), []string{"0", "1", "2", "3", "pool"}; !reflect.DeepEqual(got, want) {
				t.Errorf("OutputNames = %v, want %v", got, want)
			}
		})
	}
}

func TestForwardErrors(t *testing.T) {
	g := G.NewGraph()
	f, err := New(g, Config{In: fixtureInputs, OutChannels: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node := func(g *G.ExprGraph, name string, c, h int) *G.Node {
		return G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, c, h, h), G.WithName(name))
	}
	good := []*G.Node{node(g, "c2", 16, 8), node(g, "c3", 32, 4), node(g, "c4", 64, 2), node(g, "c5", 128, 1)}
	with := func(i int, n *G.Node) []*G.Node {
		c := append([]*G.Node(nil), good...)
		c[i] = n
		return c
	}
	cases := []struct {
		name string
		in   []*G.Node
		want string
	}{
		{name: "three maps", in: good[:3], want: "3 input maps, want 4"},
		{name: "nil map", in: with(1, nil), want: "input 1 is nil"},
		{name: "wrong channels", in: with(2, node(g, "c4x", 32, 2)), want: "input 2"},
		{name: "batch differs", in: with(3, G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 128, 1, 1), G.WithName("c5b"))), want: "input 3"},
		{name: "other graph", in: with(0, node(G.NewGraph(), "c2o", 16, 8)), want: "another graph"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.Forward(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Forward: error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := f.Forward(good); err != nil {
		t.Errorf("Forward on good inputs: %v", err)
	}
}

// stateNames lists the names the package doc promises for 4 levels.
func stateNames(norm Norm) []string {
	var names []string
	for _, blk := range []string{"inner_blocks", "layer_blocks"} {
		for i := 0; i < 4; i++ {
			p := fmt.Sprintf("%s%s.%d.", Prefix, blk, i)
			if norm == NoNorm {
				names = append(names, p+"0.weight", p+"0.bias")
			} else {
				names = append(names, p+"0.weight", p+"1.weight", p+"1.bias", p+"1.running_mean", p+"1.running_var")
			}
		}
	}
	sort.Strings(names)
	return names
}

// TestStateLoadRoundTrip: State has exactly torchvision's names and shapes,
// and Load(State) into a fresh FPN reproduces it; Learnables are the
// convolutions' weights (and biases without norm).
func TestStateLoadRoundTrip(t *testing.T) {
	for _, norm := range []Norm{NoNorm, FrozenBN} {
		t.Run(norm.String(), func(t *testing.T) {
			cfg := Config{In: fixtureInputs, OutChannels: 8, Norm: norm}
			a, err := New(G.NewGraph(), cfg, rand.New(rand.NewSource(1)))
			if err != nil {
				t.Fatal(err)
			}
			s := a.State()
			if got, want := s.Names(), stateNames(norm); !reflect.DeepEqual(got, want) {
				t.Fatalf("State names = %v, want %v", got, want)
			}
			for name, tn := range s {
				wantShape := []int{8}
				switch {
				case strings.HasSuffix(name, ".0.weight") && strings.Contains(name, "inner_blocks"):
					i := int(name[len(Prefix+"inner_blocks.")] - '0')
					wantShape = []int{8, fixtureInputs[i].Channels, 1, 1}
				case strings.HasSuffix(name, ".0.weight"):
					wantShape = []int{8, 8, 3, 3}
				}
				if !reflect.DeepEqual(tn.Shape, wantShape) {
					t.Errorf("%s: shape %v, want %v", name, tn.Shape, wantShape)
				}
			}
			// Make every tensor distinct from the initialisation.
			rng := rand.New(rand.NewSource(2))
			for _, tn := range s {
				for i := range tn.Data {
					tn.Data[i] = 0.5 + rng.Float32()
				}
			}
			b, err := New(G.NewGraph(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Load(s); err != nil {
				t.Fatal(err)
			}
			if got := b.State(); !reflect.DeepEqual(got, s) {
				t.Error("State after Load differs from the state loaded")
			}
			var learn []string
			for _, n := range b.Learnables() {
				learn = append(learn, n.Name())
			}
			sort.Strings(learn)
			var want []string
			for _, n := range stateNames(norm) {
				if strings.HasSuffix(n, ".0.weight") || strings.HasSuffix(n, ".0.bias") {
					want = append(want, n)
				}
			}
			if !reflect.DeepEqual(learn, want) {
				t.Errorf("Learnables = %v, want %v", learn, want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	cfg := Config{In: fixtureInputs, OutChannels: 8}
	ref, err := New(G.NewGraph(), cfg, rand.New(rand.NewSource(3)))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := New(G.NewGraph(), Config{In: fixtureInputs, OutChannels: 8, Norm: FrozenBN}, rand.New(rand.NewSource(3)))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(s weights.State)) weights.State {
		s := ref.State()
		f(s)
		return s
	}
	legacy := edit(func(s weights.State) {
		s[Prefix+"layer_blocks.2.bias"] = s[Prefix+"layer_blocks.2.0.bias"]
		delete(s, Prefix+"layer_blocks.2.0.bias")
	})
	cases := []struct {
		name string
		s    weights.State
		want string // "" means Load must succeed
	}{
		{name: "missing", s: edit(func(s weights.State) { delete(s, Prefix+"inner_blocks.1.0.bias") }),
			want: `missing tensor "backbone.fpn.inner_blocks.1.0.bias"`},
		{name: "wrong shape", s: edit(func(s weights.State) {
			s[Prefix+"layer_blocks.3.0.weight"] = weights.Tensor{Shape: []int{8, 8, 1, 1}, Data: make([]float32, 64)}
		}), want: `"backbone.fpn.layer_blocks.3.0.weight" has shape [8 8 1 1], want [8 8 3 3]`},
		{name: "v2 state into v1", s: v2.State(), want: "missing tensor"},
		{name: "unexpected", s: edit(func(s weights.State) { s[Prefix+"extra.weight"] = weights.Tensor{Shape: []int{1}, Data: []float32{1}} }),
			want: "unexpected tensors [backbone.fpn.extra.weight]"},
		{name: "legacy without upgrade", s: edit(func(s weights.State) {
			s[Prefix+"layer_blocks.2.bias"] = s[Prefix+"layer_blocks.2.0.bias"]
		}), want: "unexpected tensors [backbone.fpn.layer_blocks.2.bias]"},
		{name: "other parts and num_batches_tracked ignored", s: edit(func(s weights.State) {
			s["backbone.body.conv1.weight"] = weights.Tensor{Shape: []int{1}, Data: []float32{1}}
			s[Prefix+"inner_blocks.0.1.num_batches_tracked"] = weights.Tensor{Shape: []int{}, Data: []float32{0}}
		})},
		{name: "legacy upgraded", s: mustUpgrade(t, legacy)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(G.NewGraph(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = f.Load(tc.s)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if !reflect.DeepEqual(f.State(), ref.State()) {
					t.Error("loaded tensors differ from the reference's")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load: error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func mustUpgrade(t *testing.T, s weights.State) weights.State {
	t.Helper()
	u, err := UpgradeLegacyNames(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUpgradeLegacyNames(t *testing.T) {
	one := weights.Tensor{Shape: []int{1}, Data: []float32{1}}
	two := weights.Tensor{Shape: []int{1}, Data: []float32{2}}
	cases := []struct {
		name    string
		in      weights.State
		want    weights.State
		wantErr string
	}{
		{
			name: "renamed",
			in: weights.State{
				Prefix + "inner_blocks.0.weight": one, Prefix + "inner_blocks.0.bias": two,
				Prefix + "layer_blocks.3.weight": one, Prefix + "layer_blocks.12.bias": two,
			},
			want: weights.State{
				Prefix + "inner_blocks.0.0.weight": one, Prefix + "inner_blocks.0.0.bias": two,
				Prefix + "layer_blocks.3.0.weight": one, Prefix + "layer_blocks.12.0.bias": two,
			},
		},
		{
			name: "others kept",
			in: weights.State{
				Prefix + "inner_blocks.0.0.weight": one, Prefix + "inner_blocks.0.1.running_mean": two,
				"backbone.body.layer1.0.conv1.weight": one, "rpn.head.conv.weight": two,
				Prefix + "inner_blocks.x.weight": one, "fpn.inner_blocks.0.weight": two,
				Prefix + "inner_blocks.0.num_batches_tracked": one,
			},
			want: weights.State{
				Prefix + "inner_blocks.0.0.weight": one, Prefix + "inner_blocks.0.1.running_mean": two,
				"backbone.body.layer1.0.conv1.weight": one, "rpn.head.conv.weight": two,
				Prefix + "inner_blocks.x.weight": one, "fpn.inner_blocks.0.weight": two,
				Prefix + "inner_blocks.0.num_batches_tracked": one,
			},
		},
		{
			name:    "both forms",
			in:      weights.State{Prefix + "layer_blocks.1.bias": one, Prefix + "layer_blocks.1.0.bias": two},
			wantErr: `both "backbone.fpn.layer_blocks.1.bias" and its current name "backbone.fpn.layer_blocks.1.0.bias"`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UpgradeLegacyNames(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got.Names(), tc.want.Names())
			}
		})
	}
}
