package train

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"resdet/checkpoint"
	"resdet/datasets/imageio"
	"resdet/detection"
	"resdet/zoo"
)

// InitChoices says which settings of a run were chosen explicitly (flags)
// rather than left to their defaults: ApplyInit keeps or checks the chosen
// ones against the Init file and sets the others from it.
type InitChoices struct {
	// Arch: Config.Model.Arch was chosen; a file of another architecture
	// is an error (else the file's depth, or detector, wins).
	Arch bool
	// FreezeAt and Norm: chosen; else the publisher's (PublisherDefaults).
	FreezeAt, Norm bool
	// Model, if set, applies the model settings chosen explicitly (image
	// sizes, RoIs per image, proposals...) to a detector's configuration
	// read from the file, which replaces Config.Model.
	Model func(*detection.Config)
}

// PublisherDefaults returns how the publisher of an initialisation file
// trains from it: the frozen stages (Config.FreezeAt) and the batch norm
// (Config.Norm). Every publisher freezes the stem and res2 and freezes
// the batch norms:
//
//   - Detectron2 (its model-zoo detectors and the MSRA ImageNet ResNets
//     its configs start from): MODEL.BACKBONE.FREEZE_AT 2 and
//     MODEL.RESNETS.NORM "FrozenBN" (detectron2/config/defaults.py);
//   - torchvision: fasterrcnn_resnet50_fpn trains trainable_backbone_layers
//     = 3 of layer4..conv1 (layer4, layer3, layer2: conv1 and layer1 frozen)
//     with FrozenBatchNorm2d when starting from weights;
//   - ours (native checkpoints): the paper's, the same.
func PublisherDefaults(p checkpoint.Publisher) (freezeAt int, norm string) {
	_ = p // the same for every publisher today; the question is asked per file
	return 2, "frozen"
}

// ApplyInit fits cfg to its initialisation file cfg.Init
// (checkpoint.ReadInit) and returns the result with the lines to log;
// without Init it returns cfg unchanged. It reads the whole file, so a bad
// file fails here, before training, with an error naming it.
//
//   - The architecture: a backbone file sets the depth (and ResNeXt's "x")
//     of Config.Model.Arch, keeping C4 or DC5; a detector file sets the
//     whole architecture. When given.Arch is set, a difference is an error
//     naming the file and the tensor.
//   - A backbone file sets the ResNet's widths and groups; an MSRA file
//     (Caffe2 names) also puts the stride in the 1x1 convolutions and sets
//     Detectron2's input: BGR 0..255 minus its mean, std 1, its resize
//     (Transform.Preprocess "detectron2").
//   - A detector file's configuration replaces Config.Model, with the run's
//     classes and RoIs per image, then given.Model; its predictor is in
//     torchvision's layout (background first) whatever the publisher's.
//   - FreezeAt and Norm follow PublisherDefaults unless given.
//
// The log lines say what the file is, what was chosen from it and how the
// predictor is carried over (checkpoint.FitPredictor).
func ApplyInit(cfg Config, given InitChoices) (Config, []string, error) {
	if cfg.Init == "" {
		return cfg, nil, nil
	}
	in, err := checkpoint.ReadInit(cfg.Init)
	if err != nil {
		return cfg, nil, fmt.Errorf("train: --init: %w", err)
	}
	arch, err := in.FitArch(cfg.Model.Arch, given.Arch)
	if err != nil {
		return cfg, nil, fmt.Errorf("train: --init: %w", err)
	}
	freeze, norm := PublisherDefaults(in.Publisher)
	if !given.FreezeAt {
		cfg.FreezeAt = freeze
	}
	if !given.Norm {
		cfg.Norm = norm
	}
	var note string
	if in.Detector {
		m := in.Config
		m.Classes = append([]string(nil), cfg.Model.Classes...)
		m.RoIHeads.BatchSizePerImage = cfg.Model.RoIHeads.BatchSizePerImage
		if given.Model != nil {
			given.Model(&m)
		}
		cfg.Model = m
		parts := "backbone, RPN and box head"
		if detection.IsFPN(m.Arch) {
			parts = "backbone, FPN, RPN and box head"
		}
		note = fmt.Sprintf("init %s: %s: %s loaded; %s", cfg.Init, in.Describe(), parts, checkpoint.FitPredictor(in.Classes, m.Classes))
	} else {
		cfg.Model.Arch = arch
		rc := in.ResNet
		if detection.IsFPN(arch) && rc != (detection.ResNetConfig{}) {
			return cfg, nil, fmt.Errorf("train: --init %s: %s is built on torchvision's ResNet-50, but the file's ResNet is not (%+v: %s)", cfg.Init, arch, rc, in.Describe())
		}
		rc.Res5Dilation = cfg.Model.ResNet.Res5Dilation
		cfg.Model.ResNet = rc
		note = fmt.Sprintf("init %s: %s loaded into the %s backbone", cfg.Init, in.Describe(), arch)
		if in.Publisher == checkpoint.PublisherMSRA {
			cfg.Model.Transform.Norm = detection.Normalization(imageio.Detectron2Norm())
			cfg.Model.Transform.Preprocess = string(imageio.Detectron2)
			note += "; chosen to match it: stride in the 1x1 convolutions, input BGR 0..255 minus Detectron2's mean (std 1) with Detectron2's resize"
		}
	}
	note += fmt.Sprintf("; %s BN, %s (%s)", cfg.Norm, frozenStages(cfg.FreezeAt), freezeWhy(in.Publisher, given))
	if err := cfg.Validate(); err != nil {
		return cfg, nil, fmt.Errorf("train: --init %s: %w", cfg.Init, err)
	}
	return cfg, []string{note}, nil
}

// frozenStages says what FreezeAt freezes, for the log line.
func frozenStages(at int) string {
	switch at {
	case 0:
		return "nothing frozen"
	case 1:
		return "stem frozen"
	case 2:
		return "stem and res2 frozen"
	}
	return fmt.Sprintf("stem and res2..res%d frozen", at)
}

// freezeWhy says where FreezeAt and Norm came from, for the log line.
func freezeWhy(p checkpoint.Publisher, given InitChoices) string {
	var chosen []string
	if given.Norm {
		chosen = append(chosen, "--norm")
	}
	if given.FreezeAt {
		chosen = append(chosen, "--freeze-at")
	}
	if len(chosen) == 2 {
		return "as chosen"
	}
	who := map[checkpoint.Publisher]string{checkpoint.PublisherDetectron2: "Detectron2", checkpoint.PublisherMSRA: "Detectron2",
		checkpoint.PublisherTorchvision: "torchvision", checkpoint.PublisherResdet: "the paper"}[p]
	s := "as " + who + " trains"
	if len(chosen) > 0 {
		s += ", " + strings.Join(chosen, " ") + " as chosen"
	}
	return s
}

// loadInit loads Config.Init into m, built for a configuration ApplyInit
// returned: a backbone file into the backbone (an MSRA file mapped as
// Detectron2 maps it), a detector file into every part, its predictor
// carried over to the run's classes by checkpoint.FitPredictor (m's own
// initialisation when re-initialised).
func loadInit(m *detection.FasterRCNN, cfg Config) error {
	in, err := checkpoint.ReadInit(cfg.Init)
	if err != nil {
		return fmt.Errorf("train: init: %w", err)
	}
	if in.Detector {
		fit := checkpoint.FitPredictor(in.Classes, cfg.Model.Classes)
		s, err := fit.Apply(in.State(), m.State())
		if err != nil {
			return fmt.Errorf("train: init %s: %w", cfg.Init, err)
		}
		if err := m.Load(s); err != nil {
			return fmt.Errorf("train: init %s: %w", cfg.Init, err)
		}
		return nil
	}
	bb := m.Backbone.State()
	shapes := make(map[string][]int, len(bb))
	for n, t := range bb {
		shapes[n] = t.Shape
	}
	s, err := in.BackboneState(shapes)
	if err != nil {
		return fmt.Errorf("train: init: %w", err)
	}
	if err := m.Backbone.Load(s); err != nil {
		return fmt.Errorf("train: init %s: %w", cfg.Init, err)
	}
	return nil
}

// InitFile returns the file an --init value names: the value itself when
// it is a file, else the cached file of the published model of that name
// (zoo.Lookup, e.g. "d2-r101-c4-3x" or "d2-r101-imagenet"), downloaded
// into cache first when absent (progress as zoo.Cache.Fetch's) unless
// cachedOnly is set (the processes of a data-parallel run other than rank 0,
// which must not download the same file at once): then an absent file is an
// error saying how to fetch it. A value that is neither is an error naming
// it; without network, the error names the URL and the path to put the
// file at.
func InitFile(ctx context.Context, spec string, cache *zoo.Cache, cachedOnly bool, progress func(done, total int64)) (string, error) {
	if _, err := os.Stat(spec); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return spec, nil
	}
	m, err := zoo.Lookup(spec)
	if err != nil {
		return "", fmt.Errorf("train: --init %s: no such file, and %w", spec, err)
	}
	if cachedOnly {
		path, _, ok := cache.Cached(m)
		if !ok {
			return "", fmt.Errorf("train: --init %s: not in the model cache (%s); with several processes, fetch it first: detect models download %s --cache %s", spec, path, spec, cache.Dir)
		}
		return path, nil
	}
	res, err := cache.Fetch(ctx, m, progress)
	if err != nil {
		return "", fmt.Errorf("train: --init %s: %w", spec, err)
	}
	return res.Path, nil
}
