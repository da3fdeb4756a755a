package box

import (
	"cmp"
	"fmt"
	"slices"
)

// NMS performs non-maximum suppression with torchvision.ops.nms semantics
// and returns the indices of the kept boxes, by decreasing score.
//
// boxes and scores have the same length N (NMS panics otherwise: a
// programmer error). Boxes are sorted by decreasing score; the sort is
// stable, so equal scores keep their input order (as the CPU kernel of
// torchvision 0.14, which sorts with stable=true: checked on tied inputs,
// fixture case tied_scores_0.5; later torchvision versions may not be).
// NaN scores sort first, as in torch.sort. Walking that order, each box not yet suppressed is kept and suppresses
// every later box whose IoU with it is strictly greater than iouThresh.
//
// The IoU is computed as the kernel does, in float32 and without "+1":
// inter / (area_i + area_j - inter) with area = (X2-X1)*(Y2-Y1), which can be
// negative for an invalid box. Two zero-area boxes give 0/0 = NaN, which
// never exceeds the threshold, so neither suppresses the other.
func NMS(boxes []Box, scores []float32, iouThresh float32) []int {
	if len(boxes) != len(scores) {
		panic(fmt.Sprintf("box.NMS: %d boxes but %d scores", len(boxes), len(scores)))
	}
	order := sortByScore(scores, nil)
	return nmsOrdered(boxes, order, iouThresh)
}

// sortByScore returns idx (or 0..len(scores)-1 when idx is nil) sorted by
// decreasing score, NaN first (as torch.sort, which orders NaN above every
// number), equal scores by increasing index: a stable sort when idx is
// increasing, as all callers pass it.
func sortByScore(scores []float32, idx []int) []int {
	if idx == nil {
		idx = make([]int, len(scores))
		for i := range idx {
			idx[i] = i
		}
	}
	slices.SortFunc(idx, func(a, b int) int { return CompareScores(scores[a], scores[b], a, b) })
	return idx
}

// CompareScores orders (score, index) pairs by decreasing score, NaN first,
// then by increasing index: a total order, so an unstable sort with it gives
// the result of a stable sort of indices by decreasing score.
func CompareScores(sa, sb float32, ia, ib int) int {
	switch {
	case ScoreAbove(sa, sb):
		return -1
	case ScoreAbove(sb, sa):
		return 1
	}
	return cmp.Compare(ia, ib)
}

// ScoreAbove reports whether score a sorts before b in decreasing order, NaN
// counting as above every number, as in torch.sort and torch.topk.
func ScoreAbove(a, b float32) bool { return a > b || (a != a && b == b) }

// nmsOrdered runs the greedy suppression over boxes visited in the given
// order and returns the kept indices in that order.
func nmsOrdered(boxes []Box, order []int, iouThresh float32) []int {
	areas := make([]float32, len(order))
	for k, i := range order {
		b := boxes[i]
		areas[k] = (b.X2 - b.X1) * (b.Y2 - b.Y1)
	}
	suppressed := make([]bool, len(order))
	var keep []int
	for a, i := range order {
		if suppressed[a] {
			continue
		}
		keep = append(keep, i)
		bi, ai := boxes[i], areas[a]
		for c := a + 1; c < len(order); c++ {
			if suppressed[c] {
				continue
			}
			bj := boxes[order[c]]
			w := max(0, min(bi.X2, bj.X2)-max(bi.X1, bj.X1))
			h := max(0, min(bi.Y2, bj.Y2)-max(bi.Y1, bj.Y1))
			inter := w * h
			if inter/(ai+areas[c]-inter) > iouThresh {
				suppressed[c] = true
			}
		}
	}
	return keep
}

// BatchedNMS performs non-maximum suppression independently per category,
// as torchvision.ops.batched_nms: boxes whose idxs differ never suppress
// each other. It returns the kept indices sorted by decreasing score (ties:
// lower index first).
//
// To reproduce torchvision to the last bit, it follows the two strategies of
// torchvision 0.14 on CPU. For at most 1000 boxes, torchvision adds the
// offset idx*(max coordinate + 1) to every box (the "coordinate trick") and
// runs one NMS, so its IoUs are computed on the shifted, rounded float32
// coordinates; BatchedNMS computes the IoUs on the same shifted
// coordinates. For more boxes, torchvision runs NMS per category on the
// original coordinates, as BatchedNMS does. (torchvision's final sort in that
// second path is not stable, so it may order exactly equal scores
// differently.) The grouping itself is always per category, so the cost is
// the sum of the per-category NMS costs.
//
// boxes, scores and idxs have the same length (BatchedNMS panics
// otherwise).
func BatchedNMS(boxes []Box, scores []float32, idxs []int, iouThresh float32) []int {
	if len(boxes) != len(scores) || len(boxes) != len(idxs) {
		panic(fmt.Sprintf("box.BatchedNMS: %d boxes, %d scores, %d idxs", len(boxes), len(scores), len(idxs)))
	}
	if len(boxes) == 0 {
		return nil
	}
	work := boxes
	if 4*len(boxes) <= 4000 {
		maxCoord := boxes[0].X1
		for _, b := range boxes {
			maxCoord = max(maxCoord, b.X1, b.Y1, b.X2, b.Y2)
		}
		step := maxCoord + 1
		work = make([]Box, len(boxes))
		for i, b := range boxes {
			off := float32(idxs[i]) * step
			work[i] = Box{b.X1 + off, b.Y1 + off, b.X2 + off, b.Y2 + off}
		}
	}
	groups := map[int][]int{}
	var cats []int
	for i, c := range idxs {
		if _, ok := groups[c]; !ok {
			cats = append(cats, c)
		}
		groups[c] = append(groups[c], i)
	}
	var keep []int
	for _, c := range cats {
		order := sortByScore(scores, groups[c])
		keep = append(keep, nmsOrdered(work, order, iouThresh)...)
	}
	return sortByScore(scores, keep)
}

// RemoveSmall returns the indices (increasing) of the boxes whose width and
// height are both at least minSize, as torchvision.ops.remove_small_boxes.
func RemoveSmall(boxes []Box, minSize float32) []int {
	var keep []int
	for i, b := range boxes {
		if b.X2-b.X1 >= minSize && b.Y2-b.Y1 >= minSize {
			keep = append(keep, i)
		}
	}
	return keep
}
