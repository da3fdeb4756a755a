package datasets

import (
	"bufio"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeSyntheticCOCO writes an instances file shaped like COCO train2017:
// nImages images with COCO's image fields, nAnns annotations with a polygon
// segmentation of 12..100 two-decimal numbers (1% crowd with RLE counts),
// 80 categories with COCO's ids. It returns the file size in bytes.
func writeSyntheticCOCO(path string, nImages, nAnns int, seed uint64) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(seed, 0))
	ids := COCOCategoryIDs()
	names := COCOClasses()
	num := func(b []byte, v float64) []byte { return strconv.AppendFloat(b, v, 'f', 2, 64) }
	w.WriteString(`{"info": {"description": "COCO 2017 Dataset (synthetic, train2017-sized)", "version": "1.0", "year": 2017},` + "\n")
	w.WriteString(`"licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1, "name": "Attribution-NonCommercial-ShareAlike License"}],` + "\n")
	w.WriteString(`"images": [`)
	type size struct{ w, h int }
	sizes := make([]size, nImages)
	b := make([]byte, 0, 4096)
	for i := range nImages {
		sizes[i] = size{640, 480}
		if rng.IntN(3) == 0 {
			sizes[i] = size{427 + rng.IntN(200), 640}
		}
		b = b[:0]
		if i > 0 {
			b = append(b, ',')
		}
		id := strconv.Itoa(100000 + i)
		b = append(b, `{"license": 3,"file_name": "000000`...)
		b = append(b, id...)
		b = append(b, `.jpg","coco_url": "http://images.cocodataset.org/train2017/000000`...)
		b = append(b, id...)
		b = append(b, `.jpg","height": `...)
		b = strconv.AppendInt(b, int64(sizes[i].h), 10)
		b = append(b, `,"width": `...)
		b = strconv.AppendInt(b, int64(sizes[i].w), 10)
		b = append(b, `,"date_captured": "2013-11-14 11:18:45","flickr_url": "http://farm9.staticflickr.com/8186/8119368305_4e622c8349_z.jpg","id": `...)
		b = append(b, id...)
		b = append(b, "}\n"...)
		w.Write(b)
	}
	w.WriteString("],\n\"annotations\": [")
	for i := range nAnns {
		img := rng.IntN(nImages)
		sz := sizes[img]
		bw := 1 + rng.Float64()*float64(sz.w-2)
		bh := 1 + rng.Float64()*float64(sz.h-2)
		x := rng.Float64() * (float64(sz.w) - bw)
		y := rng.Float64() * (float64(sz.h) - bh)
		crowd := rng.IntN(100) == 0
		b = b[:0]
		if i > 0 {
			b = append(b, ',')
		}
		if crowd {
			b = append(b, `{"segmentation": {"counts": [`...)
			for k := range 60 + rng.IntN(200) {
				if k > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendInt(b, int64(rng.IntN(5000)), 10)
			}
			b = append(b, `],"size": [`...)
			b = strconv.AppendInt(b, int64(sz.h), 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, int64(sz.w), 10)
			b = append(b, "]}"...)
		} else {
			b = append(b, `{"segmentation": [[`...)
			for k := range 2 * (6 + rng.IntN(40)) {
				if k > 0 {
					b = append(b, ',')
				}
				if k%2 == 0 {
					b = num(b, x+rng.Float64()*bw)
				} else {
					b = num(b, y+rng.Float64()*bh)
				}
			}
			b = append(b, "]]"...)
		}
		b = append(b, `,"area": `...)
		b = num(b, bw*bh*0.6)
		b = append(b, `,"iscrowd": `...)
		if crowd {
			b = append(b, '1')
		} else {
			b = append(b, '0')
		}
		b = append(b, `,"image_id": `...)
		b = strconv.AppendInt(b, int64(100000+img), 10)
		b = append(b, `,"bbox": [`...)
		b = num(b, x)
		b = append(b, ',')
		b = num(b, y)
		b = append(b, ',')
		b = num(b, bw)
		b = append(b, ',')
		b = num(b, bh)
		b = append(b, `],"category_id": `...)
		b = strconv.AppendInt(b, int64(ids[rng.IntN(len(ids))]), 10)
		b = append(b, `,"id": `...)
		b = strconv.AppendInt(b, int64(900000+i), 10)
		b = append(b, "}\n"...)
		w.Write(b)
	}
	w.WriteString("],\n\"categories\": [")
	for i, id := range ids {
		b = b[:0]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"supercategory": "thing","id": `...)
		b = strconv.AppendInt(b, int64(id), 10)
		b = append(b, `,"name": `...)
		b = strconv.AppendQuote(b, names[i]) // ASCII names: Go and JSON quoting agree
		b = append(b, '}')
		w.Write(b)
	}
	w.WriteString("]}\n")
	if err := w.Flush(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// peakRSS returns VmHWM (peak resident set size) of this process in bytes,
// or 0 where /proc is not available.
func peakRSS() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkReadCOCOTrain2017Size loads a COCO-train2017-sized instances file
// (118287 images, 860001 annotations with polygon segmentations, about
// 450 MB) and reports the time per load, the file size, the process's peak
// RSS during the loads (VmHWM, reset through /proc/self/clear_refs before
// them) and the peak Go heap sampled every 10 ms. The target is a peak under
// 3 GB; the benchmark fails above it. Set RESDET_COCO_FILE to load that
// file instead (e.g. the real instances_train2017.json); the synthetic one
// is generated there first if it does not exist.
func BenchmarkReadCOCOTrain2017Size(b *testing.B) {
	path := os.Getenv("RESDET_COCO_FILE")
	if path == "" {
		path = filepath.Join(b.TempDir(), "instances_train2017.json")
	}
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		n, err := writeSyntheticCOCO(path, 118287, 860001, 2017)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("generated %s: %.0f MB in %v", path, float64(n)/1e6, time.Since(start).Round(time.Millisecond))
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	// Writing 5 resets VmHWM to the current RSS (Linux >= 4.0).
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	stop := make(chan struct{})
	peakHeap := make(chan uint64)
	go func() {
		var m runtime.MemStats
		var peak uint64
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				peakHeap <- peak
				return
			case <-t.C:
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	b.ResetTimer()
	var s *Set
	for range b.N {
		s, err = ReadCOCO(path, "", COCOOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	heap := <-peakHeap
	rss := peakRSS()
	b.ReportMetric(float64(st.Size())/1e6, "file-MB")
	b.ReportMetric(rss/1e6, "peak-RSS-MB")
	b.ReportMetric(float64(heap)/1e6, "peak-heap-MB")
	b.Logf("%d images, %d annotations, %d classes", len(s.Records), s.NumObjects(), len(s.Classes))
	if rss > 3e9 {
		b.Errorf("peak RSS %.0f MB is over the 3 GB budget", rss/1e6)
	}
}

// BenchmarkReadVOC2007TrainvalSize reads a VOC folder the size of VOC2007
// trainval (5011 annotation files, about 12.6k objects) written by WriteVOC.
func BenchmarkReadVOC2007TrainvalSize(b *testing.B) {
	root := filepath.Join(b.TempDir(), "VOC2007")
	s := randomSet(rand.New(rand.NewPCG(2007, 0)), 5011, VOCClasses(), false)
	if err := WriteVOC(root, "trainval", s); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		got, err := ReadVOC(root, "trainval", VOCOptions{KeepDifficult: true})
		if err != nil {
			b.Fatal(err)
		}
		if got.NumObjects() != s.NumObjects() {
			b.Fatalf("%d objects, want %d", got.NumObjects(), s.NumObjects())
		}
	}
}
