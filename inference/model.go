package inference

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"resdet/checkpoint"
	"resdet/datasets"
	"resdet/detection"
	"resdet/format/classlist"
	"resdet/internal/cli"
	"resdet/nn"
	"resdet/train"
	"resdet/zoo"
)

// ModelOptions name a detector and the settings the detect flags override.
// The fields are plain values (JSON-encodable: `detect batch` ships them
// to its workers).
type ModelOptions struct {
	Weights     string       // native checkpoint (.safetensors), run or checkpoint folder, torchvision .pth/.pt or Detectron2 .pkl; "" = Model
	Model       string       // zoo model name used when Weights is ""; "" = zoo.DefaultName
	Cache       string       // model cache folder; "" = zoo.DefaultDir()
	Arch        string       // construction of a .pth (r101-c4, r50-c4, ...); "" = r101-c4, or the checkpoint's
	RoIOp       string       // "align" or "pool"; "" = the checkpoint's (align for a .pth)
	Classes     string       // "voc", "coco" or a file with one name a line; "" = checkpoint's, else class1..classK
	ScoreThresh float64      // detections scoring at or below it are dropped, in [0, 1]
	MinSize     int          // shorter side after resizing, px; 0 = checkpoint's (600 for a .pth)
	MaxSize     int          // cap on the longer side after resizing, px; 0 = checkpoint's (1000 for a .pth)
	Precision   nn.Precision // fp32, bf16 or auto (bf16 with AMX); "" = fp32
}

// ZooFile returns the zoo model called name and the path of its file in
// the cache (downloading it when needed).
type ZooFile func(name string) (zoo.Model, string, error)

// FetchZoo returns a ZooFile that looks name up in the registry and
// fetches the file into cache ("" = zoo.DefaultDir()) without drawing
// progress: what a worker without a terminal uses.
func FetchZoo(ctx context.Context, cache string) ZooFile {
	return func(name string) (zoo.Model, string, error) {
		if name == "" {
			name = zoo.DefaultName
		}
		zm, err := zoo.Lookup(name)
		if err != nil {
			return zoo.Model{}, "", fmt.Errorf("--model: %w", err)
		}
		c, err := zoo.NewCache(cache)
		if err != nil {
			return zoo.Model{}, "", err
		}
		res, err := c.Fetch(ctx, zm, nil)
		if err != nil {
			if zoo.IsOffline(err) {
				return zoo.Model{}, "", fmt.Errorf("%w (no network: put %s at %s, or pass --weights FILE)", err, c.URL(zm), c.Path(zm))
			}
			return zoo.Model{}, "", err
		}
		return zm, res.Path, nil
	}
}

// Load builds the detector o names, with o's overrides applied. When
// o.Weights is "", zooFile resolves o.Model (Runnable says which zoo
// models run); without o.Classes, a zoo model's classes are its dataset's
// (torchvision's 91 COCO outputs named by COCO id,
// datasets.COCOClassesByID).
func Load(o ModelOptions, zooFile ZooFile) (*detection.FasterRCNN, error) {
	var m *detection.FasterRCNN
	weightsFile, arch := o.Weights, o.Arch
	var classes []string
	classSpec := o.Classes // --classes, else the zoo model's dataset
	if weightsFile == "" {
		zm, path, err := zooFile(o.Model)
		if err != nil {
			return nil, err
		}
		if err := Runnable(zm); err != nil {
			return nil, fmt.Errorf("--model %s: %w", zm.Name, err)
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
		if o.Classes != "" {
			if classes, err = ClassNames(o.Classes); err != nil {
				return nil, err
			}
		}
		cfg, state, err := checkpoint.Detectron2Model(weightsFile, arch, classes)
		if err != nil {
			return nil, err
		}
		o.apply(&cfg)
		if m, err = detection.New(cfg, detection.Options{Precision: o.Precision}); err != nil {
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
		o.apply(&cfg)
		var err error
		if m, err = checkpoint.LoadTorchvision(weightsFile, cfg, detection.Options{Precision: o.Precision}); err != nil {
			return nil, err
		}
	} else {
		file, _, err := train.ResolveWeights(o.Weights)
		if err != nil {
			return nil, fmt.Errorf("--weights: %w", err)
		}
		cfg, state, err := checkpoint.Read(file)
		if err != nil {
			return nil, err
		}
		if o.Arch != "" && o.Arch != cfg.Arch {
			return nil, fmt.Errorf("%s holds an %s detector, --arch says %s", file, cfg.Arch, o.Arch)
		}
		o.apply(&cfg)
		if m, err = detection.New(cfg, detection.Options{Precision: o.Precision}); err != nil {
			return nil, err
		}
		if err := m.Load(state); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	if classSpec != "" {
		k := len(m.Config.Classes)
		names, err := ClassNames(classSpec)
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
	if o.RoIOp != "" && o.RoIOp != m.Config.RoIOp.Op {
		c := m.Config.RoIOp
		c.Op = o.RoIOp
		if err := m.SetRoIOp(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Runnable returns nil if detect can run the registry's model m by name,
// else why not: Detectron2's detectors (C4, DC5, FPN) run, the ImageNet
// backbones are not detectors; torchvision's FPN detectors run (their 91
// COCO outputs named by COCO id, datasets.COCOClassesByID).
func Runnable(m zoo.Model) error {
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

// apply sets the configuration the flags override, before the detector
// is built from it: --score-thresh (torchvision's box_score_thresh:
// scores above it are kept), --min-size and --max-size.
func (o ModelOptions) apply(cfg *detection.Config) {
	cfg.RoIHeads.ScoreThresh = float32(o.ScoreThresh)
	if o.MinSize > 0 {
		cfg.Transform.MinSize = o.MinSize
	}
	if o.MaxSize > 0 {
		cfg.Transform.MaxSize = o.MaxSize
	}
}

// ClassNames returns the names --classes gives: voc, coco, or a list as
// format/classlist reads it.
func ClassNames(spec string) ([]string, error) {
	names, err := classlist.Resolve(spec, map[string][]string{"voc": datasets.VOCClasses(), "coco": datasets.COCOClasses()})
	if err != nil {
		return nil, fmt.Errorf("--classes: %w", err)
	}
	return names, nil
}
