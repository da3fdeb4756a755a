package train

import (
	"fmt"

	"resdet/backbone"
	"resdet/detection"
	"resdet/nn"
	"resdet/optim"
)

// Config describes a training run completely; the run folder keeps it
// (run.json) so that --resume continues the same run. Iteration counts
// start at 0; iteration i trains on batch i.
type Config struct {
	// Model is the detector (architecture, classes, preprocessing, heads).
	Model detection.Config `json:"model"`
	// Norm is "frozen" (the paper's, for ImageNet-initialised backbones) or
	// "trainable" (batch statistics, for training from scratch).
	Norm string `json:"norm"`
	// FreezeAt: 2 freezes the stem and res2 (the paper's with Init), 0
	// nothing. See backbone.Config.FreezeAt.
	FreezeAt int `json:"freeze_at"`
	// Precision of the training step: "fp32" (also ""), "bf16" or "auto"
	// (bf16 where the CPU has AMX), decided by ResolvePrecision; see
	// detection.TrainBuild.Precision for what runs in bf16. The weights,
	// the optimiser's state and the checkpoints are float32 whatever it
	// is, so checkpoints move freely between precisions; a resumed run
	// keeps its precision (it is not MayChangeOnResume).
	Precision nn.Precision `json:"precision,omitempty"`
	// Init is the file the weights start from ("" for random
	// initialisation): an ImageNet ResNet (torchvision .pth or safetensors,
	// MSRA R-50.pkl / R-101.pkl in Caffe2 names) for the backbone, or a
	// detector (Detectron2 model-zoo .pkl, torchvision FasterRCNN .pth, a
	// native checkpoint) to fine-tune. ApplyInit fits the rest of the
	// configuration to it (checkpoint.ReadInit says what each file is).
	Init string `json:"init,omitempty"`
	// Targets: torchvision's (zero) or the paper's target rules.
	Targets detection.TargetOptions `json:"targets"`
	// PadMultiple pads each batch to multiples of it (0: the transform's
	// SizeDivisible).
	PadMultiple int `json:"pad_multiple,omitempty"`
	// MinSizesTrain, when set, are the shorter sides a training image is
	// resized to, one drawn per image and epoch (Detectron2's
	// MIN_SIZE_TRAIN with "choice" sampling); Model.Transform.MinSize is
	// then the test size only. Empty: every training image at
	// Model.Transform.MinSize.
	MinSizesTrain []int `json:"min_sizes_train,omitempty"`

	// Data, Format and Split name the training data (provenance, and what
	// the CLI reloads on --resume); EvalSplit the evaluation split.
	Data      string `json:"data"`
	Format    string `json:"format"`
	Split     string `json:"split"`
	ImageDir  string `json:"image_dir,omitempty"`
	EvalSplit string `json:"eval_split,omitempty"`

	Iters        int     `json:"iters"`
	Batch        int     `json:"batch"`
	BaseLR       float64 `json:"lr"`
	Steps        []int   `json:"steps"`
	Gamma        float64 `json:"gamma"`
	WarmupIters  int     `json:"warmup_iters"`
	WarmupFactor float64 `json:"warmup_factor"`
	Momentum     float32 `json:"momentum"`
	WeightDecay  float32 `json:"weight_decay"`
	FlipProb     float64 `json:"flip_prob"`
	Seed         uint64  `json:"seed"`

	// LogEvery: metrics.jsonl and the log get a line every LogEvery
	// iterations. CheckpointEvery: a checkpoint every that many (and at the
	// end); Keep: how many are kept (the latest). EvalEvery: evaluate on
	// the eval split every that many iterations (0: only at the end, when
	// an eval split is given).
	LogEvery        int `json:"log_every"`
	CheckpointEvery int `json:"checkpoint_every"`
	Keep            int `json:"keep"`
	EvalEvery       int `json:"eval_every,omitempty"`
	// MaxLoss: a total loss above it (or not finite) stops the run as
	// diverged.
	MaxLoss float64 `json:"max_loss"`
	// Workers load images (0: GOMAXPROCS); MaxGraphs bounds the step graphs
	// kept (detection.TrainerConfig). Neither changes the results.
	Workers   int `json:"workers,omitempty"`
	MaxGraphs int `json:"max_graphs,omitempty"`
}

// DefaultConfig returns torchvision/Detectron2-style defaults for arch and
// classes: frozen BN with stem and res2 frozen, 128 RoIs per image (the
// paper's), SGD momentum 0.9, weight decay 1e-4, lr 0.001 with a 100
// iteration linear warm-up, batch 1, flips with probability 0.5, seed 1.
func DefaultConfig(arch string, classes []string) Config {
	m := detection.DefaultConfig(arch, classes)
	m.RoIHeads.BatchSizePerImage = 128
	return Config{
		Model: m, Norm: "frozen", FreezeAt: 2, Format: "voc", Split: "trainval",
		Iters: 1000, Batch: 1, BaseLR: 0.001, Gamma: 0.1, WarmupIters: 100, WarmupFactor: 1.0 / 1000,
		Momentum: 0.9, WeightDecay: 1e-4, FlipProb: 0.5, Seed: 1,
		LogEvery: 20, CheckpointEvery: 5000, Keep: 3, MaxLoss: 1000,
	}
}

// Preset applies a named recipe to c: "voc07" is the paper's VOC 2007
// schedule (lr 0.001 for 60k iterations then 0.0001 for 20k, one image per
// batch, weight decay 5e-4); "coco" Detectron2's C4 1x schedule scaled to
// 2 images per batch (lr 0.0025, 720k iterations, steps at 480k and 640k,
// weight decay 1e-4, anchors 64..512). "coco-fpn" and "voc07-fpn" need an
// FPN architecture (c.Model.Arch): "coco-fpn" is Detectron2's Base-RCNN-FPN
// with the 1x schedule (configs/COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml:
// lr 0.02 at 16 images per batch, 90k iterations, steps at 60k and 80k,
// linear warm-up over 1000 iterations from factor 0.001, weight decay 1e-4,
// shorter side drawn from 640..800 in steps of 32, longer side at most 1333,
// test at 800; per level 2000 proposals before NMS, 1000 per image after it
// in training and 1000/1000 in test; 512 RoIs per image, 256 anchors) and
// "voc07-fpn" its PascalVOC-Detection/faster_rcnn_R_50_FPN.yaml (the same
// but 18k iterations with steps at 12k and 16k, warm-up 100 iterations,
// shorter side 480..800 in steps of 32). Both are scaled, as "coco" is and as
// Detectron2's auto_scale_workers scales a schedule, to 2 images per batch:
// lr x 2/16, iterations, steps and warm-up x 16/2 (coco-fpn: lr 0.0025,
// 720k iterations, steps 480k and 640k, warm-up 8000; voc07-fpn: lr 0.0025,
// 144k iterations, steps 96k and 128k, warm-up 800). Detectron2 trains its
// VOC model on VOC 2007+2012 trainval (16551 images, 17.4 epochs); on VOC
// 2007 trainval alone (5011 images) the same iterations are 57 epochs. It
// returns an error for other names, and for an FPN preset on a C4
// architecture.
func (c *Config) Preset(name string) error {
	c.WarmupIters = 100
	switch name {
	case "voc07":
		c.Iters, c.Batch, c.BaseLR, c.Steps = 80000, 1, 0.001, []int{60000}
		c.WeightDecay = optim.VOCSGDConfig().WeightDecay
	case "coco":
		c.Iters, c.Batch, c.BaseLR, c.Steps = 720000, 2, 0.0025, []int{480000, 640000}
		c.WeightDecay = optim.DefaultSGDConfig().WeightDecay
		c.Model.RPN.Anchors.Sizes = []float32{64, 128, 256, 512}
		c.Format = "coco"
	case "coco-fpn", "voc07-fpn":
		if !detection.IsFPN(c.Model.Arch) {
			return fmt.Errorf("train: preset %q is an FPN recipe, the architecture is %s (want %s)", name, c.Model.Arch, detection.ArchTVR50FPN)
		}
		// Detectron2's recipe at 16 images per batch, scaled to 2.
		const scale = 16 / 2
		iters, steps, warmup, minLo := 90000, []int{60000, 80000}, 1000, 640
		if name == "voc07-fpn" {
			iters, steps, warmup, minLo = 18000, []int{12000, 16000}, 100, 480
		} else {
			c.Format = "coco"
		}
		c.Batch, c.BaseLR = 2, 0.02/scale
		c.Iters, c.WarmupIters, c.WarmupFactor = iters*scale, warmup*scale, 1.0/1000
		c.Steps = nil
		for _, s := range steps {
			c.Steps = append(c.Steps, s*scale)
		}
		c.Gamma, c.Momentum = 0.1, 0.9
		c.WeightDecay = optim.DefaultSGDConfig().WeightDecay
		c.MinSizesTrain = nil
		for s := minLo; s <= 800; s += 32 {
			c.MinSizesTrain = append(c.MinSizesTrain, s)
		}
		c.Model.Transform.MinSize, c.Model.Transform.MaxSize = 800, 1333
		rpn := &c.Model.RPN
		rpn.PreNMSTopNTrain, rpn.PostNMSTopNTrain, rpn.PreNMSTopNTest, rpn.PostNMSTopNTest = 2000, 1000, 1000, 1000
		rpn.BatchSizePerImage = 256
		c.Model.RoIHeads.BatchSizePerImage = 512
	default:
		return fmt.Errorf("train: unknown preset %q (want voc07, coco, voc07-fpn or coco-fpn)", name)
	}
	return nil
}

// Validate returns an error naming the first field out of range.
func (c Config) Validate() error {
	if err := c.Model.Validate(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if _, err := c.norm(); err != nil {
		return err
	}
	if _, err := nn.ParsePrecision(string(c.Precision)); err != nil {
		return fmt.Errorf("train: Precision: %w", err)
	}
	bad := func(f string, v any, want string) error {
		return fmt.Errorf("train: %s = %v, want %s", f, v, want)
	}
	switch {
	case c.FreezeAt < 0 || c.FreezeAt > 4:
		return bad("FreezeAt", c.FreezeAt, "0..4")
	case c.Iters < 1:
		return bad("Iters", c.Iters, ">= 1")
	case c.Batch < 1:
		return bad("Batch", c.Batch, ">= 1")
	case c.FlipProb < 0 || c.FlipProb > 1:
		return bad("FlipProb", c.FlipProb, "in [0, 1]")
	case c.LogEvery < 1:
		return bad("LogEvery", c.LogEvery, ">= 1")
	case c.CheckpointEvery < 1:
		return bad("CheckpointEvery", c.CheckpointEvery, ">= 1")
	case c.Keep < 1:
		return bad("Keep", c.Keep, ">= 1")
	case c.EvalEvery < 0:
		return bad("EvalEvery", c.EvalEvery, ">= 0")
	case !(c.MaxLoss > 0):
		return bad("MaxLoss", c.MaxLoss, "> 0")
	case c.PadMultiple < 0:
		return bad("PadMultiple", c.PadMultiple, ">= 0")
	}
	for i, v := range c.MinSizesTrain {
		if v < 1 {
			return bad(fmt.Sprintf("MinSizesTrain[%d]", i), v, ">= 1")
		}
	}
	if err := c.schedule().Validate(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return c.sgd().Validate()
}

// ResolvePrecision decides Precision on this CPU for training
// (nn.Precision.ResolveTraining): whether the step runs in bf16, and why,
// naming the CPU's ISA and, with bf16, the oneDNN kernels. bf16 on a CPU
// without bf16 instructions is a one-line error naming its ISA. Run calls
// it before touching the run folder.
func (c Config) ResolvePrecision() (nn.PrecisionChoice, error) {
	p, err := nn.ParsePrecision(string(c.Precision))
	if err == nil {
		var ch nn.PrecisionChoice
		if ch, err = p.ResolveTraining(); err == nil {
			return ch, nil
		}
	}
	return nn.PrecisionChoice{}, fmt.Errorf("train: Precision: %w", err)
}

func (c Config) norm() (backbone.Norm, error) {
	switch c.Norm {
	case "frozen", "":
		return backbone.FrozenBN, nil
	case "trainable":
		return backbone.TrainableBN, nil
	}
	return 0, fmt.Errorf("train: Norm = %q, want frozen or trainable", c.Norm)
}

func (c Config) schedule() optim.WarmupMultiStep {
	return optim.WarmupMultiStep{BaseLR: c.BaseLR, Steps: c.Steps, Gamma: c.Gamma, WarmupIters: c.WarmupIters, WarmupFactor: c.WarmupFactor}
}

func (c Config) sgd() optim.SGDConfig {
	return optim.SGDConfig{Momentum: c.Momentum, WeightDecay: c.WeightDecay}
}
