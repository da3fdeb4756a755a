package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"

	"resdet/detection"
	"resdet/eval"
	"resdet/inference"
)

func init() {
	for _, fn := range []any{&expandGlobFn{}, &listLineFn{}, &detectFn{}, &shardKeyFn{}, &writeShardFn{}, &cocoFn{},
		&tallyFn{}, &sumTallyFn{}, &writeSummaryFn{}, &tally{}} {
		beam.RegisterType(reflect.TypeOf(fn).Elem())
	}
}

// Counter names (namespace "resdet"): the runner's view of a run's
// progress. Run reads only counterModels back; the counts of the Summary
// come from the pipeline's data (the summary file), because metrics are
// best effort: prism (Beam 2.78) loses the counts of one of two bundles
// that finish at once before it knows the counters' short ids.
const (
	counterImages     = "images"     // images detected
	counterDetections = "detections" // detections in them
	counterFailed     = "failed"     // images in the dead-letter output
	counterModels     = "models"     // detectors loaded (pool.go)
	counterNotInGT    = "not_in_gt"  // images detected but missing from the COCO ground truth
)

var (
	imagesCounter     = beam.NewCounter("resdet", counterImages)
	detectionsCounter = beam.NewCounter("resdet", counterDetections)
	failedCounter     = beam.NewCounter("resdet", counterFailed)
	modelsCounter     = beam.NewCounter("resdet", counterModels)
	notInGTCounter    = beam.NewCounter("resdet", counterNotInGT)
)

// failure is one line of the dead-letter output.
type failure struct {
	Image string `json:"image"`
	Error string `json:"error"`
}

func failureLine(path string, err error) string {
	b, _ := json.Marshal(failure{Image: path, Error: err.Error()}) // strings always marshal
	return string(b)
}

// expandGlobFn turns a glob into the files it matches, sorted; a glob
// that matches nothing is an error (the pipeline fails naming it).
type expandGlobFn struct{}

func (*expandGlobFn) ProcessElement(ctx context.Context, glob string, emit func(string)) error {
	fs, err := filesystem.New(ctx, glob)
	if err != nil {
		return fmt.Errorf("--input %s: %w", glob, err)
	}
	defer fs.Close()
	paths, err := fs.List(ctx, glob)
	if err != nil {
		return fmt.Errorf("--input %s: %w", glob, err)
	}
	if len(paths) == 0 {
		return fmt.Errorf("--input %s: the pattern matches no file", glob)
	}
	slices.Sort(paths)
	for _, p := range paths {
		emit(p)
	}
	return nil
}

// listLineFn turns a line of the input list into an image path: spaces
// around it are trimmed, empty lines and lines starting with # skipped.
type listLineFn struct{}

func (*listLineFn) ProcessElement(line string, emit func(string)) {
	line = strings.TrimSpace(line)
	if line != "" && !strings.HasPrefix(line, "#") {
		emit(line)
	}
}

// detectFn runs the detector on one image path. Setup joins the worker
// process's model pool (pool.go); the first StartBundle of the process
// loads a detector into it, so that a model that cannot be loaded fails the
// first bundle at once; ProcessElement borrows a detector from the pool and
// emits (path, JSON line) for an image it read and ran, or (path,
// dead-letter line) for one it could not.
//
// The model is loaded in StartBundle, not in Setup, so that a runner can
// split the first bundle while the model loads. Prism (Beam 2.78) runs a
// stage's pending elements as one bundle and spreads them over parallel
// bundles only by splitting it: it asks for a split once the bundle has
// made no progress between two progress polls (100 ms apart at first, so
// after 200 ms), and if that split is refused it never asks again for that
// bundle. The SDK refuses to
// split a bundle whose plan is not active yet, i.e. while the DoFns' Setup
// runs: a model loaded in Setup (1.6 s for an R50-C4) kept the whole
// detection stage in one bundle on one model, whatever
// --models-per-worker said. In StartBundle the plan is active and the
// split succeeds.
type detectFn struct {
	Model     inference.ModelOptions
	MaxPixels float64 // images above this many megapixels go to the dead letter
	Threads   int     // threads of the heavy ops; 0 = RESDET_THREADS or all cores
	Models    int     // detectors per worker process at most

	pool *modelPool
	tmp  string // folder for local copies of remote images
}

func (f *detectFn) Setup() error {
	var err error
	if f.tmp, err = os.MkdirTemp("", "resdet-batch-"); err != nil {
		return err
	}
	f.pool = acquirePool(f.Model, f.Threads, max(f.Models, 1))
	return nil
}

// StartBundle takes ProcessElement's emitters because the SDK requires it
// of a DoFn that emits; it emits nothing.
func (f *detectFn) StartBundle(ctx context.Context, _, _ func(string, string)) error {
	return f.pool.ensureLoaded(ctx)
}

func (f *detectFn) Teardown() error {
	var err error
	if f.pool != nil {
		err = releasePool(f.pool)
		f.pool = nil
	}
	if f.tmp != "" {
		if e := os.RemoveAll(f.tmp); err == nil {
			err = e
		}
	}
	return err
}

func (f *detectFn) ProcessElement(ctx context.Context, path string, emit, emitFailure func(string, string)) error {
	m, err := f.pool.get(ctx)
	if err != nil {
		return err
	}
	defer f.pool.put(m)
	if detectHook != nil {
		defer detectHook(path)()
	}
	res, err := f.detect(ctx, m, path)
	if err == nil {
		var b []byte
		if b, err = json.Marshal(res); err == nil {
			imagesCounter.Inc(ctx, 1)
			detectionsCounter.Inc(ctx, int64(len(res.Detections)))
			emit(path, string(b))
			return nil
		}
	}
	failedCounter.Inc(ctx, 1)
	emitFailure(path, failureLine(path, err))
	return nil
}

func (f *detectFn) detect(ctx context.Context, m *detection.FasterRCNN, path string) (inference.Result, error) {
	local, remove, err := fetchLocal(ctx, path, f.tmp)
	if err != nil {
		return inference.Result{}, err
	}
	defer remove()
	res, _, _, err := inference.DetectFile(m, inference.Transform(m), local, f.MaxPixels)
	res.Image = path
	return res, err
}

// shardKeyFn keys a line by its shard: fnv32a(path) mod N.
type shardKeyFn struct{ N int }

func (f *shardKeyFn) ProcessElement(path, line string) (int, string) {
	h := fnv.New32a()
	h.Write([]byte(path))
	return int(h.Sum32() % uint32(f.N)), line
}

// writeShardFn writes one shard's lines, sorted, to
// Prefix-SSSSS-of-NNNNN.jsonl and emits the file's path.
type writeShardFn struct {
	Prefix string
	N      int
}

// shardPath is shard i's file name.
func shardPath(prefix string, i, n int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.jsonl", prefix, i, n)
}

func (f *writeShardFn) ProcessElement(ctx context.Context, shard int, lines func(*string) bool) (string, error) {
	var all []string
	var l string
	for lines(&l) {
		all = append(all, l)
	}
	slices.Sort(all)
	path := shardPath(f.Prefix, shard, f.N)
	err := writeOutput(ctx, path, func(w io.Writer) error {
		for _, l := range all {
			if _, err := io.WriteString(w, l+"\n"); err != nil {
				return err
			}
		}
		return nil
	})
	return path, err
}

// cocoFn gathers every result (a side input, so that it runs once even
// when no image was detected), writes the COCO results file in
// path order and the evaluation's 12 lines. Images the ground truth does
// not hold go to the dead letter.
type cocoFn struct {
	GT      string   // COCO instances file
	Classes []string // the detector's class names (class_id j is Classes[j-1])
	Results string   // COCO results file to write
	Eval    string   // text file for the 12 COCO lines
}

func (f *cocoFn) ProcessElement(ctx context.Context, _ []byte, lines func(*string) bool, emitFailure func(string, string)) error {
	var rs []inference.Result
	var l string
	for lines(&l) {
		var r inference.Result
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			return fmt.Errorf("coco: result line %q: %w", l, err)
		}
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b inference.Result) int { return strings.Compare(a.Image, b.Image) })
	dir, err := os.MkdirTemp("", "resdet-batch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	gt, _, err := fetchLocal(ctx, f.GT, dir)
	if err != nil {
		return fmt.Errorf("--coco-gt: %w", err)
	}
	coco, err := inference.NewCOCOResults(gt, f.Classes)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if err := coco.Add(r); err != nil {
			notInGTCounter.Inc(ctx, 1)
			emitFailure(r.Image, failureLine(r.Image, fmt.Errorf("not in the COCO results: %w", err)))
		}
	}
	var resultsLocal string
	err = writeViaLocal(ctx, f.Results, func(local string) error {
		resultsLocal = local
		if err := coco.Write(local); err != nil {
			return err
		}
		// Evaluate the file as written, as eval-det reads it.
		g, err := eval.ReadCOCOGroundTruth(gt)
		if err != nil {
			return err
		}
		dets, err := eval.ReadCOCOResults(resultsLocal)
		if err != nil {
			return err
		}
		res, err := eval.EvaluateCOCO(g, dets)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Results, err)
		}
		var buf bytes.Buffer
		if err := res.WriteText(&buf); err != nil {
			return err
		}
		return writeOutput(ctx, f.Eval, func(w io.Writer) error { _, err := w.Write(buf.Bytes()); return err })
	})
	return err
}

// tally is what part of a run did; the tallies of all images, summed, are
// the summary file (PREFIX-summary.json).
type tally struct {
	Images     int64 `json:"images"`     // images detected (detection lines)
	Detections int64 `json:"detections"` // detections in them
	Failed     int64 `json:"failed"`     // images that failed (dead-letter lines from detection)
	NotInGT    int64 `json:"not_in_gt"`  // images detected but not in the COCO ground truth (dead-letter lines)
}

func (t tally) add(u tally) tally {
	return tally{t.Images + u.Images, t.Detections + u.Detections, t.Failed + u.Failed, t.NotInGT + u.NotInGT}
}

// tallyFn turns an output line into its tally: a detection line (Kind
// "image") counts one image and its detections, a dead-letter line one
// failure (Kind "failed") or one image missing from the ground truth (Kind
// "not_in_gt").
type tallyFn struct{ Kind string }

func (f *tallyFn) ProcessElement(path, line string) (tally, error) {
	switch f.Kind {
	case "image":
		var r struct{ Detections []json.RawMessage }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return tally{}, fmt.Errorf("summary: the detection line of %s: %w", path, err)
		}
		return tally{Images: 1, Detections: int64(len(r.Detections))}, nil
	case "failed":
		return tally{Failed: 1}, nil
	case "not_in_gt":
		return tally{NotInGT: 1}, nil
	}
	return tally{}, fmt.Errorf("summary: unknown tally kind %q", f.Kind)
}

// sumTallyFn sums tallies (a CombineFn).
type sumTallyFn struct{}

func (*sumTallyFn) MergeAccumulators(a, b tally) tally { return a.add(b) }

// writeSummaryFn writes the run's tally (the sum, a side input so that it
// runs once even when the input held no image) to Path as JSON.
type writeSummaryFn struct{ Path string }

func (f *writeSummaryFn) ProcessElement(ctx context.Context, _ []byte, sums func(*tally) bool) error {
	var sum, t tally
	for sums(&t) {
		sum = sum.add(t)
	}
	b, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	return writeOutput(ctx, f.Path, func(w io.Writer) error { _, err := w.Write(append(b, '\n')); return err })
}
