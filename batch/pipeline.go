package batch

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"

	"resdet/inference"
)

// Options are the inputs of a batch run (the `detect batch` flags other
// than Beam's own).
type Options struct {
	// Input is a text file listing image paths, one a line (blank lines and
	// lines starting with # are skipped), or a glob (it holds * ? or [).
	// Paths and globs go through Beam's filesystems: local, gs://, s3://.
	Input string
	// Output is the prefix of the output files: PREFIX-detections-*.jsonl,
	// PREFIX-errors-*.jsonl and, with COCOGT, PREFIX-coco-results.json and
	// PREFIX-coco-eval.txt.
	Output string
	// COCOGT is a COCO instances file: image ids (by file name) and
	// categories (by name) for the COCO results, and the ground truth they
	// are evaluated against. "" = no COCO outputs.
	COCOGT string
	// Classes are the detector's class names, needed with COCOGT (the
	// launcher loads the model to learn them: LoadClasses).
	Classes   []string
	Model     inference.ModelOptions
	MaxPixels float64 // images above this many megapixels are failures
	Threads   int     // threads of the heavy ops in each worker; 0 = RESDET_THREADS or all cores
	Shards    int     // number of output shards, >= 1
	// ModelsPerWorker caps the detectors a worker process loads (each
	// takes one model's memory); bundles the runner processes at once
	// beyond it wait for one. 0 = 1.
	ModelsPerWorker int
}

// Files are the outputs of a run, as patterns or paths.
type Files struct {
	Detections  string // glob of the detection shards
	Errors      string // glob of the dead-letter shards
	COCOResults string // "" without a ground truth
	COCOEval    string
}

// OutputFiles returns the names the outputs of o get.
func (o Options) OutputFiles() Files {
	f := Files{Detections: o.Output + "-detections-*.jsonl", Errors: o.Output + "-errors-*.jsonl"}
	if o.COCOGT != "" {
		f.COCOResults, f.COCOEval = o.Output+"-coco-results.json", o.Output+"-coco-eval.txt"
	}
	return f
}

func (o Options) check() error {
	switch {
	case o.Input == "":
		return errors.New("batch: no input")
	case o.Output == "":
		return errors.New("batch: no output prefix")
	case o.Shards < 1:
		return fmt.Errorf("batch: %d shards, want at least 1", o.Shards)
	case !(o.MaxPixels > 0):
		return fmt.Errorf("batch: max pixels %g, want > 0", o.MaxPixels)
	case o.ModelsPerWorker < 0:
		return fmt.Errorf("batch: %d models per worker, want >= 0", o.ModelsPerWorker)
	case o.COCOGT != "" && len(o.Classes) == 0:
		return errors.New("batch: a COCO ground truth needs the detector's class names")
	}
	return nil
}

// isGlob reports whether the input is a pattern rather than a list file.
func isGlob(input string) bool { return strings.ContainsAny(input, "*?[") }

// Build adds the pipeline o describes to s.
func Build(s beam.Scope, o Options) error {
	if err := o.check(); err != nil {
		return err
	}
	var paths beam.PCollection
	if isGlob(o.Input) {
		paths = beam.ParDo(s.Scope("ExpandGlob"), &expandGlobFn{}, beam.Create(s, o.Input))
	} else {
		paths = beam.ParDo(s.Scope("ListLines"), &listLineFn{}, textio.Read(s.Scope("ReadList"), o.Input))
	}
	// A fusion break: the images are spread over the workers instead of
	// following the one element that listed them.
	paths = beam.Reshuffle(s, paths)
	results, failures := beam.ParDo2(s.Scope("Detect"), &detectFn{Model: o.Model, MaxPixels: o.MaxPixels, Threads: o.Threads, Models: o.ModelsPerWorker}, paths)
	if o.COCOGT != "" {
		files := o.OutputFiles()
		coco := beam.ParDo(s.Scope("COCO"), &cocoFn{GT: o.COCOGT, Classes: o.Classes, Results: files.COCOResults, Eval: files.COCOEval},
			beam.Impulse(s), beam.SideInput{Input: beam.DropKey(s, results)})
		failures = beam.Flatten(s, failures, coco)
	}
	writeShards(s.Scope("WriteDetections"), o.Output+"-detections", o.Shards, results)
	writeShards(s.Scope("WriteErrors"), o.Output+"-errors", o.Shards, failures)
	return nil
}

// writeShards writes (path, line) pairs into n sorted shard files.
func writeShards(s beam.Scope, prefix string, n int, lines beam.PCollection) {
	keyed := beam.ParDo(s, &shardKeyFn{N: n}, lines)
	beam.ParDo(s, &writeShardFn{Prefix: prefix, N: n}, beam.GroupByKey(s, keyed))
}

// Summary counts what a run did (from the pipeline's metrics: zero when
// the runner reports none, e.g. an asynchronous submission).
type Summary struct {
	Images     int64 // images detected, one JSON line each
	Detections int64 // detections in them
	Failed     int64 // images that failed (dead-letter lines)
	NotInGT    int64 // images detected but not in the COCO ground truth (dead-letter lines too)
	Models     int64 // detectors loaded, over all workers
	HasMetrics bool  // the runner reported metrics
}

// Run builds the pipeline and runs it on runner ("" = prism, in this
// process), with the Beam options given as flags (package flag's
// CommandLine: --endpoint, --environment_type, ...). beam.Init must have
// been called.
func Run(ctx context.Context, runner string, o Options) (Summary, error) {
	p, s := beam.NewPipelineWithRoot()
	if err := Build(s, o); err != nil {
		return Summary{}, err
	}
	if runner == "" {
		runner = "prism"
	}
	pr, err := beam.Run(ctx, runner, p)
	if err != nil {
		return Summary{}, err
	}
	var sum Summary
	if pr == nil {
		return sum, nil
	}
	for _, c := range pr.Metrics().AllMetrics().Counters() {
		if c.Namespace() != "resdet" {
			continue
		}
		sum.HasMetrics = true
		switch c.Name() {
		case counterImages:
			sum.Images += c.Result()
		case counterDetections:
			sum.Detections += c.Result()
		case counterFailed:
			sum.Failed += c.Result()
		case counterNotInGT:
			sum.NotInGT += c.Result()
		case counterModels:
			sum.Models += c.Result()
		}
	}
	return sum, nil
}

// LoadClasses loads the detector o names (as a worker does) and returns
// its class names: what the COCO outputs need.
func LoadClasses(ctx context.Context, o inference.ModelOptions) ([]string, error) {
	p := acquirePool(o, 0, 1)
	defer releasePool(p)
	m, err := p.load(ctx)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return m.Config.Classes, nil
}
