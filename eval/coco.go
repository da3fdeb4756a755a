package eval

import (
	"cmp"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Annotation is one COCO box, ground truth or detection, in pycocotools'
// terms. All values are float64, as pycocotools computes them.
type Annotation struct {
	// ID is the annotation id. Ground truth keeps the file's id; detections
	// are numbered 1..N in results order (pycocotools' loadRes). A ground
	// truth with ID 0 can never make a true positive: pycocotools stores the
	// matched GT id per detection and reads 0 as "unmatched", and so do we.
	ID         int64
	ImageID    int64
	CategoryID int64
	// BBox is [x, y, w, h] in pixels (COCO JSON layout, continuous, no +1):
	// the box covers [x, x+w] x [y, y+h].
	BBox [4]float64
	// Area decides the area range: the GT file's "area" field (not
	// necessarily w*h), and w*h for detections.
	Area  float64
	Crowd bool    // ground truth only: iscrowd
	Score float64 // detections only
}

// AreaRange is a closed interval of annotation areas in pixels²: an area a
// is inside when Min <= a <= Max.
type AreaRange struct {
	Label    string
	Min, Max float64
}

// Params are the evaluation parameters of pycocotools' Params(iouType="bbox").
type Params struct {
	ImageIDs    []int64 // I evaluated images, ascending, unique
	CategoryIDs []int64 // K evaluated categories, ascending, unique
	// IoUThresholds (T) and RecallThresholds (R) are ascending.
	IoUThresholds    []float64
	RecallThresholds []float64
	AreaRanges       []AreaRange // A
	// MaxDets (M) are ascending; the last one also caps the detections kept
	// per image and category before matching.
	MaxDets []int
}

// IoUThresholds returns pycocotools' T = 10 IoU thresholds, the float64 values
// numpy.linspace(0.5, 0.95, 10) makes: 0.5 + i*0.049999999999999996, the
// last set to 0.95. The 9th is 0.8999999999999999, below 0.9.
func IoUThresholds() []float64 { return linspace(0.5, 0.95, 10) }

// RecallThresholds returns pycocotools' R = 101 recall thresholds,
// numpy.linspace(0, 1, 101): i*0.01 in float64, so that e.g. the 36th is
// 0.35000000000000003.
func RecallThresholds() []float64 { return linspace(0, 1, 101) }

// linspace reproduces numpy.linspace(start, stop, n) (n >= 2) bit for bit:
// i*step + start with step = (stop-start)/(n-1), the last value = stop.
func linspace(start, stop float64, n int) []float64 {
	step := (stop - start) / float64(n-1)
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(float64(i)*step) + start
	}
	v[n-1] = stop
	return v
}

// DefaultAreaRanges returns COCO's all / small / medium / large ranges:
// [0, 1e10], [0, 32²], [32², 96²], [96², 1e10]. The bounds are inclusive,
// so an area of exactly 1024 is both small and medium.
func DefaultAreaRanges() []AreaRange {
	return []AreaRange{
		{Label: "all", Min: 0, Max: 1e10},
		{Label: "small", Min: 0, Max: 32 * 32},
		{Label: "medium", Min: 32 * 32, Max: 96 * 96},
		{Label: "large", Min: 96 * 96, Max: 1e10},
	}
}

// DefaultParams returns pycocotools' bbox parameters for the given images
// and categories (copied, sorted and deduplicated): IoUThresholds,
// RecallThresholds, DefaultAreaRanges and maxDets 1, 10, 100.
func DefaultParams(imageIDs, categoryIDs []int64) Params {
	return Params{
		ImageIDs:         sortedUnique(imageIDs),
		CategoryIDs:      sortedUnique(categoryIDs),
		IoUThresholds:    IoUThresholds(),
		RecallThresholds: RecallThresholds(),
		AreaRanges:       DefaultAreaRanges(),
		MaxDets:          []int{1, 10, 100},
	}
}

func sortedUnique(ids []int64) []int64 {
	s := slices.Clone(ids)
	slices.Sort(s)
	return slices.Compact(s)
}

// ImageEval is the matching of one image and category in every area range
// (pycocotools' evaluateImg results for the A area ranges of the pair).
// The detections are the image's detections of the category sorted by
// descending score (stable), at most the last maxDets of them; for each area
// range the ground truths are reordered so that the ones not ignored in that
// range come first (stable). Dimensions are row-major: [A][G] is indexed
// a*G+g, [A][T][D] (a*T+t)*D+d.
type ImageEval struct {
	ImageID, CategoryID int64
	A, T                int       // numbers of area ranges and IoU thresholds
	DtIDs               []int64   // [D]
	DtScores            []float64 // [D]
	DtAreas             []float64 // [D]
	GtIDs               []int64   // [A][G]: GT ids, reordered per area range
	GtIgnore            []bool    // [A][G]: crowd, or area field outside the range
	// DtMatches [A][T][D] is 1 + the position in the GtIDs row of the GT a
	// detection matched at IoU threshold t, 0 if none; GtMatches [A][T][G]
	// is 1 + the position in DtIDs of the detection a GT matched, 0 if
	// none. (pycocotools stores ids instead; MatchedGT gives the id.)
	DtMatches []int32
	GtMatches []int32
	// DtIgnore [A][T][D]: matched to an ignored GT, or with MatchedGT 0 and
	// an area outside the range.
	DtIgnore []bool
}

// MatchedGT returns the id of the GT detection d matched in area range a at
// IoU threshold t, and 0 when it matched none, as pycocotools' dtMatches
// (so a GT whose id is 0 is indistinguishable from no match: the
// pycocotools quirk this package reproduces).
func (e *ImageEval) MatchedGT(a, t, d int) int64 {
	D, G := len(e.DtIDs), len(e.GtIDs)/e.A
	m := e.DtMatches[(a*e.T+t)*D+d]
	if m == 0 {
		return 0
	}
	return e.GtIDs[a*G+int(m)-1]
}

// index maps ids to positions.
func index(ids []int64) map[int64]int32 {
	m := make(map[int64]int32, len(ids))
	for i, id := range ids {
		m[id] = int32(i)
	}
	return m
}

// bucket groups annotations by (category, image) position, keeping input
// order inside each group: the members of group k*I+i are
// order[start[k*I+i]:start[k*I+i+1]]. Annotations of images or categories
// not in p are left out.
func bucket(anns []Annotation, imgIdx, catIdx map[int64]int32, nImg, nCat int) (start []int32, order []int32) {
	key := make([]int32, len(anns))
	start = make([]int32, nImg*nCat+1)
	n := 0
	for j := range anns {
		i, ok1 := imgIdx[anns[j].ImageID]
		k, ok2 := catIdx[anns[j].CategoryID]
		if !ok1 || !ok2 {
			key[j] = -1
			continue
		}
		key[j] = k*int32(nImg) + i
		start[key[j]+1]++
		n++
	}
	for g := 1; g < len(start); g++ {
		start[g] += start[g-1]
	}
	order = make([]int32, n)
	fill := slices.Clone(start[:len(start)-1])
	for j, g := range key {
		if g >= 0 {
			order[fill[g]] = int32(j)
			fill[g]++
		}
	}
	return start, order
}

// EvaluateImages matches detections dt to ground truth gt for every
// category, image and area range of p, as pycocotools' evaluate(). The
// result has K*I entries, index k*I + i; an entry is nil when the image has
// neither ground truth nor detections of the category. Annotations of images
// or categories not in p are left out (pycocotools selects with
// getAnnIds). Detection ids are not used for matching. The work is spread
// over GOMAXPROCS goroutines by category.
func EvaluateImages(gt, dt []Annotation, p Params) []*ImageEval {
	nI, nK, nA := len(p.ImageIDs), len(p.CategoryIDs), len(p.AreaRanges)
	imgIdx, catIdx := index(p.ImageIDs), index(p.CategoryIDs)
	gtStart, gtOrder := bucket(gt, imgIdx, catIdx, nI, nK)
	dtStart, dtOrder := bucket(dt, imgIdx, catIdx, nI, nK)
	evals := make([]*ImageEval, nK*nI)
	maxDet := p.MaxDets[len(p.MaxDets)-1]
	T := len(p.IoUThresholds)
	parallel(nK, func(k int) {
		// One slab per field for the whole category: far fewer, larger
		// allocations than one per image.
		var sumD, sumG, nonEmpty int
		for i := 0; i < nI; i++ {
			g := k*nI + i
			nd, ng := int(dtStart[g+1]-dtStart[g]), int(gtStart[g+1]-gtStart[g])
			if nd+ng > 0 {
				nonEmpty++
				sumD += min(nd, maxDet)
				sumG += ng
			}
		}
		if nonEmpty == 0 {
			return
		}
		sl := &slab{
			evals:     make([]ImageEval, nonEmpty),
			dtIDs:     make([]int64, sumD),
			dtScores:  make([]float64, 2*sumD),
			gtIDs:     make([]int64, nA*sumG),
			gtIgnore:  make([]bool, nA*sumG),
			dtMatches: make([]int32, nA*T*sumD),
			gtMatches: make([]int32, nA*T*sumG),
			dtIgnore:  make([]bool, nA*T*sumD),
		}
		var w imageWork
		for i := 0; i < nI; i++ {
			g := k*nI + i
			gts := gtOrder[gtStart[g]:gtStart[g+1]]
			dts := dtOrder[dtStart[g]:dtStart[g+1]]
			if len(gts) == 0 && len(dts) == 0 {
				continue
			}
			e := &take(&sl.evals, 1)[0]
			e.ImageID, e.CategoryID = p.ImageIDs[i], p.CategoryIDs[k]
			w.evaluate(gt, dt, gts, dts, p, sl, e)
			evals[k*nI+i] = e
		}
	})
	return evals
}

// slab holds the storage of a category's ImageEvals, handed out in order.
type slab struct {
	evals                []ImageEval
	dtIDs, gtIDs         []int64
	dtScores             []float64
	gtIgnore, dtIgnore   []bool
	dtMatches, gtMatches []int32
}

// take cuts the first n elements off *s.
func take[E any](s *[]E, n int) []E {
	r := (*s)[:n:n]
	*s = (*s)[n:]
	return r
}

// parallel runs f(0..n-1) on GOMAXPROCS goroutines, handing out indices in
// order.
func parallel(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// imageWork holds scratch buffers reused across images by one goroutine.
type imageWork struct {
	dts   []int32
	ious  []float64
	perm  []int
	crowd []bool
}

// iou is pycocotools' bbIou (maskApi.c) for one detection d and ground truth
// g, both [x, y, w, h], in float64 and in its order of operations.
func iou(d, g *[4]float64, crowd bool) float64 {
	w := min(d[2]+d[0], g[2]+g[0]) - max(d[0], g[0])
	if w <= 0 {
		return 0
	}
	h := min(d[3]+d[1], g[3]+g[1]) - max(d[1], g[1])
	if h <= 0 {
		return 0
	}
	da := float64(d[2] * d[3])
	inter := float64(w * h)
	if crowd {
		return inter / da
	}
	ga := float64(g[2] * g[3])
	return inter / (float64(da+ga) - inter)
}

// evaluate fills e (ids set) for one image and category, with storage
// from sl. gts and dts index gt and dt in input order.
func (w *imageWork) evaluate(gt, dt []Annotation, gts, dts []int32, p Params, sl *slab, e *ImageEval) {
	maxDet := p.MaxDets[len(p.MaxDets)-1]
	// Detections by descending score, stable; keep the first maxDet.
	w.dts = append(w.dts[:0], dts...)
	slices.SortFunc(w.dts, func(a, b int32) int {
		if c := cmp.Compare(dt[b].Score, dt[a].Score); c != 0 {
			return c
		}
		return cmp.Compare(a, b) // input order: a stable sort
	})
	sorted := w.dts[:min(len(w.dts), maxDet)]
	D, G, T, A := len(sorted), len(gts), len(p.IoUThresholds), len(p.AreaRanges)

	e.A, e.T = A, T
	e.DtIDs = take(&sl.dtIDs, D)
	e.DtScores = take(&sl.dtScores, D)
	e.DtAreas = take(&sl.dtScores, D)
	for j, d := range sorted {
		e.DtIDs[j], e.DtScores[j], e.DtAreas[j] = dt[d].ID, dt[d].Score, dt[d].Area
	}
	// IoU matrix [D, G] in the GT input order.
	w.ious = slices.Grow(w.ious[:0], D*G)[:D*G]
	w.crowd = slices.Grow(w.crowd[:0], G)[:G]
	for gi, g := range gts {
		w.crowd[gi] = gt[g].Crowd
	}
	for j, d := range sorted {
		for gi, g := range gts {
			w.ious[j*G+gi] = iou(&dt[d].BBox, &gt[g].BBox, gt[g].Crowd)
		}
	}
	e.GtIDs = take(&sl.gtIDs, A*G)
	e.GtIgnore = take(&sl.gtIgnore, A*G)
	e.DtMatches = take(&sl.dtMatches, A*T*D)
	e.GtMatches = take(&sl.gtMatches, A*T*G)
	e.DtIgnore = take(&sl.dtIgnore, A*T*D)
	w.perm = slices.Grow(w.perm[:0], G)[:G]
	for a, rng := range p.AreaRanges {
		gtIDs, gtIg := e.GtIDs[a*G:(a+1)*G], e.GtIgnore[a*G:(a+1)*G]
		// Non-ignored GT first, file order inside each group.
		n := 0
		for pass := 0; pass < 2; pass++ {
			for gi, g := range gts {
				ig := gt[g].Crowd || gt[g].Area < rng.Min || gt[g].Area > rng.Max
				if ig == (pass == 1) {
					w.perm[n] = gi
					gtIDs[n] = gt[g].ID
					gtIg[n] = ig
					n++
				}
			}
		}
		dtm := e.DtMatches[a*T*D : (a+1)*T*D]
		dtIg := e.DtIgnore[a*T*D : (a+1)*T*D]
		if D > 0 && G > 0 {
			w.match(p.IoUThresholds, D, gtIg, dtm, e.GtMatches[a*T*G:(a+1)*T*G], dtIg)
		}
		// pycocotools: dtIg |= (dtm == 0) & area outside, where dtm holds the
		// matched GT id (so a match to GT id 0 counts as unmatched).
		for j := range D {
			if ar := e.DtAreas[j]; ar < rng.Min || ar > rng.Max {
				for t := 0; t < T; t++ {
					if m := dtm[t*D+j]; m == 0 || gtIDs[m-1] == 0 {
						dtIg[t*D+j] = true
					}
				}
			}
		}
	}
}

// match is pycocotools' greedy matching, separately for each IoU
// threshold, detections in score order. gtIg [G] is in matching order;
// w.perm maps that order to the IoU matrix columns. It fills dtm [T][D],
// gtm [T][G] (1 + position, 0 = none) and dtIg [T][D].
func (w *imageWork) match(thresholds []float64, D int, gtIg []bool, dtm, gtm []int32, dtIg []bool) {
	G := len(gtIg)
	for t, thr := range thresholds {
		gtmT := gtm[t*G : (t+1)*G]
		for d := 0; d < D; d++ {
			best := min(thr, 1-1e-10)
			m := -1
			row := w.ious[d*G : (d+1)*G]
			for g := 0; g < G; g++ {
				col := w.perm[g]
				// A matched GT is skipped unless it is a crowd region.
				if gtmT[g] > 0 && !w.crowd[col] {
					continue
				}
				if m > -1 && !gtIg[m] && gtIg[g] {
					break
				}
				if row[col] < best {
					continue
				}
				best = row[col]
				m = g
			}
			if m == -1 {
				continue
			}
			dtIg[t*D+d] = gtIg[m]
			dtm[t*D+d] = int32(m + 1)
			gtmT[m] = int32(d + 1)
		}
	}
}

// Accumulated holds pycocotools' accumulate() arrays. Precision is
// [T][R][K][A][M] and Recall [T][K][A][M], flattened in that (C) order; -1
// marks a slice without non-ignored ground truth.
type Accumulated struct {
	Params    Params
	Precision []float64
	Recall    []float64
}

// PrecisionAt returns precision[t, r, k, a, m].
func (acc *Accumulated) PrecisionAt(t, r, k, a, m int) float64 {
	p := &acc.Params
	K, A, M := len(p.CategoryIDs), len(p.AreaRanges), len(p.MaxDets)
	return acc.Precision[(((t*len(p.RecallThresholds)+r)*K+k)*A+a)*M+m]
}

// RecallAt returns recall[t, k, a, m].
func (acc *Accumulated) RecallAt(t, k, a, m int) float64 {
	p := &acc.Params
	K, A, M := len(p.CategoryIDs), len(p.AreaRanges), len(p.MaxDets)
	return acc.Recall[((t*K+k)*A+a)*M+m]
}

// eps is numpy's np.spacing(1) = 2^-52, added to the precision denominator.
const eps = 2.220446049250313e-16

// dtRef is one detection of a category in accumulation order.
type dtRef struct {
	score float64
	orig  int32 // position in the image-by-image concatenation
	rank  int32 // position in the image's sorted list
}

// Accumulate turns the per-image matchings of EvaluateImages (same p) into
// precision and recall arrays, as pycocotools' accumulate(). Work is spread
// over GOMAXPROCS goroutines by category.
func Accumulate(evals []*ImageEval, p Params) Accumulated {
	T, R, K, A, M, I := len(p.IoUThresholds), len(p.RecallThresholds), len(p.CategoryIDs),
		len(p.AreaRanges), len(p.MaxDets), len(p.ImageIDs)
	if len(evals) != K*I {
		panic(fmt.Sprintf("eval: Accumulate: %d image evaluations for K*I = %d", len(evals), K*I))
	}
	acc := Accumulated{Params: p, Precision: make([]float64, T*R*K*A*M), Recall: make([]float64, T*K*A*M)}
	for i := range acc.Precision {
		acc.Precision[i] = -1
	}
	for i := range acc.Recall {
		acc.Recall[i] = -1
	}
	parallel(K, func(k int) { accumulateCategory(&acc, evals, k) })
	return acc
}

// Detection states in accumulation.
const (
	stIgnored uint8 = iota
	stTP
	stFP
)

// accumulateCategory fills acc's precision and recall entries of category k.
func accumulateCategory(acc *Accumulated, evals []*ImageEval, k int) {
	p := &acc.Params
	T, R, K, A, M, I := len(p.IoUThresholds), len(p.RecallThresholds), len(p.CategoryIDs),
		len(p.AreaRanges), len(p.MaxDets), len(p.ImageIDs)
	// All detections of the category in pycocotools' concatenation order
	// (image by image, each image's list in score order), then stably
	// sorted by descending score: ties keep (image, rank) order. The order
	// for a smaller maxDet is the subsequence with rank < maxDet.
	var all []dtRef
	var imgs []int32
	for i := 0; i < I; i++ {
		e := evals[k*I+i]
		if e == nil {
			continue
		}
		imgs = append(imgs, int32(i))
		for r, s := range e.DtScores {
			all = append(all, dtRef{score: s, orig: int32(len(all)), rank: int32(r)})
		}
	}
	if len(imgs) == 0 {
		return
	}
	slices.SortFunc(all, func(a, b dtRef) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.orig, b.orig) // = a stable sort
	})
	n := len(all)
	pos := make([]int32, n) // concatenation index -> sorted position
	for j, d := range all {
		pos[d.orig] = int32(j)
	}
	// Compact states [A][T][n] in sorted order, so the running sums below
	// read memory sequentially instead of chasing ImageEvals.
	states := make([]uint8, A*T*n)
	npig := make([]int, A)
	for a := 0; a < A; a++ {
		orig := 0
		for _, i := range imgs {
			e := evals[k*I+int(i)]
			D, G := len(e.DtIDs), len(e.GtIDs)/A
			gtIDs := e.GtIDs[a*G : (a+1)*G]
			for _, ig := range e.GtIgnore[a*G : (a+1)*G] {
				if !ig {
					npig[a]++
				}
			}
			dtm := e.DtMatches[a*T*D : (a+1)*T*D]
			dtIg := e.DtIgnore[a*T*D : (a+1)*T*D]
			for r := 0; r < D; r++ {
				at := pos[orig]
				orig++
				for t := 0; t < T; t++ {
					// True positive: matched (to a GT id other than 0,
					// pycocotools' quirk) and not ignored.
					st := stFP
					switch j := t*D + r; {
					case dtIg[j]:
						st = stIgnored
					case dtm[j] != 0 && gtIDs[dtm[j]-1] != 0:
						st = stTP
					}
					states[(a*T+t)*n+int(at)] = st
				}
			}
		}
	}
	sel := make([]int32, 0, n)
	var tpRc, tpPr []float64
	for m, maxDet := range p.MaxDets {
		sel = sel[:0]
		for j, d := range all {
			if int(d.rank) < maxDet {
				sel = append(sel, int32(j))
			}
		}
		for a := 0; a < A; a++ {
			if npig[a] == 0 {
				continue
			}
			fnpig := float64(npig[a])
			for t := 0; t < T; t++ {
				// pycocotools computes recall tp/npig and precision
				// tp/(fp+tp+eps) at every position, takes the envelope
				// (suffix maximum) of precision and samples it at the first
				// position whose recall reaches each threshold. Recall only
				// grows at true positives, precision only drops elsewhere,
				// so the first position reaching a threshold r > 0 is a true
				// positive and the suffix maximum from a true positive is the
				// maximum over the later true positives: the same numbers
				// come from the true positives alone. For r = 0 (position 0)
				// the same holds unless there is no true positive, when all
				// precisions are 0.
				row := states[(a*T+t)*n : (a*T+t+1)*n]
				tpRc, tpPr = tpRc[:0], tpPr[:0]
				tp, fp := 0, 0
				count := func(st uint8) {
					if st == stTP {
						tp++
						ftp := float64(tp)
						tpRc = append(tpRc, ftp/fnpig)
						tpPr = append(tpPr, ftp/(float64(fp+tp)+eps))
					} else {
						fp += int(st >> 1) // stFP = 2, stIgnored = 0
					}
				}
				if len(sel) == n { // every detection (the largest maxDets)
					for _, st := range row {
						count(st)
					}
				} else {
					for _, at := range sel {
						count(row[at])
					}
				}
				acc.Recall[((t*K+k)*A+a)*M+m] = float64(tp) / fnpig // 0 without detections
				for i := len(tpPr) - 1; i > 0; i-- {
					if tpPr[i] > tpPr[i-1] {
						tpPr[i-1] = tpPr[i]
					}
				}
				at := 0
				for r, thr := range p.RecallThresholds {
					for at < len(tpRc) && tpRc[at] < thr {
						at++
					}
					q := 0.0
					if at < len(tpRc) {
						q = tpPr[at]
					}
					acc.Precision[(((t*R+r)*K+k)*A+a)*M+m] = q
				}
			}
		}
	}
}

// Stats are pycocotools' 12 summary numbers, in the order of Names: AP,
// AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl. -1 means
// undefined (no non-ignored ground truth anywhere in that slice).
type Stats struct {
	Values [12]float64
	lines  [12]statLine
}

// StatNames are the names of Stats.Values, in order.
var StatNames = [12]string{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}

type statLine struct {
	ap      bool
	iou     float64 // -1: all thresholds
	area    string
	maxDets int
}

// Summarize computes the 12 summary numbers of pycocotools' summarize() from
// acc. A number whose slice does not exist in acc.Params (another area label,
// a missing 0.5 threshold) is -1, like an empty slice in pycocotools.
func Summarize(acc Accumulated) Stats {
	md := acc.Params.MaxDets
	get := func(i int) int {
		if i < len(md) {
			return md[i]
		}
		return -1
	}
	big := get(len(md) - 1)
	if len(md) >= 3 {
		big = md[2]
	}
	var s Stats
	s.lines = [12]statLine{
		{true, -1, "all", big}, {true, 0.5, "all", big}, {true, 0.75, "all", big},
		{true, -1, "small", big}, {true, -1, "medium", big}, {true, -1, "large", big},
		{false, -1, "all", get(0)}, {false, -1, "all", get(1)}, {false, -1, "all", big},
		{false, -1, "small", big}, {false, -1, "medium", big}, {false, -1, "large", big},
	}
	for i, l := range s.lines {
		s.Values[i] = summarizeSlice(&acc, l, -1)
	}
	return s
}

// summarizeSlice is pycocotools' _summarize for one line; k >= 0 restricts it
// to one category. The mean is numpy's (pairwise summation over the entries
// > -1 in C order).
func summarizeSlice(acc *Accumulated, l statLine, k int) float64 {
	p := &acc.Params
	aind := slices.IndexFunc(p.AreaRanges, func(r AreaRange) bool { return r.Label == l.area })
	mind := slices.Index(p.MaxDets, l.maxDets)
	if aind < 0 || mind < 0 {
		return -1
	}
	var ts []int
	for t, thr := range p.IoUThresholds {
		if l.iou < 0 || thr == l.iou {
			ts = append(ts, t)
		}
	}
	k0, k1 := 0, len(p.CategoryIDs)
	if k >= 0 {
		k0, k1 = k, k+1
	}
	var vals []float64
	for _, t := range ts {
		if l.ap {
			for r := range p.RecallThresholds {
				for kk := k0; kk < k1; kk++ {
					if v := acc.PrecisionAt(t, r, kk, aind, mind); v > -1 {
						vals = append(vals, v)
					}
				}
			}
		} else {
			for kk := k0; kk < k1; kk++ {
				if v := acc.RecallAt(t, kk, aind, mind); v > -1 {
					vals = append(vals, v)
				}
			}
		}
	}
	if len(vals) == 0 {
		return -1
	}
	return pairwiseSum(vals) / float64(len(vals))
}

// pairwiseSum adds v as numpy's pairwise_sum does for float64 (blocks of
// 128, eight accumulators), so means match numpy.mean bit for bit.
func pairwiseSum(v []float64) float64 {
	n := len(v)
	switch {
	case n < 8:
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s
	case n <= 128:
		var r [8]float64
		copy(r[:], v[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			for j := 0; j < 8; j++ {
				r[j] += v[i+j]
			}
		}
		s := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			s += v[i]
		}
		return s
	default:
		n2 := n / 2
		n2 -= n2 % 8
		return pairwiseSum(v[:n2]) + pairwiseSum(v[n2:])
	}
}

// WriteTo writes the 12 summary lines exactly as pycocotools prints them,
// e.g. " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.504".
func (s Stats) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for i, l := range s.lines {
		title, typ := "Average Recall", "(AR)"
		if l.ap {
			title, typ = "Average Precision", "(AP)"
		}
		iou := "0.50:0.95"
		if l.iou >= 0 {
			iou = fmt.Sprintf("%0.2f", l.iou)
		}
		n, err := fmt.Fprintf(w, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n",
			title, typ, iou, l.area, l.maxDets, s.Values[i])
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// CategoryStats are the per-category numbers of one COCO category, from the
// area "all" and largest-maxDets slice: AP over all IoU and recall
// thresholds, AP50, AP75 and AR100 (mean recall over IoU thresholds). -1
// when the category has no non-ignored ground truth.
type CategoryStats struct {
	ID                    int64
	Name                  string
	AP, AP50, AP75, AR100 float64
}

// PerCategory returns one CategoryStats per category of acc.Params, in its
// order; names[k] names category k (may be nil).
func PerCategory(acc Accumulated, names []string) []CategoryStats {
	p := &acc.Params
	big := p.MaxDets[len(p.MaxDets)-1]
	out := make([]CategoryStats, len(p.CategoryIDs))
	for k, id := range p.CategoryIDs {
		c := CategoryStats{ID: id}
		if k < len(names) {
			c.Name = names[k]
		}
		c.AP = summarizeSlice(&acc, statLine{ap: true, iou: -1, area: "all", maxDets: big}, k)
		c.AP50 = summarizeSlice(&acc, statLine{ap: true, iou: 0.5, area: "all", maxDets: big}, k)
		c.AP75 = summarizeSlice(&acc, statLine{ap: true, iou: 0.75, area: "all", maxDets: big}, k)
		c.AR100 = summarizeSlice(&acc, statLine{ap: false, iou: -1, area: "all", maxDets: big}, k)
		out[k] = c
	}
	return out
}
