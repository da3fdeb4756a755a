package eval

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"resdet/eval/evaltest"
)

// naiveCOCO is a direct, unoptimised transcription of pycocotools'
// evaluate / accumulate / summarize (one evaluation per image, category and
// area range; full recall and precision arrays; numpy.searchsorted by binary
// search; stable sorts). It cross-checks the optimised implementation
// (merged area ranges, compact states, true-positive-only sampling,
// parallel chunks) on random cases. It returns the 12 stats.
func naiveCOCO(gt *COCOGroundTruth, dets []Annotation) [12]float64 {
	var imgIDs, catIDs []int64
	for _, im := range gt.Images {
		imgIDs = append(imgIDs, im.ID)
	}
	for _, c := range gt.Categories {
		catIDs = append(catIDs, c.ID)
	}
	p := DefaultParams(imgIDs, catIDs)
	type key struct{ img, cat int64 }
	gts, dts := map[key][]Annotation{}, map[key][]Annotation{}
	for _, a := range gt.Annotations {
		gts[key{a.ImageID, a.CategoryID}] = append(gts[key{a.ImageID, a.CategoryID}], a)
	}
	for _, d := range dets {
		dts[key{d.ImageID, d.CategoryID}] = append(dts[key{d.ImageID, d.CategoryID}], d)
	}
	type evalImg struct {
		dtScores []float64
		dtm      [][]int64 // [T][D] GT id
		dtIg     [][]bool
		gtIg     []bool
	}
	T, R, K, A, M := 10, 101, len(p.CategoryIDs), 4, 3
	evalAt := map[[3]int]*evalImg{} // k, a, i
	for k, c := range p.CategoryIDs {
		for a, rng := range p.AreaRanges {
			for i, img := range p.ImageIDs {
				g := slices.Clone(gts[key{img, c}])
				d := slices.Clone(dts[key{img, c}])
				if len(g) == 0 && len(d) == 0 {
					continue
				}
				ig := func(x Annotation) bool { return x.Crowd || x.Area < rng.Min || x.Area > rng.Max }
				sort.SliceStable(g, func(x, y int) bool { return !ig(g[x]) && ig(g[y]) })
				sort.SliceStable(d, func(x, y int) bool { return d[x].Score > d[y].Score })
				if len(d) > 100 {
					d = d[:100]
				}
				e := &evalImg{}
				for _, x := range g {
					e.gtIg = append(e.gtIg, ig(x))
				}
				for _, x := range d {
					e.dtScores = append(e.dtScores, x.Score)
				}
				for _, thr := range p.IoUThresholds {
					gtm := make([]int64, len(g))
					dtm := make([]int64, len(d))
					dtIg := make([]bool, len(d))
					for di, dd := range d {
						best, m := math.Min(thr, 1-1e-10), -1
						for gi, gg := range g {
							if gtm[gi] > 0 && !gg.Crowd {
								continue
							}
							if m > -1 && !e.gtIg[m] && e.gtIg[gi] {
								break
							}
							v := iou(&dd.BBox, &gg.BBox, gg.Crowd)
							if v < best {
								continue
							}
							best, m = v, gi
						}
						if m == -1 {
							continue
						}
						dtIg[di] = e.gtIg[m]
						dtm[di] = g[m].ID
						gtm[m] = dd.ID
					}
					for di, dd := range d {
						if dtm[di] == 0 && (dd.Area < rng.Min || dd.Area > rng.Max) {
							dtIg[di] = true
						}
					}
					e.dtm = append(e.dtm, dtm)
					e.dtIg = append(e.dtIg, dtIg)
				}
				evalAt[[3]int{k, a, i}] = e
			}
		}
	}
	prec := make([]float64, T*R*K*A*M)
	rec := make([]float64, T*K*A*M)
	for i := range prec {
		prec[i] = -1
	}
	for i := range rec {
		rec[i] = -1
	}
	for k := range p.CategoryIDs {
		for a := range p.AreaRanges {
			for m, maxDet := range p.MaxDets {
				type ref struct {
					score float64
					e     *evalImg
					j     int
				}
				var all []ref
				npig, any := 0, false
				for i := range p.ImageIDs {
					e := evalAt[[3]int{k, a, i}]
					if e == nil {
						continue
					}
					any = true
					for j := 0; j < len(e.dtScores) && j < maxDet; j++ {
						all = append(all, ref{e.dtScores[j], e, j})
					}
					for _, x := range e.gtIg {
						if !x {
							npig++
						}
					}
				}
				if !any || npig == 0 {
					continue
				}
				sort.SliceStable(all, func(x, y int) bool { return all[x].score > all[y].score })
				for t := 0; t < T; t++ {
					var rc, pr []float64
					tp, fp := 0.0, 0.0
					for _, r := range all {
						if !r.e.dtIg[t][r.j] {
							if r.e.dtm[t][r.j] != 0 {
								tp++
							} else {
								fp++
							}
						}
						rc = append(rc, tp/float64(npig))
						pr = append(pr, tp/(fp+tp+eps))
					}
					nd := len(rc)
					if nd > 0 {
						rec[((t*K+k)*A+a)*M+m] = rc[nd-1]
					} else {
						rec[((t*K+k)*A+a)*M+m] = 0
					}
					for i := nd - 1; i > 0; i-- {
						if pr[i] > pr[i-1] {
							pr[i-1] = pr[i]
						}
					}
					for ri, thr := range p.RecallThresholds {
						pi := sort.Search(nd, func(x int) bool { return rc[x] >= thr })
						q := 0.0
						if pi < nd {
							q = pr[pi]
						}
						prec[(((t*R+ri)*K+k)*A+a)*M+m] = q
					}
				}
			}
		}
	}
	mean := func(v []float64) float64 {
		s, n := 0.0, 0
		for _, x := range v {
			if x > -1 {
				s += x
				n++
			}
		}
		if n == 0 {
			return -1
		}
		return s / float64(n)
	}
	sel := func(ap bool, tOnly int, a, m int) float64 {
		var v []float64
		for t := 0; t < T; t++ {
			if tOnly >= 0 && t != tOnly {
				continue
			}
			for k := 0; k < K; k++ {
				if ap {
					for r := 0; r < R; r++ {
						v = append(v, prec[(((t*R+r)*K+k)*A+a)*M+m])
					}
				} else {
					v = append(v, rec[((t*K+k)*A+a)*M+m])
				}
			}
		}
		return mean(v)
	}
	return [12]float64{sel(true, -1, 0, 2), sel(true, 0, 0, 2), sel(true, 5, 0, 2),
		sel(true, -1, 1, 2), sel(true, -1, 2, 2), sel(true, -1, 3, 2),
		sel(false, -1, 0, 0), sel(false, -1, 0, 1), sel(false, -1, 0, 2),
		sel(false, -1, 1, 2), sel(false, -1, 2, 2), sel(false, -1, 3, 2)}
}

// TestCOCOAgainstNaive compares EvaluateCOCO with naiveCOCO on random scenes:
// several jitter levels, score ties (few decimals), crowds, more than 100
// detections per image and category.
func TestCOCOAgainstNaive(t *testing.T) {
	tests := []struct {
		name string
		o    evaltest.COCOOptions
	}{
		{name: "small jitter", o: evaltest.COCOOptions{Images: 40, Categories: 5, GTPerImage: 6, DetsPerImage: 30, CrowdFraction: 0.05, Jitter: 0.03}},
		{name: "large jitter", o: evaltest.COCOOptions{Images: 40, Categories: 5, GTPerImage: 6, DetsPerImage: 30, CrowdFraction: 0.05, Jitter: 0.3}},
		{name: "score ties", o: evaltest.COCOOptions{Images: 60, Categories: 4, GTPerImage: 5, DetsPerImage: 25, CrowdFraction: 0.1, Jitter: 0.1, ScoreDecimals: 1}},
		{name: "maxdets pressure", o: evaltest.COCOOptions{Images: 6, Categories: 2, GTPerImage: 40, DetsPerImage: 400, CrowdFraction: 0.05, Jitter: 0.1, ScoreDecimals: 2}},
		{name: "many categories", o: evaltest.COCOOptions{Images: 50, Categories: 80, GTPerImage: 7, DetsPerImage: 100, CrowdFraction: 0.01, Jitter: 0.1, ScoreDecimals: 3, Segmentation: true}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gtData, detData := evaltest.COCO(rand.New(rand.NewPCG(uint64(i), 7)), tt.o)
			gt, err := ParseCOCOGroundTruth(gtData)
			if err != nil {
				t.Fatal(err)
			}
			dets, err := ParseCOCOResults(detData)
			if err != nil {
				t.Fatal(err)
			}
			r, err := EvaluateCOCO(gt, dets)
			if err != nil {
				t.Fatal(err)
			}
			want := naiveCOCO(gt, dets)
			for s := range want {
				if math.Abs(r.Stats.Values[s]-want[s]) > 1e-12 {
					t.Errorf("%s = %.17g, naive %.17g", StatNames[s], r.Stats.Values[s], want[s])
				}
			}
			if r.Stats.Values[0] <= 0 || r.Stats.Values[0] >= 1 {
				t.Errorf("AP %v: the case does not exercise matching", r.Stats.Values[0])
			}
		})
	}
}
