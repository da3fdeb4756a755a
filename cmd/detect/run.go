package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"resdet/checkpoint"
	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/inference"
	"resdet/internal/cli"
	"resdet/nn"
	"resdet/zoo"
)

// imageExts are the file extensions a folder is searched for.
var imageExts = []string{".jpg", ".jpeg", ".png"}

// failure is one input that could not be processed.
type failure struct {
	input string
	err   error
}

// job is one image to run.
type job struct {
	path string
	pos  int // 1-based position among the images
}

// runDetect loads the detector, runs it on every image and writes the
// outputs opts asks for.
func runDetect(opts *DetectOptions) error {
	ios := opts.IO
	if opts.Threads > 0 {
		nn.SetThreads(opts.Threads)
	} else if _, err := nn.ThreadsFromEnv(); err != nil {
		return err
	}
	if _, err := opts.Precision.Resolve(); err != nil {
		return fmt.Errorf("--precision %s: %w", opts.Precision, err)
	}
	t0 := time.Now()
	m, err := loadDetector(opts)
	if err != nil {
		return err
	}
	defer m.Close()
	// The state dict read from the file is garbage now: let activations
	// reuse its memory instead of growing the heap.
	debug.FreeOSMemory()
	loadTime := time.Since(t0)
	cfg := m.Config
	if opts.Save != "" {
		if err := checkpoint.Save(opts.Save, m); err != nil {
			return err
		}
		fmt.Fprintf(ios.ErrOut, "detect: wrote %s (%s, %d classes)\n", opts.Save, cfg.Arch, len(cfg.Classes))
		if len(opts.Inputs) == 0 {
			return nil
		}
	}

	jobs, failures := expandInputs(opts.Inputs)
	var coco *inference.COCOResults
	if opts.COCOResults != "" {
		if coco, err = inference.NewCOCOResults(opts.COCOGT, cfg.Classes); err != nil {
			return err
		}
	}
	if opts.OutDir != "" {
		if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	tr := inference.Transform(m)

	var prog *cli.Progress
	if len(jobs) > 1 && cli.IsTerminal(ios.ErrOut) {
		prog = cli.NewProgress(ios.ErrOut, "detect", len(jobs), "images")
	}
	out := bufio.NewWriter(ios.Out)
	defer out.Flush()
	written := make(map[string]int)
	var prepTime, netTime time.Duration
	var done, nDet int
	for _, j := range jobs {
		res, prep, net, err := inference.DetectFile(m, tr, j.path, opts.MaxPixels)
		prepTime += prep
		netTime += net
		if err == nil && coco != nil {
			err = coco.Add(res)
		}
		if err == nil && opts.OutDir != "" {
			err = drawResult(opts.OutDir, j.path, res, written)
		}
		if err != nil {
			failures = append(failures, failure{j.path, err})
		} else {
			done++
			nDet += len(res.Detections)
			if err := writeResult(out, res, opts.JSON); err != nil {
				return err
			}
			if prog == nil {
				out.Flush()
			}
		}
		if prog != nil {
			prog.Add(1)
		}
	}
	if prog != nil {
		prog.Done()
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if coco != nil {
		if err := coco.Write(opts.COCOResults); err != nil {
			return err
		}
	}
	total := time.Since(t0)
	fmt.Fprintf(ios.ErrOut, "detect: %d of %d images, %d detections in %s (model load %s",
		done, done+len(failures), nDet, fmtDur(total), fmtDur(loadTime))
	if n := done + len(failures) - countExpansion(failures); n > 0 {
		fmt.Fprintf(ios.ErrOut, "; per image: read+resize %s, network %s", fmtDur(prepTime/time.Duration(n)), fmtDur(netTime/time.Duration(n)))
	}
	fmt.Fprintf(ios.ErrOut, "; precision %s: %s)\n", m.Precision, m.Precision.Reason)
	if len(failures) > 0 {
		fmt.Fprintf(ios.ErrOut, "detect: %d failed:\n", len(failures))
		for _, f := range failures {
			fmt.Fprintf(ios.ErrOut, "  %s: %v\n", f.input, f.err)
		}
		return fmt.Errorf("%d of %d inputs failed", len(failures), done+len(failures))
	}
	return nil
}

// countExpansion counts failures that are not images that were read.
func countExpansion(fs []failure) int {
	n := 0
	for _, f := range fs {
		if errors.Is(f.err, errNoImages) {
			n++
		}
	}
	return n
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	default:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	}
}

// loadDetector builds the detector --weights (or --model) names, with the
// overrides of the flags.
func loadDetector(opts *DetectOptions) (*detection.FasterRCNN, error) {
	return inference.Load(opts.modelOptions(), func(string) (zoo.Model, string, error) { return modelFile(opts) })
}

// checkModelFlags checks the flags detect and detect batch share (the
// model's, --max-pixels and --threads) and sets m.Precision from
// --precision: a usage error names the flag.
func checkModelFlags(cmd *cobra.Command, m *inference.ModelOptions, precision string, maxPixels float64, threads int) error {
	switch {
	case m.ScoreThresh < 0 || m.ScoreThresh > 1:
		return cli.Usagef("--score-thresh must be in [0, 1], got %g", m.ScoreThresh)
	case m.MinSize < 0 || m.MaxSize < 0:
		return cli.Usagef("--min-size and --max-size must be positive, got %d and %d", m.MinSize, m.MaxSize)
	case !(maxPixels > 0):
		return cli.Usagef("--max-pixels must be positive, got %g", maxPixels)
	case m.RoIOp != "" && m.RoIOp != "align" && m.RoIOp != "pool":
		return cli.Usagef(`--roi-op must be "align" or "pool", got %q`, m.RoIOp)
	case threads < 0:
		return cli.Usagef("--threads must be >= 0, got %d", threads)
	case m.Weights != "" && cmd.Flags().Changed("model"):
		return cli.Usagef("--weights and --model exclude each other")
	}
	p, err := nn.ParsePrecision(precision)
	if err != nil {
		return cli.Usagef("--precision must be fp32, bf16 or auto, got %q", precision)
	}
	m.Precision = p
	return nil
}

// modelOptions are the flags that choose and configure the detector.
func (o *DetectOptions) modelOptions() inference.ModelOptions {
	return inference.ModelOptions{Weights: o.Weights, Model: o.Model, Cache: o.Cache, Arch: o.Arch, RoIOp: o.RoIOp,
		Classes: o.Classes, ScoreThresh: o.ScoreThresh, MinSize: o.MinSize, MaxSize: o.MaxSize, Precision: o.Precision}
}

var errNoImages = errors.New("no images")

// expandInputs turns the arguments into image files: a folder gives its
// .jpg/.jpeg/.png files (not recursive, sorted), a pattern with * ? or [
// its matches, anything else itself. Folders without images and patterns
// without matches are failures.
func expandInputs(args []string) ([]job, []failure) {
	var jobs []job
	var fails []failure
	add := func(p string) { jobs = append(jobs, job{path: p, pos: len(jobs) + 1}) }
	for _, a := range args {
		if st, err := os.Stat(a); err == nil && st.IsDir() {
			ents, err := os.ReadDir(a)
			if err != nil {
				fails = append(fails, failure{a, err})
				continue
			}
			n := 0
			for _, e := range ents {
				if !e.IsDir() && slices.Contains(imageExts, strings.ToLower(filepath.Ext(e.Name()))) {
					add(filepath.Join(a, e.Name()))
					n++
				}
			}
			if n == 0 {
				fails = append(fails, failure{a, fmt.Errorf("%w: folder has no .jpg, .jpeg or .png files", errNoImages)})
			}
			continue
		}
		if strings.ContainsAny(a, "*?[") {
			ms, err := filepath.Glob(a)
			if err != nil {
				fails = append(fails, failure{a, fmt.Errorf("bad pattern: %w", err)})
				continue
			}
			if len(ms) == 0 {
				fails = append(fails, failure{a, fmt.Errorf("%w: the pattern matches no file", errNoImages)})
			}
			for _, p := range ms {
				add(p)
			}
			continue
		}
		add(a)
	}
	return jobs, fails
}

// writeResult prints one image's detections: a table, or a JSON line.
func writeResult(w io.Writer, r inference.Result, asJSON bool) error {
	if asJSON {
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	}
	fmt.Fprintf(w, "%s (%dx%d): %d detection%s\n", r.Image, r.Width, r.Height, len(r.Detections), plural(len(r.Detections)))
	if len(r.Detections) == 0 {
		return nil
	}
	width := len("class")
	for _, d := range r.Detections {
		width = max(width, len(d.Label))
	}
	fmt.Fprintf(w, "  %-*s  %5s  %8s %8s %8s %8s\n", width, "class", "score", "x1", "y1", "x2", "y2")
	for _, d := range r.Detections {
		_, err := fmt.Fprintf(w, "  %-*s  %5.3f  %8.1f %8.1f %8.1f %8.1f\n", width, d.Label, d.Score, d.Box[0], d.Box[1], d.Box[2], d.Box[3])
		if err != nil {
			return err
		}
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// drawResult writes the image with its detections drawn into dir, under its
// base name (name_2, name_3... when two inputs share it).
func drawResult(dir, src string, r inference.Result, written map[string]int) error {
	base := filepath.Base(src)
	written[base]++
	if n := written[base]; n > 1 {
		ext := filepath.Ext(base)
		base = strings.TrimSuffix(base, ext) + "_" + strconv.Itoa(n) + ext
	}
	anns := make([]imageio.Annotation, len(r.Detections))
	for i, d := range r.Detections {
		anns[i] = imageio.Annotation{Box: d.BoxValue(), Label: d.ClassID, Text: d.Label, Score: d.Score, HasScore: true}
	}
	return imageio.DrawFile(src, filepath.Join(dir, base), anns)
}

// modelFile returns the zoo model opts names (--model, else the default)
// and its file in the cache, downloading it first if needed (with a
// progress bar on stderr). Without network the error names the URL and
// the path to put the file at.
func modelFile(opts *DetectOptions) (zoo.Model, string, error) {
	name := opts.Model
	if name == "" {
		name = zoo.DefaultName
	}
	lookup := opts.lookup
	if lookup == nil {
		lookup = zoo.Lookup
	}
	zm, err := lookup(name)
	if err != nil {
		return zoo.Model{}, "", &cli.UsageError{Err: fmt.Errorf("--model: %w", err)}
	}
	if err := inference.Runnable(zm); err != nil {
		return zoo.Model{}, "", &cli.UsageError{Err: fmt.Errorf("--model %s: %w", zm.Name, err)}
	}
	cache, err := zoo.NewCache(opts.Cache)
	if err != nil {
		return zoo.Model{}, "", err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := fetchModel(ctx, opts.IO, cache, zm)
	if err != nil {
		if zoo.IsOffline(err) {
			return zoo.Model{}, "", fmt.Errorf("%w\n(no network: download %s yourself and put it at %s, or pass --weights FILE)", err, cache.URL(zm), cache.Path(zm))
		}
		return zoo.Model{}, "", err
	}
	if res.Warning != "" {
		fmt.Fprintf(opts.IO.ErrOut, "warning: %s\n", res.Warning)
	}
	return zm, res.Path, nil
}
