package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig: size check before decoding
	_ "image/png"
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

	"resdet/checkpoint"
	"resdet/datasets"
	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/format/classlist"
	"resdet/internal/cli"
	"resdet/nn"
	"resdet/train"
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

// imageResult is one image's output.
type imageResult struct {
	Image      string          `json:"image"`
	Width      int             `json:"width"`
	Height     int             `json:"height"`
	Detections []detectionJSON `json:"detections"`
}

type detectionJSON struct {
	Label   string `json:"label"`
	ClassID int    `json:"class_id"`
	// CategoryID is the COCO category id of a COCO model's class.
	CategoryID int        `json:"category_id,omitempty"`
	Score      float32    `json:"score"`
	Box        [4]float32 `json:"box"`
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
	var coco *cocoOut
	if opts.COCOResults != "" {
		if coco, err = newCOCOOut(opts.COCOGT, cfg.Classes); err != nil {
			return err
		}
	}
	if opts.OutDir != "" {
		if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	tr := imageio.Transform{Preprocess: imageio.Preprocess(cfg.Transform.Preprocess), MinSize: cfg.Transform.MinSize,
		MaxSize: cfg.Transform.MaxSize, Norm: imageio.Normalization(cfg.Transform.Norm)}

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
		res, prep, net, err := detectOne(m, tr, j.path, opts.MaxPixels)
		prepTime += prep
		netTime += net
		if err == nil && coco != nil {
			err = coco.add(j, res)
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
		if err := coco.write(opts.COCOResults); err != nil {
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

// loadDetector builds the detector --weights names, with the overrides of
// the flags.
func loadDetector(opts *DetectOptions) (*detection.FasterRCNN, error) {
	var m *detection.FasterRCNN
	weightsFile, arch := opts.Weights, opts.Arch
	var classes []string
	classSpec := opts.Classes // --classes, else the zoo model's dataset
	if weightsFile == "" {
		zm, path, err := modelFile(opts)
		if err != nil {
			return nil, err
		}
		weightsFile = path
		if arch == "" {
			arch = zm.Arch
		}
		switch zm.Dataset {
		case zoo.COCO:
			classes = datasets.COCOClasses()
		case zoo.VOC:
			classes = datasets.VOCClasses()
		}
		if classSpec == "" && classes != nil {
			classSpec = string(zm.Dataset)
		}
	}
	ext := strings.ToLower(filepath.Ext(weightsFile))
	if ext == ".pkl" {
		var err error
		if opts.Classes != "" {
			if classes, err = classNames(opts.Classes); err != nil {
				return nil, err
			}
		}
		cfg, state, err := checkpoint.Detectron2Model(weightsFile, arch, classes)
		if err != nil {
			return nil, err
		}
		applyFlags(&cfg, opts)
		if m, err = detection.New(cfg, detection.Options{Precision: opts.Precision}); err != nil {
			return nil, err
		}
		if err := m.Load(state); err != nil {
			return nil, fmt.Errorf("%s: %w", weightsFile, err)
		}
	} else if ext == ".pth" || ext == ".pt" {
		if arch == "" {
			arch = "r101-c4"
		}
		if _, err := detection.ArchDepth(arch); err != nil {
			return nil, cli.Usagef("--arch: %v", err)
		}
		cfg := detection.DefaultConfig(arch, nil)
		applyFlags(&cfg, opts)
		var err error
		if m, err = checkpoint.LoadTorchvision(weightsFile, cfg, detection.Options{Precision: opts.Precision}); err != nil {
			return nil, err
		}
	} else {
		file, _, err := train.ResolveWeights(opts.Weights)
		if err != nil {
			return nil, fmt.Errorf("--weights: %w", err)
		}
		cfg, state, err := checkpoint.Read(file)
		if err != nil {
			return nil, err
		}
		if opts.Arch != "" && opts.Arch != cfg.Arch {
			return nil, fmt.Errorf("%s holds an %s detector, --arch says %s", file, cfg.Arch, opts.Arch)
		}
		applyFlags(&cfg, opts)
		if m, err = detection.New(cfg, detection.Options{Precision: opts.Precision}); err != nil {
			return nil, err
		}
		if err := m.Load(state); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	if classSpec != "" {
		k := len(m.Config.Classes)
		names, err := classNames(classSpec)
		if err != nil {
			return nil, err
		}
		if classSpec == "coco" && k == 90 {
			names = datasets.COCOClassesByID() // torchvision's 91 outputs: class j is COCO id j
		}
		if len(names) != k {
			return nil, fmt.Errorf("--classes %s gives %d names, the weights have %d classes", classSpec, len(names), k)
		}
		m.Config.Classes = names
	}
	if opts.RoIOp != "" && opts.RoIOp != m.Config.RoIOp.Op {
		c := m.Config.RoIOp
		c.Op = opts.RoIOp
		if err := m.SetRoIOp(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// runnable returns nil if detect can run the registry's model m with
// --model, else why not: Detectron2's detectors (C4, DC5, FPN) run, the
// ImageNet backbones are not detectors; torchvision's FPN detectors run
// (their 91 COCO outputs named by COCO id, datasets.COCOClassesByID).
func runnable(m zoo.Model) error {
	switch {
	case m.Dataset == zoo.ImageNet || m.Format == zoo.FormatCaffe2:
		return fmt.Errorf("a %s %s backbone (%s), not a detector", m.Construction, m.Dataset, m.Arch)
	case m.Format == zoo.FormatTorchvision && !detection.IsFPN(m.Arch):
		return fmt.Errorf("a %s %s model, which detect cannot run by name (only torchvision's FPN detectors)", m.Construction, m.Arch)
	case m.Format != zoo.FormatDetectron2 && m.Format != zoo.FormatTorchvision:
		return fmt.Errorf("a %s model of format %s, which detect cannot read", m.Construction, m.Format)
	}
	return nil
}

// applyFlags sets the configuration the flags override, before the
// detector is built from it: --score-thresh (torchvision's
// box_score_thresh: scores above it are kept), --min-size and --max-size.
func applyFlags(cfg *detection.Config, opts *DetectOptions) {
	cfg.RoIHeads.ScoreThresh = float32(opts.ScoreThresh)
	if opts.MinSize > 0 {
		cfg.Transform.MinSize = opts.MinSize
	}
	if opts.MaxSize > 0 {
		cfg.Transform.MaxSize = opts.MaxSize
	}
}

// classNames returns the names --classes gives: voc, coco, or a list as
// format/classlist reads it.
func classNames(spec string) ([]string, error) {
	names, err := classlist.Resolve(spec, map[string][]string{"voc": datasets.VOCClasses(), "coco": datasets.COCOClasses()})
	if err != nil {
		return nil, fmt.Errorf("--classes: %w", err)
	}
	return names, nil
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

// detectOne reads, transforms and runs one image.
func detectOne(m *detection.FasterRCNN, tr imageio.Transform, path string, maxMP float64) (res imageResult, prep, net time.Duration, err error) {
	t0 := time.Now()
	if err := checkSize(path, maxMP); err != nil {
		return res, 0, 0, err
	}
	s, err := tr.Load(path, nil, false)
	if err != nil {
		return res, time.Since(t0), 0, err
	}
	t1 := time.Now()
	det, err := m.Predict(detection.Image{Data: s.Image.Data, W: s.Image.W, H: s.Image.H, OrigW: s.OrigW, OrigH: s.OrigH})
	net = time.Since(t1)
	if err != nil {
		return res, t1.Sub(t0), net, err
	}
	res = imageResult{Image: path, Width: s.OrigW, Height: s.OrigH, Detections: make([]detectionJSON, det.Len())}
	cocoIDs := cocoCategoryIDs(m.Config.Classes)
	for i := range det.Boxes {
		b, l := det.Boxes[i], det.Labels[i]
		res.Detections[i] = detectionJSON{Label: m.Config.Classes[l-1], ClassID: l, Score: det.Scores[i], Box: [4]float32{b.X1, b.Y1, b.X2, b.Y2}}
		if cocoIDs != nil {
			res.Detections[i].CategoryID = cocoIDs[l-1]
		}
	}
	return res, t1.Sub(t0), net, nil
}

// checkSize refuses images above maxMP megapixels before decoding them
// (the header is enough). Files whose header Go cannot read are left to
// the decoder, which names the problem.
func checkSize(path string, maxMP float64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		return fmt.Errorf("empty file")
	}
	c, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil
	}
	if mp := float64(c.Width) * float64(c.Height) / 1e6; mp > maxMP {
		return fmt.Errorf("image is %dx%d (%.1f megapixels), above the --max-pixels cap of %g", c.Width, c.Height, mp, maxMP)
	}
	return nil
}

// writeResult prints one image's detections: a table, or a JSON line.
func writeResult(w io.Writer, r imageResult, asJSON bool) error {
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
func drawResult(dir, src string, r imageResult, written map[string]int) error {
	base := filepath.Base(src)
	written[base]++
	if n := written[base]; n > 1 {
		ext := filepath.Ext(base)
		base = strings.TrimSuffix(base, ext) + "_" + strconv.Itoa(n) + ext
	}
	anns := make([]imageio.Annotation, len(r.Detections))
	for i, d := range r.Detections {
		anns[i] = imageio.Annotation{Box: boxOf(d.Box), Label: d.ClassID, Text: d.Label, Score: d.Score, HasScore: true}
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
	if err := runnable(zm); err != nil {
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

// isCOCO reports whether classes are COCO's 80 categories in order (so
// that class j has the COCO category id datasets.COCOCategoryIDs()[j-1]).
func isCOCO(classes []string) bool { return slices.Equal(classes, datasets.COCOClasses()) }

// cocoCategoryIDs returns the COCO category id of each class (index j-1
// for class j) when classes are COCO's: the 80 categories in order
// (Detectron2's models, --classes coco) or the 90 ids 1..90 of
// torchvision's COCO models (datasets.COCOClassesByID), where the ten
// datasets.COCONoCategory classes get 0 (no category). Otherwise nil.
func cocoCategoryIDs(classes []string) []int {
	if isCOCO(classes) {
		return datasets.COCOCategoryIDs()
	}
	if !slices.Equal(classes, datasets.COCOClassesByID()) {
		return nil
	}
	ids := make([]int, len(classes))
	for i, n := range classes {
		if n != datasets.COCONoCategory {
			ids[i] = i + 1
		}
	}
	return ids
}
