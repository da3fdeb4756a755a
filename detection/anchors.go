package detection

import (
	"fmt"
	"math"

	"resdet/box"
)

// AnchorGenerator places anchors over a feature map as torchvision's
// AnchorGenerator with a single feature level.
type AnchorGenerator struct {
	// Sizes are the anchor sides sqrt(w*h) in input pixels: (128, 256, 512)
	// for the paper's C4 detector (COCO adds 64).
	Sizes []float32
	// AspectRatios are heights over widths: (0.5, 1, 2).
	AspectRatios []float32
	// PerLevel makes Sizes one size per feature level, finest first
	// (torchvision's FPN anchors ((32,), (64,), (128,), (256,), (512,)) on
	// P2..P6): level i places len(AspectRatios) anchors of side Sizes[i]
	// (see Level). False: every size on the one map.
	PerLevel bool `json:",omitempty"`
	// Detectron2 places the anchors as Detectron2's DefaultAnchorGenerator
	// (offset 0): CellAnchors are not rounded and come size-major, and the
	// stride is the feature map's own (ShapeSpec.Stride), not the padded
	// image size over the map size (see Strides).
	Detectron2 bool `json:",omitempty"`
}

// FPNAnchorGenerator returns torchvision's FPN anchors (_default_anchorgen):
// sizes 32, 64, 128, 256, 512 on P2..P6, one per level, and aspect ratios
// (0.5, 1, 2): A = 3 per cell on every level.
func FPNAnchorGenerator() AnchorGenerator {
	return AnchorGenerator{Sizes: []float32{32, 64, 128, 256, 512}, AspectRatios: []float32{0.5, 1, 2}, PerLevel: true}
}

// NumLevels returns the number of feature levels the generator places
// anchors on: len(Sizes) with PerLevel, else 1.
func (g AnchorGenerator) NumLevels() int {
	if g.PerLevel {
		return len(g.Sizes)
	}
	return 1
}

// Level returns the single-level generator of feature level i (0 finest):
// with PerLevel the size Sizes[i] and every aspect ratio; otherwise g. It
// panics if i is out of [0, NumLevels()).
func (g AnchorGenerator) Level(i int) AnchorGenerator {
	if i < 0 || i >= g.NumLevels() {
		panic(fmt.Sprintf("detection.AnchorGenerator.Level(%d) of %d levels", i, g.NumLevels()))
	}
	if !g.PerLevel {
		return g
	}
	return AnchorGenerator{Sizes: []float32{g.Sizes[i]}, AspectRatios: g.AspectRatios, Detectron2: g.Detectron2}
}

// DefaultAnchorGenerator returns the paper's anchors: 3 sizes (128, 256,
// 512) x 3 aspect ratios (0.5, 1, 2).
func DefaultAnchorGenerator() AnchorGenerator {
	return AnchorGenerator{Sizes: []float32{128, 256, 512}, AspectRatios: []float32{0.5, 1, 2}}
}

// NumAnchors returns A, the number of anchors per feature-map cell (of
// every level with PerLevel).
func (g AnchorGenerator) NumAnchors() int {
	if g.PerLevel {
		return len(g.AspectRatios)
	}
	return len(g.Sizes) * len(g.AspectRatios)
}

// Validate returns an error naming the field if a size or aspect ratio is
// not a positive finite number, or if either list is empty.
func (g AnchorGenerator) Validate() error {
	if len(g.Sizes) == 0 || len(g.AspectRatios) == 0 {
		return fmt.Errorf("detection: anchor generator: %d sizes and %d aspect ratios, want at least one of each",
			len(g.Sizes), len(g.AspectRatios))
	}
	for i, s := range g.Sizes {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("detection: anchor generator: Sizes[%d] = %v, want > 0", i, s)
		}
	}
	for i, r := range g.AspectRatios {
		if !(r > 0) || math.IsInf(float64(r), 0) {
			return fmt.Errorf("detection: anchor generator: AspectRatios[%d] = %v, want > 0", i, r)
		}
	}
	return nil
}

// CellAnchors returns the A anchors of the cell at the origin, centred on
// (0, 0), ratio-major: for each aspect ratio r (h/w), for each size s, the
// box of width s/sqrt(r) and height s*sqrt(r). As in torchvision, the
// half-sides are computed in float32 and each coordinate is rounded to an
// integer (half to even), so e.g. ratio 0.5, size 128 gives
// (-91, -45, 91, 45).
//
// With PerLevel it returns those of level 0; use Level(i).CellAnchors().
// With Detectron2 set, the order is size-major (for each size s, for each
// ratio r) and the box is (-w/2, -h/2, w/2, h/2) with w = sqrt(s*s/r) and
// h = r*w computed in float64, then converted to float32, not rounded:
// size 32, ratio 0.5 gives (-22.627417, -11.313708, 22.627417, 11.313708).
func (g AnchorGenerator) CellAnchors() []box.Box {
	if g.PerLevel {
		g = g.Level(0)
	}
	out := make([]box.Box, 0, g.NumAnchors())
	if g.Detectron2 {
		for _, s := range g.Sizes {
			for _, r := range g.AspectRatios {
				w := math.Sqrt(float64(s) * float64(s) / float64(r))
				h := float64(r) * w
				out = append(out, box.Box{X1: float32(-w / 2), Y1: float32(-h / 2), X2: float32(w / 2), Y2: float32(h / 2)})
			}
		}
		return out
	}
	for _, r := range g.AspectRatios {
		hr := float32(math.Sqrt(float64(r)))
		wr := 1 / hr
		for _, s := range g.Sizes {
			w, h := wr*s, hr*s
			out = append(out, box.Box{X1: round(-w / 2), Y1: round(-h / 2), X2: round(w / 2), Y2: round(h / 2)})
		}
	}
	return out
}

func round(v float32) float32 { return float32(math.RoundToEven(float64(v))) }

// Anchors returns the L = featH*featW*A anchors of a feature map of featH x
// featW cells with the given strides in input pixels: cell (y, x) shifts the
// cell anchors by (x*strideW, y*strideH). The order is cell-major (y, then
// x), anchor-minor, the order of the RPN head outputs after FlattenRPN.
//
// torchvision computes the stride of each dimension as the padded batch
// image size divided (integer division) by the feature size: see Stride.
//
// With PerLevel these are level 0's; MultiLevelAnchors places every level.
func (g AnchorGenerator) Anchors(featH, featW, strideH, strideW int) []box.Box {
	cell := g.CellAnchors()
	out := make([]box.Box, 0, featH*featW*len(cell))
	for y := 0; y < featH; y++ {
		sy := float32(y * strideH)
		for x := 0; x < featW; x++ {
			sx := float32(x * strideW)
			for _, a := range cell {
				out = append(out, box.Box{X1: sx + a.X1, Y1: sy + a.Y1, X2: sx + a.X2, Y2: sy + a.Y2})
			}
		}
	}
	return out
}

// Strides returns the anchor strides (y, x) in input pixels of a featH x
// featW map whose backbone stride is featStride, in a padded input of
// padH x padW: featStride for Detectron2 anchors, Stride of each dimension
// (torchvision) otherwise.
func (g AnchorGenerator) Strides(padH, padW, featH, featW, featStride int) (strideH, strideW int) {
	if g.Detectron2 {
		return featStride, featStride
	}
	return Stride(padH, featH), Stride(padW, featW)
}

// Stride returns torchvision's anchor stride for one dimension: the padded
// image size divided by the feature-map size, rounded down (16 for a C4
// trunk on an image padded to a multiple of 16 or 32). It panics if
// featSize < 1.
func Stride(imageSize, featSize int) int {
	if featSize < 1 {
		panic(fmt.Sprintf("detection.Stride: feature size %d", featSize))
	}
	return imageSize / featSize
}

// MultiLevelAnchors returns the anchors of every level concatenated, level
// 0 (finest) first, each level's in the order of Anchors: level i has
// feats[i].W x feats[i].H cells (W, H in cells) and the strides torchvision
// computes from the padded image, Stride(padded.H, H) and Stride(padded.W,
// W): P2..P5 get 4..32 exactly on an image padded to 32, but P6 of an
// 800-high image (13 cells) gets 800/13 = 61, not 64. It panics if
// len(feats) != NumLevels().
func (g AnchorGenerator) MultiLevelAnchors(padded Size, feats []Size) []box.Box {
	if len(feats) != g.NumLevels() {
		panic(fmt.Sprintf("detection.AnchorGenerator.MultiLevelAnchors: %d feature maps for %d levels", len(feats), g.NumLevels()))
	}
	var out []box.Box
	for i, f := range feats {
		out = append(out, g.Level(i).Anchors(f.H, f.W, Stride(padded.H, f.H), Stride(padded.W, f.W))...)
	}
	return out
}
