package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"resdet/batch"
	"resdet/box"
	"resdet/datasets"
	"resdet/eval"
	"resdet/inference"
	"resdet/inference/inferencetest"
	"resdet/internal/cli"
	"resdet/internal/cli/clitest"
	"resdet/nn"
	"resdet/zoo"
)

func TestNewCmdBatch(t *testing.T) {
	def := batch.Options{Input: "l.txt", Output: "out/p", Shards: 4, MaxPixels: 50, ModelsPerWorker: 1,
		Model: inference.ModelOptions{Model: zoo.DefaultName, ScoreThresh: 0.5, Precision: nn.PrecisionFP32}}
	tests := []struct {
		name    string
		argv    string
		want    batch.Options
		beam    map[string]string // Beam flags (package flag) after parsing
		wantErr string
	}{
		{name: "minimal", argv: "--input l.txt --output out/p", want: def},
		{name: "all flags", argv: "--input img/*.jpg --output gs://b/o --coco-gt gt.json --shards 2 -w m.pth --arch r50-c4 --roi-op pool " +
			"--classes voc --score-thresh 0.7 --threads 1 --min-size 800 --max-size 1333 --max-pixels 12.5 --cache c --models-per-worker 2 --precision auto",
			want: batch.Options{Input: "img/*.jpg", Output: "gs://b/o", COCOGT: "gt.json", Shards: 2, MaxPixels: 12.5, Threads: 1, ModelsPerWorker: 2,
				Model: inference.ModelOptions{Weights: "m.pth", Model: zoo.DefaultName, Cache: "c", Arch: "r50-c4", RoIOp: "pool", Classes: "voc",
					ScoreThresh: 0.7, MinSize: 800, MaxSize: 1333, Precision: nn.PrecisionAuto}}},
		{name: "beam options reach package flag", argv: "--input l.txt --output out/p --runner direct --endpoint localhost:8099 " +
			"--environment_type=LOOPBACK --job_name j1 --async", want: def,
			beam: map[string]string{"runner": "direct", "endpoint": "localhost:8099", "environment_type": "LOOPBACK", "job_name": "j1", "async": "true"}},
		{name: "no input", argv: "--output o", wantErr: "--input is required"},
		{name: "no output", argv: "--input l.txt", wantErr: "--output is required"},
		{name: "shards", argv: "--input l --output o --shards 0", wantErr: "--shards must be >= 1"},
		{name: "models per worker", argv: "--input l --output o --models-per-worker 0", wantErr: "--models-per-worker must be >= 1"},
		{name: "model and weights", argv: "--input l --output o -w w.pkl --model d2-r50-c4-3x", wantErr: "--weights and --model exclude each other"},
		{name: "roi op", argv: "--input l --output o --roi-op warp", wantErr: `--roi-op must be "align" or "pool"`},
		{name: "worker flags are not options", argv: "--input l --output o --worker", wantErr: "unknown flag: --worker"},
		{name: "images are not arguments", argv: "--input l --output o a.jpg", wantErr: `unknown command "a.jpg"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Beam's options are package flag's globals: put them back.
			for name := range tt.beam {
				old := flag.Lookup(name).Value.String()
				t.Cleanup(func() { _ = flag.CommandLine.Set(name, old) })
			}
			ios, _, _, _ := cli.Test()
			var got *BatchOptions
			root := NewCmdDetect(ios, nil)
			for _, c := range root.Commands() {
				if c.Name() == "batch" {
					root.RemoveCommand(c)
				}
			}
			root.AddCommand(newCmdBatch(ios, func(o *BatchOptions) error { got = o; return nil }))
			if !clitest.Execute(t, root, ios, append([]string{"batch"}, strings.Fields(tt.argv)...), tt.wantErr) {
				return
			}
			if got == nil {
				t.Fatal("run function not called")
			}
			if !reflect.DeepEqual(got.Batch, tt.want) {
				t.Errorf("options\n got %+v\nwant %+v", got.Batch, tt.want)
			}
			set := map[string]bool{}
			flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
			for name, v := range tt.beam {
				if g := flag.Lookup(name).Value.String(); g != v || !set[name] {
					t.Errorf("Beam flag %s = %q (set: %v), want %q, set", name, g, set[name], v)
				}
			}
		})
	}
}

func TestIsBeamWorker(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{[]string{"--worker=true", "--id=1", "--control_endpoint=localhost:1"}, true},
		{[]string{"-worker", "--id=1"}, true},
		{[]string{"photo.jpg"}, false},
		{[]string{"batch", "--input", "worker"}, false},
		{[]string{"--workers"}, false},
	} {
		if got := isBeamWorker(tt.args); got != tt.want {
			t.Errorf("isBeamWorker(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}

// readLines returns the lines of the files matching glob, in file order.
func readLines(t *testing.T, glob string) []string {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
	}
	return lines
}

// TestDetectBatch runs `detect batch` on prism (in process, LOOPBACK) over
// a folder of good and bad images and compares with `detect --json
// --coco-results` and eval-det's evaluation of detect's results; then
// again on the direct runner with a list file, which must write the same
// files.
func TestDetectBatch(t *testing.T) {
	// Beam's LOOPBACK worker leaves a folder in the temporary directory.
	t.Setenv("TMPDIR", t.TempDir())
	dir := t.TempDir()
	weights := inferencetest.TinyDetector(t, dir)
	imgs := filepath.Join(dir, "imgs")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(imgs, 0o755))
	good := []string{"000000000007.jpg", "000000000011.jpg", "000000000042.png", "000000000051.jpg"}
	for i, name := range good {
		inferencetest.WriteImage(t, filepath.Join(imgs, name), 50+10*i, 70-5*i, int64(i+1))
	}
	jpg, err := os.ReadFile(filepath.Join(imgs, good[0]))
	must(err)
	bad := map[string]string{ // file -> what its dead-letter reason must say
		"truncated.jpg": "truncated",
		"text.jpg":      "not a decodable JPEG or PNG image",
		"empty.jpg":     "empty file",
	}
	must(os.WriteFile(filepath.Join(imgs, "truncated.jpg"), jpg[:len(jpg)/2], 0o644))
	must(os.WriteFile(filepath.Join(imgs, "text.jpg"), []byte("this is not an image\n"), 0o644))
	must(os.WriteFile(filepath.Join(imgs, "empty.jpg"), nil, 0o644))

	// detect --json --coco-results over the good images (the folder of
	// copies keeps the bad ones out of detect's run).
	goodDir := filepath.Join(dir, "good")
	must(os.Mkdir(goodDir, 0o755))
	var goodPaths []string
	for _, name := range good {
		b, err := os.ReadFile(filepath.Join(imgs, name))
		must(err)
		must(os.WriteFile(filepath.Join(goodDir, name), b, 0o644))
		goodPaths = append(goodPaths, filepath.Join(imgs, name))
	}
	ios, _, out, errOut := cli.Test()
	dets0 := filepath.Join(dir, "detect0.json")
	must(runDetect(&DetectOptions{IO: ios, Inputs: goodPaths, Weights: weights, ScoreThresh: 0.3, MaxPixels: 50, JSON: true, COCOResults: dets0}))

	// The ground truth: some of detect's boxes (so that AP is neither 0 nor
	// 1), moved a little, and one box detect did not find.
	var want []inference.Result
	gtSet := &datasets.Set{Classes: []string{"cat", "dog"}, CategoryIDs: []int{17, 18}}
	for i, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r inference.Result
		must(json.Unmarshal([]byte(line), &r))
		want = append(want, r)
		rec := datasets.Record{ID: int64(100 + i), Name: filepath.Base(r.Image), Width: r.Width, Height: r.Height}
		for j, d := range r.Detections {
			if j%2 == 0 {
				b := d.BoxValue()
				rec.Objects = append(rec.Objects, datasets.Object{Box: box.Box{X1: b.X1 + 1, Y1: b.Y1, X2: b.X2, Y2: b.Y2 + 1}, Label: d.ClassID - 1})
			}
		}
		rec.Objects = append(rec.Objects, datasets.Object{Box: box.Box{X1: 2, Y1: 3, X2: 20, Y2: 30}, Label: 1})
		gtSet.Records = append(gtSet.Records, rec)
	}
	if len(want) != len(good) {
		t.Fatalf("detect: %d results for %d images; stderr %s", len(want), len(good), errOut)
	}
	nDet := 0
	for _, r := range want {
		nDet += len(r.Detections)
	}
	if nDet < 4 {
		t.Fatalf("detect found %d objects: too few to compare", nDet)
	}
	gt := filepath.Join(dir, "gt.json")
	must(datasets.WriteCOCO(gt, gtSet))
	dets := filepath.Join(dir, "detect.json")
	ios, _, _, errOut = cli.Test()
	must(runDetect(&DetectOptions{IO: ios, Inputs: goodPaths, Weights: weights, ScoreThresh: 0.3, MaxPixels: 50, COCOResults: dets, COCOGT: gt}))
	// What eval-det prints for detect's results.
	g, err := eval.ReadCOCOGroundTruth(gt)
	must(err)
	dr, err := eval.ReadCOCOResults(dets)
	must(err)
	res, err := eval.EvaluateCOCO(g, dr)
	must(err)
	var evalText bytes.Buffer
	must(res.WriteText(&evalText))
	if res.Stats.Values[0] <= 0 || res.Stats.Values[0] >= 1 {
		t.Errorf("AP %v: the ground truth should make it strictly between 0 and 1", res.Stats.Values[0])
	}

	newRoot := func(ios *cli.IOStreams) *cobra.Command { return NewCmdDetect(ios, nil) }
	runs := []struct {
		name, runner, input, models string
	}{
		{"prism glob", "prism", filepath.Join(imgs, "*"), "2"},
		{"direct list", "direct", filepath.Join(dir, "list.txt"), "1"},
	}
	// The list names the images in another order, with a comment and a
	// blank line.
	list := "# images\n"
	for _, p := range slices.Backward(append(slices.Clone(goodPaths), filepath.Join(imgs, "truncated.jpg"), filepath.Join(imgs, "text.jpg"), filepath.Join(imgs, "empty.jpg"))) {
		list += "  " + p + "\n\n"
	}
	must(os.WriteFile(filepath.Join(dir, "list.txt"), []byte(list), 0o644))
	var first map[string][]byte
	for _, run := range runs {
		t.Run(run.name, func(t *testing.T) {
			prefix := filepath.Join(dir, "out-"+run.runner, "run")
			code, stdout, stderr := clitest.Main(newRoot, "batch", "--runner", run.runner, "--input", run.input, "--output", prefix,
				"--weights", weights, "--score-thresh", "0.3", "--coco-gt", gt, "--shards", "3", "--models-per-worker", run.models)
			if code != 1 || !strings.Contains(stderr, "3 images failed: see "+prefix+"-errors-*.jsonl") {
				t.Fatalf("exit code %d (want 1, for the bad images); stderr:\n%s", code, stderr)
			}
			t.Logf("%s", stderr[strings.Index(stderr, "detect batch:"):])
			if !strings.Contains(stderr, "detect batch: 4 of 7 images") {
				t.Errorf("summary: %s", stderr)
			}
			// The JSON lines of the good images are detect's.
			lines := readLines(t, prefix+"-detections-*-of-00003.jsonl")
			got := map[string]string{}
			for _, l := range lines {
				var r inference.Result
				must(json.Unmarshal([]byte(l), &r))
				got[r.Image] = l
			}
			for _, w := range want {
				wb, _ := json.Marshal(w)
				if got[w.Image] != string(wb) {
					t.Errorf("%s:\n got %s\nwant %s", w.Image, got[w.Image], wb)
				}
			}
			if len(got) != len(want) || len(lines) != len(want) {
				t.Errorf("%d lines for %d images, want %d", len(lines), len(got), len(want))
			}
			// The bad ones are in the dead letter with their reasons.
			errs := readLines(t, prefix+"-errors-*-of-00003.jsonl")
			reasons := map[string]string{}
			for _, l := range errs {
				var f struct{ Image, Error string }
				must(json.Unmarshal([]byte(l), &f))
				reasons[filepath.Base(f.Image)] = f.Error
			}
			for name, reason := range bad {
				if !strings.Contains(reasons[name], reason) {
					t.Errorf("dead letter for %s: %q, want it to say %q", name, reasons[name], reason)
				}
			}
			if len(errs) != len(bad) {
				t.Errorf("%d dead-letter lines, want %d: %q", len(errs), len(bad), errs)
			}
			// The COCO results are detect's, byte for byte, and the numbers
			// eval-det's.
			b0, err := os.ReadFile(dets)
			must(err)
			b1, err := os.ReadFile(prefix + "-coco-results.json")
			must(err)
			if !bytes.Equal(b0, b1) {
				t.Errorf("COCO results differ from detect's:\n%s\n%s", b1, b0)
			}
			if stdout != evalText.String() {
				t.Errorf("COCO numbers\n got %s\nwant %s", stdout, evalText.String())
			}
			// The same input gives the same files.
			files, err := filepath.Glob(prefix + "-*")
			must(err)
			outs := map[string][]byte{}
			for _, f := range files {
				b, err := os.ReadFile(f)
				must(err)
				outs[filepath.Base(f)] = b
			}
			if first == nil {
				first = outs
			} else if !reflect.DeepEqual(first, outs) {
				t.Errorf("a rerun wrote other files: %d files vs %d", len(outs), len(first))
			}
		})
	}

	// An image the ground truth lacks is detected and goes to the dead
	// letter as missing from the COCO results.
	gtSet.Records = gtSet.Records[:len(gtSet.Records)-1]
	gt3 := filepath.Join(dir, "gt3.json")
	must(datasets.WriteCOCO(gt3, gtSet))
	prefix := filepath.Join(dir, "out-gt3", "run")
	code, _, stderr := clitest.Main(newRoot, "batch", "--runner", "prism", "--input", filepath.Join(imgs, "0*"), "--output", prefix,
		"--weights", weights, "--score-thresh", "0.3", "--coco-gt", gt3, "--shards", "1")
	last := good[len(good)-1]
	if code != 1 || !strings.Contains(stderr, "detect batch: 4 of 4 images") || !strings.Contains(stderr, "1 images are not in "+gt3) {
		t.Errorf("exit code %d, stderr:\n%s", code, stderr)
	}
	errs := readLines(t, prefix+"-errors-00000-of-00001.jsonl")
	if len(errs) != 1 || !strings.Contains(errs[0], last) || !strings.Contains(errs[0], `not in the COCO results: --coco-gt has no image with file_name \"`+last) {
		t.Errorf("dead letter %q", errs)
	}
}
