package batch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"resdet/inference"
	"resdet/inference/inferencetest"
	"resdet/nn"
)

func TestIsLocal(t *testing.T) {
	for _, tt := range []struct {
		path string
		want bool
	}{
		{"img/a.jpg", true}, {"/data/a.jpg", true}, {"file:///data/a.jpg", true},
		{"gs://b/a.jpg", false}, {"s3://b/a.jpg", false}, {"a:b.jpg", true},
	} {
		if got := isLocal(tt.path); got != tt.want {
			t.Errorf("isLocal(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
	if got := localPath("file:///data/a.jpg"); got != "/data/a.jpg" {
		t.Errorf("localPath: %q", got)
	}
}

func TestListLine(t *testing.T) {
	var got []string
	for _, l := range []string{"a.jpg", "  b.png\t", "", "   ", "# comment", "c d.jpg"} {
		(&listLineFn{}).ProcessElement(l, func(p string) { got = append(got, p) })
	}
	if want := []string{"a.jpg", "b.png", "c d.jpg"}; !slices.Equal(got, want) {
		t.Errorf("paths %q, want %q", got, want)
	}
}

func TestShards(t *testing.T) {
	f := &shardKeyFn{N: 5}
	seen := map[int]bool{}
	for i := range 200 {
		p := filepath.Join("img", strings.Repeat("x", i%7), string(rune('a'+i%26))+".jpg")
		k, line := f.ProcessElement(p, "L")
		k2, _ := f.ProcessElement(p, "other")
		if k != k2 || k < 0 || k >= 5 || line != "L" {
			t.Fatalf("%s: shard %d then %d (of 5), line %q", p, k, k2, line)
		}
		seen[k] = true
	}
	if len(seen) != 5 {
		t.Errorf("200 paths used %d of 5 shards", len(seen))
	}
	if got := shardPath("out/run-detections", 3, 12); got != "out/run-detections-00003-of-00012.jsonl" {
		t.Errorf("shardPath: %s", got)
	}
}

func TestWriteShardSortsAndCreatesFolder(t *testing.T) {
	dir := t.TempDir()
	f := &writeShardFn{Prefix: filepath.Join(dir, "new", "run"), N: 2}
	lines := []string{`{"image":"b"}`, `{"image":"a"}`, `{"image":"c"}`}
	i := 0
	path, err := f.ProcessElement(context.Background(), 1, func(l *string) bool {
		if i == len(lines) {
			return false
		}
		*l = lines[i]
		i++
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\"image\":\"a\"}\n{\"image\":\"b\"}\n{\"image\":\"c\"}\n"; string(b) != want || filepath.Base(path) != "run-00001-of-00002.jsonl" {
		t.Errorf("%s:\n%s", path, b)
	}
}

func TestTally(t *testing.T) {
	for _, tt := range []struct {
		kind, line string
		want       tally
		wantErr    string
	}{
		{"image", `{"image":"a.jpg","detections":[{"score":0.9},{"score":0.8}]}`, tally{Images: 1, Detections: 2}, ""},
		{"image", `{"image":"a.jpg","detections":[]}`, tally{Images: 1}, ""},
		{"image", `{"image":`, tally{}, "summary: the detection line of a.jpg"},
		{"failed", `{"image":"a.jpg","error":"empty file"}`, tally{Failed: 1}, ""},
		{"not_in_gt", `{"image":"a.jpg","error":"not in the COCO results"}`, tally{NotInGT: 1}, ""},
		{"other", `{}`, tally{}, `unknown tally kind "other"`},
	} {
		got, err := (&tallyFn{Kind: tt.kind}).ProcessElement("a.jpg", tt.line)
		if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s %s: %+v, %v; want %+v, %q", tt.kind, tt.line, got, err, tt.want, tt.wantErr)
		}
	}
	// The summary file sums the tallies, and is written when there are none.
	dir := t.TempDir()
	for _, tt := range []struct {
		in   []tally
		want string
	}{
		{[]tally{{Images: 1, Detections: 2}, {Failed: 1}, {Images: 1, Detections: 3, NotInGT: 1}},
			`{"images":2,"detections":5,"failed":1,"not_in_gt":1}`},
		{nil, `{"images":0,"detections":0,"failed":0,"not_in_gt":0}`},
	} {
		var sum tally
		for _, x := range tt.in {
			sum = (&sumTallyFn{}).MergeAccumulators(sum, x)
		}
		path := filepath.Join(dir, "out", "run-summary.json")
		sent := false
		err := (&writeSummaryFn{Path: path}).ProcessElement(context.Background(), nil, func(t *tally) bool {
			if sent || tt.in == nil {
				return false
			}
			*t, sent = sum, true
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		b, err := ReadFile(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want+"\n" {
			t.Errorf("summary %s, want %s", b, tt.want)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	ok := Options{Input: "l.txt", Output: "o", Shards: 1, MaxPixels: 50, Model: inference.ModelOptions{Weights: "w"}}
	for _, tt := range []struct {
		name    string
		edit    func(o *Options)
		wantErr string
	}{
		{"ok", func(*Options) {}, ""},
		{"no input", func(o *Options) { o.Input = "" }, "no input"},
		{"no output", func(o *Options) { o.Output = "" }, "no output prefix"},
		{"shards", func(o *Options) { o.Shards = 0 }, "0 shards"},
		{"pixels", func(o *Options) { o.MaxPixels = 0 }, "max pixels 0"},
		{"coco without classes", func(o *Options) { o.COCOGT = "gt.json" }, "needs the detector's class names"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			err := o.check()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
	f := Options{Output: "gs://b/run", COCOGT: "gt.json"}.OutputFiles()
	if f.Detections != "gs://b/run-detections-*.jsonl" || f.Errors != "gs://b/run-errors-*.jsonl" || f.Summary != "gs://b/run-summary.json" ||
		f.COCOResults != "gs://b/run-coco-results.json" || f.COCOEval != "gs://b/run-coco-eval.txt" {
		t.Errorf("output files %+v", f)
	}
}

// TestParallelDetectors runs the pipeline on prism (in this process) over 8
// tiny images with 1 and 2 models per worker, with the model load slowed to
// 500 ms by a hook: a real model takes seconds to load, longer than prism
// waits before it splits a bundle, and a load in the DoFn's Setup kept the
// stage in one bundle. With 2 models, two detections must overlap (each
// detection waits, up to 20 s, for a second one to start, so the overlap
// does not depend on how fast the tiny model runs) and never more than two;
// with 1, never two. The detections' oneDNN calls must overlap too (two at
// once at most, nn.PeakCalls) with 2 models of 1 thread each on 2 CPUs, and
// never with 1: the DoFns overlapped while one engine thread ran every
// call of both models one after the other (issue 15). Both runs must write
// the same files.
func TestParallelDetectors(t *testing.T) {
	// Beam's LOOPBACK worker leaves a folder in the temporary directory.
	t.Setenv("TMPDIR", t.TempDir())
	if !beam.Initialized() {
		beam.Init()
	}
	dir := t.TempDir()
	weights := inferencetest.TinyDetector(t, dir)
	imgs := filepath.Join(dir, "imgs")
	if err := os.Mkdir(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		inferencetest.WriteImage(t, filepath.Join(imgs, fmt.Sprintf("%02d.jpg", i)), 40+8*i, 60-4*i, int64(i+1))
	}
	var loads atomic.Int64
	loadHook = func() {
		loads.Add(1)
		time.Sleep(500 * time.Millisecond)
	}
	t.Cleanup(func() { loadHook, detectHook = nil, nil })

	var first map[string][]byte
	for _, tt := range []struct{ models, wantPeak int }{{2, 2}, {1, 1}} {
		t.Run(fmt.Sprintf("%d models", tt.models), func(t *testing.T) {
			loads.Store(0)
			var mu sync.Mutex
			running, peak := 0, 0
			overlap := make(chan struct{})
			giveUp, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			detectHook = func(string) func() {
				mu.Lock()
				running++
				if running > peak {
					peak = running
					if peak == 2 {
						close(overlap)
					}
				}
				mu.Unlock()
				if tt.wantPeak > 1 {
					select {
					case <-overlap:
					case <-giveUp.Done():
					}
				}
				return func() {
					mu.Lock()
					running--
					mu.Unlock()
				}
			}
			prefix := filepath.Join(dir, fmt.Sprintf("out%d", tt.models), "run")
			o := Options{Input: filepath.Join(imgs, "*.jpg"), Output: prefix, Shards: 2, MaxPixels: 50, Threads: 1, ModelsPerWorker: tt.models,
				Model: inference.ModelOptions{Weights: weights, ScoreThresh: 0.3}}
			nn.PeakCalls()
			sum, err := Run(context.Background(), "prism", o)
			if err != nil {
				t.Fatal(err)
			}
			wantCalls := tt.wantPeak
			if runtime.NumCPU() < 2 {
				wantCalls = 1
			}
			if calls := nn.PeakCalls(); calls != wantCalls {
				t.Errorf("%d oneDNN calls at once at most, want %d", calls, wantCalls)
			}
			if peak != tt.wantPeak || loads.Load() != int64(tt.wantPeak) || sum.Images != 8 || sum.Failed != 0 {
				t.Errorf("%d detections at once at most, %d models loaded, %d images, %d failed; want %d at once and %d models, 8 images",
					peak, loads.Load(), sum.Images, sum.Failed, tt.wantPeak, tt.wantPeak)
			}
			files, err := filepath.Glob(prefix + "-*")
			if err != nil {
				t.Fatal(err)
			}
			outs := map[string][]byte{}
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				outs[filepath.Base(f)] = b
			}
			if n := len(outs["run-detections-00000-of-00002.jsonl"]) + len(outs["run-detections-00001-of-00002.jsonl"]); n == 0 {
				t.Errorf("no detection lines in %q", files)
			}
			if first == nil {
				first = outs
			} else if !reflect.DeepEqual(first, outs) {
				t.Errorf("1 and 2 models wrote other files: %d files vs %d", len(outs), len(first))
			}
		})
	}
}
