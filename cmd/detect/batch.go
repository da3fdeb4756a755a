package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"resdet/batch"
	"resdet/internal/cli"
	"resdet/zoo"
)

// BatchOptions are the inputs of `detect batch` other than Beam's own
// options, which stay in package flag's CommandLine where the Beam SDK
// reads them.
type BatchOptions struct {
	IO      *cli.IOStreams
	Batch   batch.Options
	Classes string // --classes, kept for the check against --coco-gt
}

// beamWorkerFlags are the flags a runner passes when it starts this binary
// as a Beam worker (SDK harness); they are not pipeline options.
var beamWorkerFlags = []string{"worker", "id", "logging_endpoint", "control_endpoint", "semi_persist_dir", "options"}

// newCmdBatch returns `detect batch`. runF, when not nil, replaces the run
// function (tests capture the options with it).
//
// Beam's Go SDK declares its pipeline options (--runner, --endpoint,
// --job_endpoint, --environment_type, --project, ...) on package flag's
// CommandLine and reads them from there. Each is added to this command's
// flags as a forwarder: cobra parses the command line once, a Beam option
// is set with flag.CommandLine.Set (so Beam sees it as set, as after
// flag.Parse, and passes it on to the job), and help lists them in a
// section of their own.
func newCmdBatch(ios *cli.IOStreams, runF func(*BatchOptions) error) *cobra.Command {
	opts := &BatchOptions{IO: ios}
	o := &opts.Batch
	var precision string
	cmd := &cobra.Command{
		Use:   "batch --input LIST|GLOB --output PREFIX [--model NAME | --weights FILE] [--coco-gt GT] [--runner RUNNER] [Beam options]",
		Short: "Run a detector over many images as an Apache Beam pipeline",
		Long: `batch runs the detector on every image of --input as an Apache Beam
pipeline: in this process (--runner prism, the default, or direct) or on a
cluster (--runner flink, spark or dataflow, with Beam's options for them).

--input is a text file listing image paths (one a line; blank lines and
lines starting with # are skipped) or a glob ('img/*.jpg'); paths and
globs are read through Beam's filesystems: local files, gs:// and s3://.

Outputs, named from --output PREFIX (local, gs:// or s3://):
  PREFIX-detections-SSSSS-of-NNNNN.jsonl  one JSON object per image, the
      'detect --json' schema, sorted by path within each shard
  PREFIX-errors-SSSSS-of-NNNNN.jsonl      the dead letter: one object per
      image that failed, {"image": PATH, "error": REASON}
  PREFIX-summary.json    the counts: {"images": N, "detections": N,
      "failed": N, "not_in_gt": N}
  PREFIX-coco-results.json, PREFIX-coco-eval.txt   with --coco-gt: the COCO
      results file and the 12 numbers eval-det prints for it (also printed)
An image goes to shard fnv32a(path) mod --shards; a rerun over the same
input writes the same files.

Each worker process loads the model once (up to --models-per-worker
copies when the runner gives it several bundles at once: prism splits slow
bundles, Dataflow runs several threads per worker; --threads sets each
copy's threads) and runs the code path of 'detect' on each image. On prism
(this process), --models-per-worker N --threads T runs N detectors in
parallel with T threads each. The model flags are detect's: --weights may
also be a gs:// or s3:// path (copied to the worker); without --weights,
each worker takes --model from its model cache (--cache), downloading it if
needed. With --coco-gt the model is also loaded here, for its class names.

On a cluster, the workers run this same binary: it must be linux/amd64 with
OpenCV, oneDNN and OpenBLAS where it runs (a worker container image with
the Debian packages; see the README). A summary of images, detections and
failures ends the run on stderr; failures make the exit code 1.`,
		Example: `  detect batch --input 'photos/*.jpg' --output out/photos --model d2-r50-c4-3x
  detect batch --input list.txt --output out/val --weights model.safetensors --coco-gt instances_val2017.json
  detect batch --input 'gs://bucket/img/*.jpg' --output gs://bucket/out/run1 --weights gs://bucket/r101c4.safetensors \
      --runner dataflow --project P --region europe-west1 --temp_location gs://bucket/tmp \
      --sdk_container_image europe-docker.pkg.dev/P/repo/resdet-worker:1
  detect batch --input list.txt --output /shared/out/run1 --weights /shared/r101c4.safetensors \
      --runner flink --endpoint flink-jobserver:8099 --environment_type DOCKER --environment_config resdet-worker:1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m := &o.Model
			switch {
			case o.Input == "":
				return cli.Usagef("--input is required (a list file or a glob)")
			case o.Output == "":
				return cli.Usagef("--output is required (a prefix of the output files)")
			case o.Shards < 1:
				return cli.Usagef("--shards must be >= 1, got %d", o.Shards)
			case o.ModelsPerWorker < 1:
				return cli.Usagef("--models-per-worker must be >= 1, got %d", o.ModelsPerWorker)
			}
			if err := checkModelFlags(cmd, m, precision, o.MaxPixels, o.Threads); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runBatch(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Input, "input", "", "text file listing image paths (one a line), or a glob")
	f.StringVar(&o.Output, "output", "", "prefix of the output files (PREFIX-detections-*.jsonl, PREFIX-errors-*.jsonl, ...)")
	f.StringVar(&o.COCOGT, "coco-gt", "", "COCO instances file: also write PREFIX-coco-results.json and evaluate it")
	f.IntVar(&o.Shards, "shards", 4, "number of output shards")
	f.IntVar(&o.ModelsPerWorker, "models-per-worker", 1, "detectors a worker process loads at most, so images it detects at once (on prism: parallel workers, each with --threads)")
	f.StringVarP(&o.Model.Weights, "weights", "w", "", "trained detector (as for detect; may be gs:// or s3://) (default: --model)")
	f.StringVarP(&o.Model.Model, "model", "m", zoo.DefaultName, "pretrained model to run when --weights is not given (see 'detect models')")
	f.StringVar(&o.Model.Cache, "cache", "", "model cache folder on the workers (default: $RESDET_CACHE, $XDG_CACHE_HOME/resdet/models or ~/.cache/resdet/models)")
	f.StringVar(&o.Model.Arch, "arch", "", "construction of a torchvision .pth (as for detect)")
	f.StringVar(&o.Model.RoIOp, "roi-op", "", "RoI feature op: align or pool (default: the checkpoint's; align for a .pth)")
	f.StringVar(&o.Model.Classes, "classes", "", "class names: voc, coco or a file with one name a line (default: the checkpoint's)")
	f.Float64Var(&o.Model.ScoreThresh, "score-thresh", 0.5, "keep detections scoring above this (torchvision box_score_thresh)")
	f.IntVar(&o.Threads, "threads", 0, "threads of the heavy ops in each worker (0: RESDET_THREADS or all cores)")
	f.IntVar(&o.Model.MinSize, "min-size", 0, "shorter image side after resizing, px (default: the checkpoint's)")
	f.IntVar(&o.Model.MaxSize, "max-size", 0, "longer image side at most, px (default: the checkpoint's)")
	f.Float64Var(&o.MaxPixels, "max-pixels", 50, "images larger than this many megapixels are failures")
	f.StringVar(&precision, "precision", "fp32", "arithmetic of the network on each worker: fp32, bf16 or auto (bf16 where the CPU has AMX); as for detect")
	_ = cmd.MarkFlagFilename("weights", "safetensors", "pth", "pt", "pkl")
	_ = cmd.MarkFlagFilename("coco-gt", "json")
	_ = cmd.RegisterFlagCompletionFunc("roi-op", cobra.FixedCompletions([]string{"align", "pool"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("runner", cobra.FixedCompletions([]string{"prism", "direct", "flink", "spark", "dataflow", "universal"}, cobra.ShellCompDirectiveNoFileComp))
	help := addBeamFlags(f)
	cmd.SetUsageTemplate(cmd.UsageTemplate() + "\nApache Beam pipeline options (Beam's own flags, passed to the runner):\n" +
		strings.ReplaceAll(help, "{{", `{{"{{"}}`))
	return cmd
}

// goFlag forwards a pflag to a flag of package flag's CommandLine.
type goFlag struct{ f *flag.Flag }

func (g goFlag) String() string     { return g.f.Value.String() }
func (g goFlag) Set(v string) error { return flag.CommandLine.Set(g.f.Name, v) }
func (g goFlag) Type() string {
	if isBoolFlag(g.f) {
		return "bool"
	}
	return "string"
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// addBeamFlags adds package flag's CommandLine flags (Beam's pipeline
// options, less the worker's) to fs as forwarders and returns their help
// text. Names fs already has are left to fs.
func addBeamFlags(fs *pflag.FlagSet) string {
	help := pflag.NewFlagSet("beam", pflag.ContinueOnError)
	flag.CommandLine.VisitAll(func(gf *flag.Flag) {
		if fs.Lookup(gf.Name) != nil || strings.HasPrefix(gf.Name, "test.") || slices.Contains(beamWorkerFlags, gf.Name) {
			return
		}
		for _, set := range []*pflag.FlagSet{fs, help} {
			pf := set.VarPF(goFlag{gf}, gf.Name, "", gf.Usage)
			pf.DefValue = gf.DefValue
			if isBoolFlag(gf) {
				pf.NoOptDefVal = "true"
			}
		}
		fs.Lookup(gf.Name).Hidden = true // listed in the Beam section instead
	})
	return help.FlagUsages()
}

// runBatch runs the pipeline on the runner --runner names and prints the
// summary (and the COCO numbers with --coco-gt).
func runBatch(opts *BatchOptions) error {
	ios := opts.IO
	o := opts.Batch
	if !beam.Initialized() {
		beam.Init()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.COCOGT != "" {
		classes, err := batch.LoadClasses(ctx, o.Model)
		if err != nil {
			return err
		}
		o.Classes = classes
	}
	if err := defaultWorkerBinary(); err != nil {
		return err
	}
	sum, err := batch.Run(ctx, *runners.Runner, o)
	if err != nil {
		return err
	}
	files := o.OutputFiles()
	if !sum.Done {
		fmt.Fprintf(ios.ErrOut, "detect batch: submitted; outputs %s, dead letter %s, counts in %s when it finishes\n", files.Detections, files.Errors, files.Summary)
		return nil
	}
	fmt.Fprintf(ios.ErrOut, "detect batch: %d of %d images, %d detections (%d models loaded); outputs %s\n",
		sum.Images, sum.Images+sum.Failed, sum.Detections, sum.Models, files.Detections)
	if files.COCOEval != "" {
		text, err := batch.ReadFile(ctx, files.COCOEval)
		if err != nil {
			return err
		}
		fmt.Fprintf(ios.Out, "%s", text)
		fmt.Fprintf(ios.ErrOut, "detect batch: COCO results %s, evaluation %s\n", files.COCOResults, files.COCOEval)
	}
	if sum.NotInGT > 0 {
		fmt.Fprintf(ios.ErrOut, "detect batch: %d images are not in %s, so not in the COCO results\n", sum.NotInGT, o.COCOGT)
	}
	if sum.Failed+sum.NotInGT > 0 {
		return fmt.Errorf("%d images failed: see %s", sum.Failed+sum.NotInGT, files.Errors)
	}
	return nil
}

// defaultWorkerBinary makes this binary the workers' unless
// --worker_binary names one: without it, Beam's portable and Dataflow
// runners would compile the program's source with the go command at
// launch. Only a linux/amd64 binary can serve (Beam's worker containers).
func defaultWorkerBinary() error {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "worker_binary" })
	if set || runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return flag.CommandLine.Set("worker_binary", exe)
}

// isBeamWorker reports whether args start this binary as a Beam worker: a
// runner starts the pipeline's binary with --worker and the endpoints
// (Beam's Go container boot, or --environment_type PROCESS).
func isBeamWorker(args []string) bool {
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "worker" {
			return true
		}
	}
	return false
}

// runBeamWorker parses the worker's flags and hands the process to Beam's
// harness (beam.Init serves the runner's requests and exits).
func runBeamWorker(args []string) int {
	if err := flag.CommandLine.Parse(args); err != nil {
		return 2
	}
	beam.Init()
	return 0
}
