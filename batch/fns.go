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

	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/eval"
	"resdet/inference"
	"resdet/nn"
)

func init() {
	for _, fn := range []any{&expandGlobFn{}, &listLineFn{}, &detectFn{}, &shardKeyFn{}, &writeShardFn{}, &cocoFn{}} {
		beam.RegisterType(reflect.TypeOf(fn).Elem())
	}
}

// Counter names (namespace "resdet") that Run reads back into a Summary.
const (
	counterImages     = "images"     // images detected
	counterDetections = "detections" // detections in them
	counterFailed     = "failed"     // images in the dead-letter output
	counterModels     = "models"     // detectFn instances that loaded the model
)

var (
	imagesCounter     = beam.NewCounter("resdet", counterImages)
	detectionsCounter = beam.NewCounter("resdet", counterDetections)
	failedCounter     = beam.NewCounter("resdet", counterFailed)
	modelsCounter     = beam.NewCounter("resdet", counterModels)
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

// detectFn runs the detector on one image path. Setup loads the model
// (each instance once; a runner keeps one instance per bundle it
// processes at a time and reuses it across bundles), ProcessElement emits
// (path, JSON line) for an image it read and ran, or (path, dead-letter
// line) for one it could not.
type detectFn struct {
	Model     inference.ModelOptions
	MaxPixels float64 // images above this many megapixels go to the dead letter
	Threads   int     // threads of the heavy ops; 0 = RESDET_THREADS or all cores

	m   *detection.FasterRCNN
	tr  imageio.Transform
	tmp string // folder for local copies of remote files
}

func (f *detectFn) Setup(ctx context.Context) error {
	if f.Threads > 0 {
		nn.SetThreads(f.Threads)
	} else if _, err := nn.ThreadsFromEnv(); err != nil {
		return err
	}
	var err error
	if f.tmp, err = os.MkdirTemp("", "resdet-batch-"); err != nil {
		return err
	}
	o := f.Model
	if o.Weights != "" && !isLocal(o.Weights) {
		local, _, err := fetchLocal(ctx, o.Weights, f.tmp)
		if err != nil {
			return fmt.Errorf("--weights: %w", err)
		}
		o.Weights = local
	}
	if f.m, err = inference.Load(o, inference.FetchZoo(ctx, o.Cache)); err != nil {
		return err
	}
	f.tr = inference.Transform(f.m)
	modelsCounter.Inc(ctx, 1)
	return nil
}

func (f *detectFn) Teardown() error {
	if f.m != nil {
		f.m.Close()
		f.m = nil
	}
	if f.tmp != "" {
		return os.RemoveAll(f.tmp)
	}
	return nil
}

func (f *detectFn) ProcessElement(ctx context.Context, path string, emit, emitFailure func(string, string)) {
	res, err := f.detect(ctx, path)
	if err == nil {
		var b []byte
		if b, err = json.Marshal(res); err == nil {
			imagesCounter.Inc(ctx, 1)
			detectionsCounter.Inc(ctx, int64(len(res.Detections)))
			emit(path, string(b))
			return
		}
	}
	failedCounter.Inc(ctx, 1)
	emitFailure(path, failureLine(path, err))
}

func (f *detectFn) detect(ctx context.Context, path string) (inference.Result, error) {
	local, remove, err := fetchLocal(ctx, path, f.tmp)
	if err != nil {
		return inference.Result{}, err
	}
	defer remove()
	res, _, _, err := inference.DetectFile(f.m, f.tr, local, f.MaxPixels)
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
	coco, err := inference.NewCOCOResults(gt, f.Classes, false)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if err := coco.Add(r); err != nil {
			failedCounter.Inc(ctx, 1)
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
