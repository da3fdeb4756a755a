package ops

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
)

// RoIPoolOpts are the parameters of RoIPool, named as in
// torchvision.ops.roi_pool.
type RoIPoolOpts struct {
	// OutH, OutW is the output size per RoI (14x14 for the C4 head; the
	// paper's VGG used 7x7).
	OutH, OutW int
	// SpatialScale maps input-image pixels to feature cells (1/16 for C4).
	SpatialScale float32
}

// DefaultRoIPoolOpts returns 14x14 at scale 1/16.
func DefaultRoIPoolOpts() RoIPoolOpts { return RoIPoolOpts{OutH: 14, OutW: 14, SpatialScale: 1.0 / 16} }

func (o RoIPoolOpts) String() string {
	return fmt.Sprintf("%dx%d scale=%v", o.OutH, o.OutW, o.SpatialScale)
}

// RoIPool max-pools each RoI into a fixed grid, the Fast R-CNN layer, with
// the semantics of torchvision.ops.roi_pool (CPU kernel, float32): the RoI
// corners are scaled and rounded to cells (half away from zero), the RoI
// spans end-start+1 cells (at least 1), bin (ph, pw) covers cells
// [floor(ph*bin), ceil((ph+1)*bin)) clipped to the map, and an empty bin
// gives 0. feat is [N, C, H, W], rois [K, 5] (batch index, x1, y1, x2, y2 in
// input-image pixels); the result is [K, C, OutH, OutW].
//
// The gradient flows to feat only, each output's gradient going to the
// first cell of its bin holding its maximum (torchvision's argmax, found
// again in the backward pass from the forward output). Errors as for
// RoIAlign.
func RoIPool(feat, rois *G.Node, o RoIPoolOpts) (*G.Node, error) {
	return applyRoI(o, feat, rois, o.OutH, o.OutW, o.SpatialScale)
}

// poolBin is the cell range [h0, h1) x [w0, w1) of one output bin.
type poolBin struct{ h0, h1, w0, w1 int }

// bins computes the OutH*OutW bins of roi on an h x w map, reusing buf.
func (o RoIPoolOpts) bins(roi []float32, h, w int, buf []poolBin) []poolBin {
	scale := o.SpatialScale
	rnd := func(v float32) int { return int(math.Round(float64(float32(v * scale)))) }
	sw, sh, ew, eh := rnd(roi[1]), rnd(roi[2]), rnd(roi[3]), rnd(roi[4])
	rw, rh := max(ew-sw+1, 1), max(eh-sh+1, 1)
	bh := float32(rh) / float32(o.OutH)
	bw := float32(rw) / float32(o.OutW)
	buf = buf[:0]
	for ph := 0; ph < o.OutH; ph++ {
		h0 := int(math.Floor(float64(float32(ph) * bh)))
		h1 := int(math.Ceil(float64(float32(ph+1) * bh)))
		h0, h1 = min(max(h0+sh, 0), h), min(max(h1+sh, 0), h)
		for pw := 0; pw < o.OutW; pw++ {
			w0 := int(math.Floor(float64(float32(pw) * bw)))
			w1 := int(math.Ceil(float64(float32(pw+1) * bw)))
			w0, w1 = min(max(w0+sw, 0), w), min(max(w1+sw, 0), w)
			buf = append(buf, poolBin{h0, h1, w0, w1})
		}
	}
	return buf
}

// argmax returns the maximum of plane over the bin and its first position,
// or (0, -1) for an empty bin (and (-MaxFloat32, -1) if no value exceeds
// -MaxFloat32, e.g. all NaN), as the kernel.
func (b poolBin) argmax(plane []float32, w int) (float32, int) {
	if b.h1 <= b.h0 || b.w1 <= b.w0 {
		return 0, -1
	}
	m, at := float32(-math.MaxFloat32), -1
	for y := b.h0; y < b.h1; y++ {
		off := y*w + b.w0
		for x, v := range plane[off : y*w+b.w1] {
			if v > m {
				m, at = v, off+x
			}
		}
	}
	return m, at
}

// max4 returns the maxima over the bin of four planes (as argmax).
func (b poolBin) max4(p0, p1, p2, p3 []float32, w int) (m0, m1, m2, m3 float32) {
	if b.h1 <= b.h0 || b.w1 <= b.w0 {
		return 0, 0, 0, 0
	}
	m0, m1, m2, m3 = -math.MaxFloat32, -math.MaxFloat32, -math.MaxFloat32, -math.MaxFloat32
	n := b.w1 - b.w0
	for y := b.h0; y < b.h1; y++ {
		off := y*w + b.w0
		r0, r1, r2, r3 := p0[off:off+n], p1[off:off+n], p2[off:off+n], p3[off:off+n]
		for x := range r0 {
			if v := r0[x]; v > m0 {
				m0 = v
			}
			if v := r1[x]; v > m1 {
				m1 = v
			}
			if v := r2[x]; v > m2 {
				m2 = v
			}
			if v := r3[x]; v > m3 {
				m3 = v
			}
		}
	}
	return m0, m1, m2, m3
}

func roiPoolForward(g roiGeom, o RoIPoolOpts, feat, rois, out []float32) {
	hw, nb := g.H*g.W, g.OH*g.OW
	bufs := make([][]poolBin, workers(g.K))
	parallelItems(g.K, func(worker, k int) {
		bins := o.bins(rois[5*k:5*k+5], g.H, g.W, bufs[worker])
		bufs[worker] = bins
		batch := int(rois[5*k])
		c := 0
		for ; c+4 <= g.C; c += 4 {
			p0, p1, p2, p3 := planes4(feat, (batch*g.C+c)*hw, hw)
			d0, d1, d2, d3 := planes4(out, (k*g.C+c)*nb, nb)
			for i, b := range bins {
				d0[i], d1[i], d2[i], d3[i] = b.max4(p0, p1, p2, p3, g.W)
			}
		}
		for ; c < g.C; c++ {
			plane := feat[(batch*g.C+c)*hw : (batch*g.C+c+1)*hw]
			dst := out[(k*g.C+c)*nb : (k*g.C+c+1)*nb]
			for i, b := range bins {
				dst[i], _ = b.argmax(plane, g.W)
			}
		}
	})
}

// find returns the first position in the bin holding m, the bin's maximum
// from the forward pass: the kernel's argmax, since its scan keeps the first
// of equal maxima. It returns -1 for an empty bin and for m = -MaxFloat32,
// which the kernel reports without a position.
func (b poolBin) find(plane []float32, w int, m float32) int {
	if b.h1 <= b.h0 || b.w1 <= b.w0 || m == -math.MaxFloat32 {
		return -1
	}
	for y := b.h0; y < b.h1; y++ {
		off := y*w + b.w0
		for x, v := range plane[off : y*w+b.w1] {
			if v == m {
				return off + x
			}
		}
	}
	return -1
}

// roiPoolBackward computes gradFeat (overwritten) from the forward output y
// and gradOut, both [K, C, OH, OW].
func roiPoolBackward(g roiGeom, o RoIPoolOpts, feat, rois, y, gradOut, gradFeat []float32) {
	clear(gradFeat)
	hw, nb := g.H*g.W, g.OH*g.OW
	// Workers own disjoint channel ranges and visit the RoIs in order, so
	// every feature cell receives its contributions in the kernel's order.
	parallelRanges(g.C, func(c0, c1 int) {
		var bins []poolBin
		for k := 0; k < g.K; k++ {
			bins = o.bins(rois[5*k:5*k+5], g.H, g.W, bins)
			batch := int(rois[5*k])
			for c := c0; c < c1; c++ {
				plane := feat[(batch*g.C+c)*hw : (batch*g.C+c+1)*hw]
				gplane := gradFeat[(batch*g.C+c)*hw : (batch*g.C+c+1)*hw]
				src := gradOut[(k*g.C+c)*nb : (k*g.C+c+1)*nb]
				ys := y[(k*g.C+c)*nb : (k*g.C+c+1)*nb]
				for i, b := range bins {
					if at := b.find(plane, g.W, ys[i]); at >= 0 {
						gplane[at] += src[i]
					}
				}
			}
		}
	})
}

func (o RoIPoolOpts) name() string { return "RoIPool" }

func (o RoIPoolOpts) check(string, []float32, int) error { return nil }

func (o RoIPoolOpts) forward(g roiGeom, v roiValues, out []float32, _ *scratch) {
	roiPoolForward(g, o, v.feat, v.rois, out)
}

// gradInputs: the gradient finds each bin's argmax again from the feature
// map and the forward output.
func (o RoIPoolOpts) gradInputs() []roiInput { return []roiInput{inFeat, inRoIs, inOutput, inGrad} }

func (o RoIPoolOpts) backward(g roiGeom, v roiValues, gradFeat []float32, _ *scratch) {
	roiPoolBackward(g, o, v.feat, v.rois, v.out, v.grad, gradFeat)
}
