package ops

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// runMultiLevel builds MultiLevelRoIAlign on learnable maps feats (shapes
// shapes) and constant rois and levels, runs it forward and backward with
// loss sum(y * gy), and returns y and dL/dfeats[l].
func runMultiLevel(t *testing.T, o RoIAlignOpts, scales []float32, feats [][]float32, shapes [][]int, rois, levels, gy []float32) (y []float32, grads [][]float32) {
	t.Helper()
	g := G.NewGraph()
	var fs G.Nodes
	for l, f := range feats {
		fs = append(fs, G.NewTensor(g, tensor.Float32, 4, G.WithShape(shapes[l]...), G.WithName("feat"+string(rune('0'+l))),
			G.WithValue(tensor.New(tensor.WithShape(shapes[l]...), tensor.WithBacking(append([]float32(nil), f...))))))
	}
	r := G.NewConstant(roiTensor(append([]float32(nil), rois...)), G.WithName("rois"))
	lv := G.NewConstant(tensor.New(tensor.WithShape(len(levels)), tensor.WithBacking(append([]float32(nil), levels...))), G.WithName("levels"))
	out, err := MultiLevelRoIAlign(fs, scales, r, lv, o)
	if err != nil {
		t.Fatal(err)
	}
	return forwardBackward(t, g, out, gy, fs...)
}

// TestMultiLevelRoIAlignEqualsPerLevel checks the multi-level op against its
// reference built from RoIAlign: on each level, RoIAlign (the graph op, run
// forward and backward) of that level's RoIs only, its output rows put back
// in RoI order. Forward and gradient must agree bit for bit, including a
// level no RoI maps to (gradient all zeros) and RoIs partly off the map.
func TestMultiLevelRoIAlignEqualsPerLevel(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	tests := []struct {
		name   string
		o      RoIAlignOpts
		n, c   int
		sizes  [][2]int // H, W per level
		scales []float32
		k      int
		skip   int // a level no RoI is assigned to, or -1
	}{
		{"7x7 sampling 2, four levels", RoIAlignOpts{OutH: 7, OutW: 7, SamplingRatio: 2}, 1, 6, [][2]int{{40, 56}, {20, 28}, {10, 14}, {5, 7}}, []float32{0.25, 0.125, 0.0625, 0.03125}, 40, -1},
		{"aligned adaptive, empty level, batch 2", RoIAlignOpts{OutH: 3, OutW: 4, SamplingRatio: 0, Aligned: true}, 2, 5, [][2]int{{24, 30}, {12, 15}, {6, 8}}, []float32{0.25, 0.125, 0.0625}, 30, 1},
		{"one level", RoIAlignOpts{OutH: 2, OutW: 2, SamplingRatio: 1}, 1, 9, [][2]int{{9, 11}}, []float32{0.5}, 12, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			L := len(tt.sizes)
			feats, shapes := make([][]float32, L), make([][]int, L)
			for l, s := range tt.sizes {
				shapes[l] = []int{tt.n, tt.c, s[0], s[1]}
				feats[l] = make([]float32, tt.n*tt.c*s[0]*s[1])
				for i := range feats[l] {
					feats[l][i] = float32(r.NormFloat64())
				}
			}
			iw, ih := float32(tt.sizes[0][1])/tt.scales[0], float32(tt.sizes[0][0])/tt.scales[0]
			rois := randRoIs(r, tt.k, tt.n, iw, ih)
			levels := make([]float32, tt.k)
			for k := range levels {
				l := r.Intn(L)
				for l == tt.skip {
					l = r.Intn(L)
				}
				levels[k] = float32(l)
			}
			bins := tt.c * tt.o.OutH * tt.o.OutW
			gy := make([]float32, tt.k*bins)
			for i := range gy {
				gy[i] = float32(r.NormFloat64())
			}
			y, grads := runMultiLevel(t, tt.o, tt.scales, feats, shapes, rois, levels, gy)

			wantY := make([]float32, len(y))
			for l := range L {
				var lr, lgy []float32
				var idx []int
				for k := range tt.k {
					if int(levels[k]) == l {
						idx = append(idx, k)
						lr = append(lr, rois[5*k:5*k+5]...)
						lgy = append(lgy, gy[k*bins:(k+1)*bins]...)
					}
				}
				if len(idx) == 0 {
					for i, v := range grads[l] {
						if v != 0 {
							t.Fatalf("level %d has no RoI but gradient %v at %d", l, v, i)
						}
					}
					continue
				}
				o := tt.o
				o.SpatialScale = tt.scales[l]
				ly, lg := runRoI(t, func(f, r *G.Node) (*G.Node, error) { return RoIAlign(f, r, o) }, feats[l], shapes[l], lr, lgy)
				for j, k := range idx {
					copy(wantY[k*bins:(k+1)*bins], ly[j*bins:(j+1)*bins])
				}
				nonzero := 0
				for i := range lg {
					if math.Float32bits(grads[l][i]) != math.Float32bits(lg[i]) {
						t.Fatalf("level %d: gradient[%d] = %v, per-level RoIAlign %v", l, i, grads[l][i], lg[i])
					}
					if lg[i] != 0 {
						nonzero++
					}
				}
				t.Logf("level %d: %d RoIs, gradient equal on %d cells (%d nonzero)", l, len(idx), len(lg), nonzero)
				if nonzero == 0 {
					t.Errorf("level %d: the gradient is all zeros", l)
				}
			}
			for i := range y {
				if math.Float32bits(y[i]) != math.Float32bits(wantY[i]) {
					t.Fatalf("output[%d] = %v, per-level RoIAlign %v", i, y[i], wantY[i])
				}
			}
		})
	}
}

func TestMultiLevelRoIAlignErrors(t *testing.T) {
	g := G.NewGraph()
	f0 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 8, 8), G.WithName("f0"))
	f1 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 4, 4), G.WithName("f1"))
	f3 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 3, 4, 4), G.WithName("f3"))
	rois := G.NewMatrix(g, tensor.Float32, G.WithShape(3, 5), G.WithName("rois"))
	levels := G.NewVector(g, tensor.Float32, G.WithShape(3), G.WithName("levels"))
	short := G.NewVector(g, tensor.Float32, G.WithShape(2), G.WithName("short"))
	o := RoIAlignOpts{OutH: 2, OutW: 2}
	tests := []struct {
		name   string
		feats  G.Nodes
		scales []float32
		levels *G.Node
		o      RoIAlignOpts
		want   string
	}{
		{"no maps", nil, nil, levels, o, "0 maps"},
		{"scales missing", G.Nodes{f0, f1}, []float32{0.5}, levels, o, "2 maps and 1 scales"},
		{"spatial scale set", G.Nodes{f0}, []float32{0.5}, levels, RoIAlignOpts{OutH: 2, OutW: 2, SpatialScale: 1}, "SpatialScale"},
		{"channels differ", G.Nodes{f0, f3}, []float32{0.5, 0.25}, levels, o, "map 1 has shape"},
		{"zero scale", G.Nodes{f0, f1}, []float32{0.5, 0}, levels, o, "map 1: spatial scale"},
		{"levels [2]", G.Nodes{f0, f1}, []float32{0.5, 0.25}, short, o, "levels are"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := MultiLevelRoIAlign(tt.feats, tt.scales, rois, tt.levels, tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestMultiLevelRoIAlignRunErrors(t *testing.T) {
	mg := multiAlignGeom{N: 1, C: 2, K: 2, o: RoIAlignOpts{OutH: 2, OutW: 2},
		levels: []alignLevel{{H: 8, W: 8, Scale: 0.5}, {H: 4, W: 4, Scale: 0.25}}}
	f0 := tensor.New(tensor.WithShape(1, 2, 8, 8), tensor.Of(tensor.Float32))
	f1 := tensor.New(tensor.WithShape(1, 2, 4, 4), tensor.Of(tensor.Float32))
	ok := roiTensor([]float32{0, 1, 1, 5, 5, 0, 2, 2, 9, 9})
	tests := []struct {
		name   string
		rois   *tensor.Dense
		levels []float32
		want   string
	}{
		{"level too high", ok, []float32{0, 2}, "roi 1: level 2"},
		{"negative level", ok, []float32{-1, 0}, "roi 0: level -1"},
		{"fractional level", ok, []float32{0, 0.5}, "roi 1: level 0.5"},
		{"bad batch index", roiTensor([]float32{1, 1, 1, 5, 5, 0, 2, 2, 9, 9}), []float32{0, 1}, "roi 0: batch index 1"},
		{"huge RoI", roiTensor([]float32{0, 0, 0, 1e9, 3, 0, 2, 2, 9, 9}), []float32{0, 1}, "sampling grid"},
	}
	for _, tt := range tests {
		lv := tensor.New(tensor.WithShape(2), tensor.WithBacking(tt.levels))
		for _, op := range []G.Op{multiAlignOp{g: mg}, multiAlignGradOp{g: mg, level: 1}} {
			t.Run(tt.name+"/"+strings.SplitN(op.String(), "{", 2)[0], func(t *testing.T) {
				var err error
				if _, isGrad := op.(multiAlignGradOp); isGrad {
					_, err = op.Do(tt.rois, lv, tensor.New(tensor.WithShape(2, 2, 2, 2), tensor.Of(tensor.Float32)))
				} else {
					_, err = op.Do(f0, f1, tt.rois, lv)
				}
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("err = %v, want it to mention %q", err, tt.want)
				}
			})
		}
	}
}

// Ops with different parameters must hash differently, or gorgonia merges
// their nodes.
func TestMultiLevelRoIAlignHash(t *testing.T) {
	base := multiAlignGeom{N: 1, C: 2, K: 3, o: RoIAlignOpts{OutH: 2, OutW: 2},
		levels: []alignLevel{{H: 8, W: 8, Scale: 0.5}, {H: 4, W: 4, Scale: 0.25}}}
	scale := base
	scale.levels = []alignLevel{{H: 8, W: 8, Scale: 0.5}, {H: 4, W: 4, Scale: 0.125}}
	aligned := base
	aligned.o.Aligned = true
	variants := []G.Op{multiAlignOp{g: base}, multiAlignOp{g: scale}, multiAlignOp{g: aligned},
		multiAlignGradOp{g: base, level: 0}, multiAlignGradOp{g: base, level: 1}}
	seen := map[uint32]string{}
	for _, op := range variants {
		h := op.Hashcode()
		if prev, ok := seen[h]; ok {
			t.Errorf("%v and %v hash alike", prev, op)
		}
		seen[h] = op.String()
	}
}
