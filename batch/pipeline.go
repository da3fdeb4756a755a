package batch

import (
	"context"
	"encoding/json"
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
	// takes one model's memory), so the images it detects at once; bundles
	// the runner processes at once beyond it wait for one. On prism (one
	// worker process) it is the number of parallel detectors, each with
	// Threads threads. 0 = 1.
	ModelsPerWorker int
}

// Files are the outputs of a run, as patterns or paths.
type Files struct {
	Detections  string // glob of the detection shards
	Errors      string // glob of the dead-letter shards
	Summary     string // the run's counts: {"images": N, "detections": N, "failed": N, "not_in_gt": N}
	COCOResults string // "" without a ground truth
	COCOEval    string
}

// OutputFiles returns the names the outputs of o get.
func (o Options) OutputFiles() Files {
	f := Files{Detections: o.Output + "-detections-*.jsonl", Errors: o.Output + "-errors-*.jsonl", Summary: o.Output + "-summary.json"}
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
	files := o.OutputFiles()
	tallies := []beam.PCollection{
		beam.ParDo(s.Scope("TallyImages"), &tallyFn{Kind: "image"}, results),
		beam.ParDo(s.Scope("TallyFailures"), &tallyFn{Kind: "failed"}, failures),
	}
	if o.COCOGT != "" {
		coco := beam.ParDo(s.Scope("COCO"), &cocoFn{GT: o.COCOGT, Classes: o.Classes, Results: files.COCOResults, Eval: files.COCOEval},
			beam.Impulse(s), beam.SideInput{Input: beam.DropKey(s, results)})
		tallies = append(tallies, beam.ParDo(s.Scope("TallyNotInGT"), &tallyFn{Kind: "not_in_gt"}, coco))
		failures = beam.Flatten(s, failures, coco)
	}
	writeShards(s.Scope("WriteDetections"), o.Output+"-detections", o.Shards, results)
	writeShards(s.Scope("WriteErrors"), o.Output+"-errors", o.Shards, failures)
	sum := beam.Combine(s.Scope("Summary"), &sumTallyFn{}, beam.Flatten(s, tallies...))
	beam.ParDo0(s.Scope("WriteSummary"), &writeSummaryFn{Path: files.Summary}, beam.Impulse(s), beam.SideInput{Input: sum})
	return nil
}

// writeShards writes (path, line) pairs into n sorted shard files.
func writeShards(s beam.Scope, prefix string, n int, lines beam.PCollection) {
	keyed := beam.ParDo(s, &shardKeyFn{N: n}, lines)
	beam.ParDo(s, &writeShardFn{Prefix: prefix, N: n}, beam.GroupByKey(s, keyed))
}

// Summary counts what a run did: the counts from the summary file the
// pipeline wrote, the models from the runner's metrics. All zero for an
// asynchronous submission (Done false).
type Summary struct {
	Images     int64 // images detected, one JSON line each
	Detections int64 // detections in them
	Failed     int64 // images that failed (dead-letter lines)
	NotInGT    int64 // images detected but not in the COCO ground truth (dead-letter lines too)
	// Models counts the detectors loaded over all workers, from the
	// runner's metrics (best effort: prism may miss some; 0 when the runner
	// reports none).
	Models int64
	Done   bool // the run finished here and its summary file was read
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
	if pr == nil {
		return Summary{}, nil
	}
	path := o.OutputFiles().Summary
	b, err := ReadFile(ctx, path)
	if err != nil {
		return Summary{}, err
	}
	var t tally
	if err := json.Unmarshal(b, &t); err != nil {
		return Summary{}, fmt.Errorf("%s: %w", path, err)
	}
	sum := Summary{Images: t.Images, Detections: t.Detections, Failed: t.Failed, NotInGT: t.NotInGT, Done: true}
	for _, c := range pr.Metrics().AllMetrics().Counters() {
		if c.Namespace() == "resdet" && c.Name() == counterModels {
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
