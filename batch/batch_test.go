package batch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"resdet/inference"
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
	if f.Detections != "gs://b/run-detections-*.jsonl" || f.Errors != "gs://b/run-errors-*.jsonl" ||
		f.COCOResults != "gs://b/run-coco-results.json" || f.COCOEval != "gs://b/run-coco-eval.txt" {
		t.Errorf("output files %+v", f)
	}
}
