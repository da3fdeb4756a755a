package ops

import (
	"fmt"
	"math"
	"sync"

	G "gorgonia.org/gorgonia"

	"resdet/internal/vec"
	"resdet/nn"
)

// RoIAlignOpts are the parameters of RoIAlign, named as in
// torchvision.ops.roi_align.
type RoIAlignOpts struct {
	// OutH, OutW is the output size per RoI (14x14 for the C4 head).
	OutH, OutW int
	// SpatialScale maps input-image pixels to feature cells (1/16 for C4).
	SpatialScale float32
	// SamplingRatio is the number of sampling points per bin and axis; <= 0
	// means adaptive: ceil(RoI side / output side) in feature cells, per RoI.
	SamplingRatio int
	// Aligned shifts the RoI by -0.5 cell so that pixel centres line up
	// (Detectron2's ROIAlignV2); false is torchvision's default and
	// Faster R-CNN's, which also forces malformed RoIs to at least 1x1 cell.
	Aligned bool
	// Step > 1 computes only the bins (Step*i, Step*j) of the OutH x OutW
	// grid: the output is [K, C, (OutH-1)/Step+1, (OutW-1)/Step+1], the
	// values of those bins in the full output, bit for bit (bin sizes and
	// the adaptive sampling grid stay those of OutH x OutW). That is all a
	// stride-Step 1x1 convolution without padding reads of the full output
	// (the first block of a res5 box head with its stride on the 1x1,
	// Detectron2's construction), at a Step^2-th of the work and memory, in
	// the forward and the backward pass. 0 or 1: every bin.
	Step int
}

// DefaultRoIAlignOpts returns the C4 head's RoIAlign as torchvision's
// MultiScaleRoIAlign(["0"], 14, sampling_ratio=0) builds it on a stride-16
// map: 14x14, scale 1/16, adaptive sampling, not aligned.
func DefaultRoIAlignOpts() RoIAlignOpts {
	return RoIAlignOpts{OutH: 14, OutW: 14, SpatialScale: 1.0 / 16, SamplingRatio: 0, Aligned: false}
}

func (o RoIAlignOpts) String() string {
	s := fmt.Sprintf("%dx%d scale=%v sampling=%d aligned=%v", o.OutH, o.OutW, o.SpatialScale, o.SamplingRatio, o.Aligned)
	if o.Step > 1 {
		s += fmt.Sprintf(" step=%d", o.Step)
	}
	return s
}

// OutSize returns the output's bins per RoI, OH x OW: OutH x OutW, or with
// Step > 1 every Step-th of them, (OutH-1)/Step+1 x (OutW-1)/Step+1.
func (o RoIAlignOpts) OutSize() (oh, ow int) {
	s := o.step()
	return (o.OutH-1)/s + 1, (o.OutW-1)/s + 1
}

// step returns Step, at least 1.
func (o RoIAlignOpts) step() int { return max(o.Step, 1) }

// shapes is roiShapes for RoIAlign's options: it also rejects a negative
// Step, and sizes the output by OutSize.
func (o RoIAlignOpts) shapes(op string, feat, rois *G.Node, scale float32) (roiGeom, error) {
	if o.Step < 0 {
		return roiGeom{}, fmt.Errorf("ops: %s: Step = %d, want >= 0", op, o.Step)
	}
	if o.OutH < 1 || o.OutW < 1 {
		return roiGeom{}, fmt.Errorf("ops: %s: output size %dx%d, want >= 1x1", op, o.OutH, o.OutW)
	}
	oh, ow := o.OutSize()
	return roiShapes(op, feat, rois, oh, ow, scale)
}

// RoIAlign extracts a fixed-size feature for each RoI by bilinear sampling
// and averaging, with the semantics of torchvision.ops.roi_align (its CPU
// kernel, float32): feat is [N, C, H, W], rois [K, 5] (batch index, x1, y1,
// x2, y2 in input-image pixels); the result is [K, C, OutH, OutW] (with
// Step > 1, its bins (Step*i, Step*j) only: [K, C, OutSize()]).
//
// Each output bin averages a grid of sampling points; a point more than one
// cell outside the map contributes 0, one within a cell of the border is
// clamped to it. The gradient flows to feat only: rois are treated as
// constants (approximate joint training). The forward pass is parallel over
// RoIs, the backward pass over channels, with nn.Threads() goroutines; the
// forward pass computes torchvision's sums in its order, value for value
// (on a channels-last copy of feat, which the op keeps between runs:
// N*C*H*W floats), and the backward pass adds the contributions to each
// feature cell in the order of torchvision's kernel. With non-finite
// features the outputs may differ from torchvision's where it multiplies
// an infinity by a zero weight.
//
// RoIAlign returns an error naming the shapes if feat is not 4-D, rois not
// [K, 5] with K >= 1, the output size or scale is not positive or Step is
// negative. When run,
// the op returns an error for a RoI whose batch index is not an integer in
// [0, N) (torchvision truncates it) or that has a non-finite coordinate.
func RoIAlign(feat, rois *G.Node, o RoIAlignOpts) (*G.Node, error) {
	g, err := o.shapes(o.name(), feat, rois, o.SpatialScale)
	if err != nil {
		return nil, err
	}
	return G.ApplyOp(roiOp{g: g, k: o, buf: new(scratch)}, feat, rois)
}

// alignSample is one bilinear sampling point: the four neighbouring cells
// (offsets into a channel plane) and their weights. ok is false for a point
// outside the map, whose weights are 0.
type alignSample struct {
	p  [4]int32
	w  [4]float32
	ok bool
}

// alignPlan is the sampling plan of one RoI, shared by all channels: the
// output's bins (OutSize) of gh*gw samples each.
type alignPlan struct {
	batch   int
	gh, gw  int
	samples []alignSample
}

// grid returns the RoI's start (y, x) and bin size (h, w) in feature cells
// and its sampling grid per bin, with the float32 arithmetic of the kernel.
func (o RoIAlignOpts) grid(roi []float32) (sh, sw, bh, bw float32, gh, gw int) {
	scale := o.SpatialScale
	var off float32
	if o.Aligned {
		off = 0.5
	}
	sw = float32(roi[1]*scale) - off
	sh = float32(roi[2]*scale) - off
	ew := float32(roi[3]*scale) - off
	eh := float32(roi[4]*scale) - off
	rw, rh := ew-sw, eh-sh
	if !o.Aligned {
		rw, rh = max(rw, 1), max(rh, 1)
	}
	bh = rh / float32(o.OutH)
	bw = rw / float32(o.OutW)
	gh, gw = o.SamplingRatio, o.SamplingRatio
	if o.SamplingRatio <= 0 {
		// ceil(roi side / output side) in float32, as the kernel; bounded
		// here so that absurd RoIs cannot overflow (check rejects them).
		gh = int(min(math.Ceil(float64(rh/float32(o.OutH))), maxGrid+1))
		gw = int(min(math.Ceil(float64(rw/float32(o.OutW))), maxGrid+1))
	}
	return sh, sw, bh, bw, max(gh, 0), max(gw, 0)
}

// maxGrid bounds the adaptive sampling grid per bin and axis, and
// maxSamples the sampling points of one RoI (160 MB of plan). The C4 head on
// a 1000-pixel image needs at most 14*14*5*5 = 4900; a RoI needing more than
// maxSamples is thousands of times larger than its feature map.
const (
	maxGrid    = 1 << 10
	maxSamples = 1 << 22
)

// check returns an error naming the first RoI whose sampling plan
// would be unreasonably large.
func (o RoIAlignOpts) check(op string, rois []float32, k int) error {
	for i := 0; i < k; i++ {
		if err := o.checkRoI(op, i, rois[5*i:5*i+5]); err != nil {
			return err
		}
	}
	return nil
}

// checkRoI returns an error naming RoI i (roi, 5 values) if its sampling
// plan would be unreasonably large.
func (o RoIAlignOpts) checkRoI(op string, i int, roi []float32) error {
	_, _, _, _, gh, gw := o.grid(roi)
	if gh > maxGrid || gw > maxGrid || o.OutH*o.OutW*gh*gw > maxSamples {
		return fmt.Errorf("ops: %s: roi %d %v: sampling grid %dx%d per bin, more than %d points per RoI",
			op, i, roi, gh, gw, maxSamples)
	}
	return nil
}

// plan computes the sampling plan of roi (5 values) on an h x w map,
// reusing buf. The arithmetic follows the float32 kernel step by step.
func (o RoIAlignOpts) plan(roi []float32, h, w int, buf []alignSample) alignPlan {
	sh, sw, bh, bw, gh, gw := o.grid(roi)
	oh, ow := o.OutSize()
	n := oh * ow * gh * gw
	if cap(buf) < n {
		buf = make([]alignSample, n)
	}
	buf = buf[:n]
	fgh, fgw := float32(gh), float32(gw)
	fh, fw := float32(h), float32(w)
	i := 0
	step := o.step()
	for ph := 0; ph < o.OutH; ph += step {
		y0 := sh + float32(float32(ph)*bh)
		for pw := 0; pw < o.OutW; pw += step {
			x0 := sw + float32(float32(pw)*bw)
			for iy := 0; iy < gh; iy++ {
				y := y0 + float32(float32(float32(iy)+0.5)*bh)/fgh
				for ix := 0; ix < gw; ix++ {
					x := x0 + float32(float32(float32(ix)+0.5)*bw)/fgw
					buf[i] = bilinear(y, x, h, w, fh, fw)
					i++
				}
			}
		}
	}
	return alignPlan{batch: int(roi[0]), gh: gh, gw: gw, samples: buf}
}

// bilinear returns the sampling point at (y, x) in cells of an h x w map.
func bilinear(y, x float32, h, w int, fh, fw float32) alignSample {
	if !(y >= -1 && y <= fh && x >= -1 && x <= fw) {
		return alignSample{}
	}
	y, x = max(y, 0), max(x, 0)
	yl, xl := int(y), int(x)
	var yh, xh int
	if yl >= h-1 {
		yl, yh = h-1, h-1
		y = float32(yl)
	} else {
		yh = yl + 1
	}
	if xl >= w-1 {
		xl, xh = w-1, w-1
		x = float32(xl)
	} else {
		xh = xl + 1
	}
	ly, lx := y-float32(yl), x-float32(xl)
	hy, hx := 1-ly, 1-lx
	return alignSample{
		p:  [4]int32{int32(yl*w + xl), int32(yl*w + xh), int32(yh*w + xl), int32(yh*w + xh)},
		w:  [4]float32{hy * hx, hy * lx, ly * hx, ly * lx},
		ok: true,
	}
}

// roiAlignForward computes out [K, C, OH, OW] from feat and rois, in
// blocks of block channels (1: NCHW; B: nChw<B>c, RoIAlignBlocked's
// output). A RoI's bins go to rows [bins, c1-c0] first, then to out in
// runs (blockRows): written bin by bin, each bin would touch every channel
// plane (or block) of the RoI.
func roiAlignForward(g roiGeom, o RoIAlignOpts, feat, rois, out []float32, buf *scratch, block int) {
	bins := g.OH * g.OW
	alignForward(g, o, feat, rois, buf, func(k, c0, c1 int, s *alignScratch) binWriter {
		n := c1 - c0
		rows := s.rowBuf(bins * n)
		return binWriter{
			bin:  func(bin int, v []float32, count float32) { vec.Div(rows[bin*n:(bin+1)*n], v, count) },
			done: func() { blockRows(out[k*g.C*bins:(k+1)*g.C*bins], rows, bins, c0, c1, block, false) },
		}
	})
}

// binWriter receives one RoI's output for a range of channels: bin(b, v,
// count) for every bin b in order, v holding the bin's sums over its
// samples (scratch: the writer may overwrite it) and count its sample
// count (the divisor), then done (if not nil).
type binWriter struct {
	bin  func(b int, v []float32, count float32)
	done func()
}

// alignForward runs RoIAlign's forward pass on feat [N, C, H, W] (NCHW) and
// rois: for each RoI k and channel range [c0, c1) it calls out for the
// writer of the result (s is the calling goroutine's scratch), from up to
// nn.Threads() goroutines at once. It works on a channels-last copy of
// feat (in buf), so that a sampling point's four cells are four runs of
// contiguous channels, combined by vec.Bilerp (alignBins).
func alignForward(g roiGeom, o RoIAlignOpts, feat, rois []float32, buf *scratch, out func(k, c0, c1 int, s *alignScratch) binWriter) {
	hw := g.H * g.W
	last, scr := buf.take(g.N * hw * g.C)
	defer buf.release()
	for n := 0; n < g.N; n++ {
		src, dst := feat[n*g.C*hw:(n+1)*g.C*hw], last[n*hw*g.C:(n+1)*hw*g.C]
		parallelRanges(hw, func(lo, hi int) { transpose(dst[lo*g.C:hi*g.C], g.C, src[lo:], hw, g.C, hi-lo) })
	}
	roiAlignItems(g.K, g.C,
		func(k int, buf []alignSample) alignPlan { return o.plan(rois[5*k:5*k+5], g.H, g.W, buf) },
		func(worker, k int, p *alignPlan, c0, c1 int) {
			s := &scr[worker]
			w := out(k, c0, c1, s)
			alignBins(p, last[p.batch*hw*g.C:(p.batch+1)*hw*g.C], g.C, c0, c1, g.OH*g.OW, s, w.bin)
			if w.done != nil {
				w.done()
			}
		})
}

// alignScratch is one goroutine's buffers for alignBins and its writers.
type alignScratch struct{ v, rows []float32 }

// rowBuf returns the rows buffer (a RoI's bins by its channel range, for
// the writers and the backward pass) grown to n values, contents undefined.
func (s *alignScratch) rowBuf(n int) []float32 {
	if cap(s.rows) < n {
		s.rows = make([]float32, n)
	}
	return s.rows[:n]
}

// alignBins computes channels [c0, c1) of one RoI's output from its plan p
// and src, the RoI's image channels-last ([H*W, C]), and hands each bin's
// sums to put, with the count to divide them by.
//
// The arithmetic is torchvision's float32 kernel's, value for value: each
// sample's four weighted cells are summed in order (((w0*a + w1*b) + w2*c)
// + w3*d), each product and sum rounded to float32, the samples are added
// to the bin's sum (starting at 0) in order, and the sum is divided by the
// sample count (put's part). vec.Bilerp does a sample over all channels at
// once. Samples outside the map are skipped rather than added as zeros
// (x + 0 = x but for the sign of a zero, and a bin's sum, 0 + val, is never
// -0); a bin with none has the sum 0.
func alignBins(p *alignPlan, src []float32, C, c0, c1, bins int, s *alignScratch, put func(bin int, v []float32, count float32)) {
	n := c1 - c0
	if cap(s.v) < n {
		s.v = make([]float32, n)
	}
	v := s.v[:n]
	ns := p.gh * p.gw
	count := float32(max(ns, 1))
	for bin := range bins {
		add := false
		for i := range p.samples[bin*ns : (bin+1)*ns] {
			sp := &p.samples[bin*ns+i]
			if !sp.ok {
				continue
			}
			a, b, c, d := int(sp.p[0])*C, int(sp.p[1])*C, int(sp.p[2])*C, int(sp.p[3])*C
			vec.Bilerp(v, src[a+c0:a+c1], src[b+c0:b+c1], src[c+c0:c+c1], src[d+c0:d+c1], &sp.w, add)
			add = true
		}
		if !add {
			clear(v)
		}
		put(bin, v, count)
	}
}

// transpose writes the rows x cols matrix src (row stride ss) transposed
// into dst (cols x rows, row stride ds): dst[j*ds+i] = src[i*ss+j]. It
// works in tiles of 16 columns by 8 rows, so that each tile reads eight
// runs of 16 values and writes 16 runs of eight.
func transpose(dst []float32, ds int, src []float32, ss, rows, cols int) {
	const tc, tr = 16, 8
	for j0 := 0; j0 < cols; j0 += tc {
		j1 := min(j0+tc, cols)
		i := 0
		for ; i+tr <= rows; i += tr {
			r0 := src[i*ss+j0 : i*ss+j1]
			r1 := src[(i+1)*ss+j0 : (i+1)*ss+j1][:len(r0)]
			r2 := src[(i+2)*ss+j0 : (i+2)*ss+j1][:len(r0)]
			r3 := src[(i+3)*ss+j0 : (i+3)*ss+j1][:len(r0)]
			r4 := src[(i+4)*ss+j0 : (i+4)*ss+j1][:len(r0)]
			r5 := src[(i+5)*ss+j0 : (i+5)*ss+j1][:len(r0)]
			r6 := src[(i+6)*ss+j0 : (i+6)*ss+j1][:len(r0)]
			r7 := src[(i+7)*ss+j0 : (i+7)*ss+j1][:len(r0)]
			for j := range r0 {
				d := dst[(j0+j)*ds+i : (j0+j)*ds+i+tr]
				d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7] = r0[j], r1[j], r2[j], r3[j], r4[j], r5[j], r6[j], r7[j]
			}
		}
		for ; i < rows; i++ {
			for j := j0; j < j1; j++ {
				dst[j*ds+i] = src[i*ss+j]
			}
		}
	}
}

// scratch is what an op keeps between its runs (a RoI op runs once per
// image and box chunk, and new buffers each time would be garbage of the
// map's size): RoIAlign's channels-last copy of its map, and each
// goroutine's alignScratch. A nil *scratch allocates on every take.
type scratch struct {
	mu      sync.Mutex // held from take to release
	buf     []float32
	workers []alignScratch
}

// take returns the buffer grown to n values (contents undefined) and one
// alignScratch per goroutine (nn.Threads()); release them when done.
func (s *scratch) take(n int) ([]float32, []alignScratch) {
	if s == nil {
		return make([]float32, n), make([]alignScratch, nn.Threads())
	}
	s.mu.Lock()
	if cap(s.buf) < n {
		s.buf = make([]float32, n)
	}
	if t := nn.Threads(); len(s.workers) < t {
		s.workers = append(s.workers, make([]alignScratch, t-len(s.workers))...)
	}
	return s.buf[:n], s.workers
}

// release ends the use take began.
func (s *scratch) release() {
	if s != nil {
		s.mu.Unlock()
	}
}

// roiAlignItems runs the forward pass of K RoIs of C channels in parallel
// over nn.Threads() goroutines: items are (RoI, channel block), a block all
// channels when there are many RoIs, fewer when there are few, so that
// every goroutine has work. For each item, run gets the RoI's sampling plan,
// which plan computes (reusing buf) once per RoI and goroutine.
func roiAlignItems(K, C int, plan func(k int, buf []alignSample) alignPlan, run func(worker, k int, p *alignPlan, c0, c1 int)) {
	blocks := 1
	if t := workers(K * C); K < 8*t {
		blocks = min(C, (8*t+K-1)/K)
	}
	type scratch struct {
		k    int
		plan alignPlan
	}
	scr := make([]scratch, workers(K*blocks))
	for i := range scr {
		scr[i].k = -1
	}
	parallelItems(K*blocks, func(worker, item int) {
		s := &scr[worker]
		k, b := item/blocks, item%blocks
		if s.k != k {
			s.plan = plan(k, s.plan.samples)
			s.k = k
		}
		run(worker, k, &s.plan, b*C/blocks, (b+1)*C/blocks)
	})
}

// roiAlignBackward computes gradFeat [N, C, H, W] (overwritten) from
// gradOut [K, C, OH, OW], in blocks of block channels (1: NCHW; B: the
// chain gradient's nChw<B>c, see blockRows). buf is the op's scratch (nil:
// allocate).
//
// It accumulates a channels-last gradient [N, H*W, C] (in buf): each
// sample's share of its bin's gradient, float32(g*w) / count as in
// torchvision's kernel, is added to its four cells over a run of channels
// at once (vec.AddMulDiv), and the result is transposed into gradFeat.
// Workers own disjoint channel ranges and visit the RoIs, bins, samples
// and cells in the kernel's order, so every cell of every channel receives
// its contributions in torchvision's order: the sums are its, to the bit.
func roiAlignBackward(g roiGeom, o RoIAlignOpts, rois, gradOut, gradFeat []float32, block int, buf *scratch) {
	hw, bins := g.H*g.W, g.OH*g.OW
	last, scr := buf.take(g.N * hw * g.C)
	defer buf.release()
	clear(last)
	parallelWorkers(g.C, func(worker, c0, c1 int) {
		n := c1 - c0
		s := &scr[worker]
		rows := s.rowBuf(bins * n)
		var samples []alignSample
		for k := range g.K {
			p := o.plan(rois[5*k:5*k+5], g.H, g.W, samples)
			samples = p.samples
			ns := p.gh * p.gw
			if ns == 0 {
				continue
			}
			count := float32(ns)
			blockRows(gradOut[k*g.C*bins:(k+1)*g.C*bins], rows, bins, c0, c1, block, true)
			dst := last[p.batch*hw*g.C : (p.batch+1)*hw*g.C]
			for bin := range bins {
				gb := rows[bin*n : (bin+1)*n]
				for i := range ns {
					sp := &p.samples[bin*ns+i]
					if !sp.ok {
						continue
					}
					for j, cell := range sp.p {
						off := int(cell) * g.C
						vec.AddMulDiv(dst[off+c0:off+c1], gb, sp.w[j], count)
					}
				}
			}
		}
	})
	for b := range g.N {
		src, dst := last[b*hw*g.C:(b+1)*hw*g.C], gradFeat[b*g.C*hw:(b+1)*g.C*hw]
		parallelRanges(hw, func(lo, hi int) { transpose(dst[lo:], hw, src[lo*g.C:hi*g.C], g.C, hi-lo, g.C) })
	}
}

// blockRows copies channels [c0, c1) of one RoI's values between rows
// [bins, c1-c0] (a bin's channels contiguous) and t [C, OH, OW] (bins =
// OH*OW) in blocks of block channels (1: NCHW; B: nChw<B>c, channel c of
// bin b at ((c/B)*bins + b)*B + c%B): from t into rows with gather (an
// output gradient, for the backward pass), else from rows into t (the
// forward pass's output).
func blockRows(t, rows []float32, bins, c0, c1, block int, gather bool) {
	n := c1 - c0
	if block == 1 {
		if gather {
			transpose(rows, n, t[c0*bins:c1*bins], bins, n, bins)
		} else {
			transpose(t[c0*bins:c1*bins], bins, rows, n, bins, n)
		}
		return
	}
	for cb := c0 / block; cb*block < c1; cb++ {
		cs, ce := max(c0, cb*block), min(c1, (cb+1)*block)
		for bin := range bins {
			at := (cb*bins+bin)*block + cs - cb*block
			blk, row := t[at:at+ce-cs], rows[bin*n+cs-c0:bin*n+ce-c0]
			if gather {
				copy(row, blk)
			} else {
				copy(blk, row)
			}
		}
	}
}

func (o RoIAlignOpts) name() string { return "RoIAlign" }

func (o RoIAlignOpts) forward(g roiGeom, v roiValues, out []float32, buf *scratch) {
	roiAlignForward(g, o, v.feat, v.rois, out, buf, 1)
}

// gradInputs: the gradient needs the RoIs and the output gradient only.
func (o RoIAlignOpts) gradInputs() []roiInput { return []roiInput{inRoIs, inGrad} }

func (o RoIAlignOpts) backward(g roiGeom, v roiValues, gradFeat []float32, buf *scratch) {
	roiAlignBackward(g, o, v.rois, v.grad, gradFeat, 1, buf)
}
