package detection

import (
	"fmt"
	"maps"
	"slices"

	"resdet/box"
)

// Size is the size of an image in pixels.
type Size struct{ W, H int }

// RPNConfig configures the region proposal network: its anchors, its
// proposal filtering and its training targets. DefaultRPNConfig gives
// torchvision's FasterRCNN defaults.
type RPNConfig struct {
	// Anchors places the anchors; the RPN head predicts
	// Anchors.NumAnchors() objectness logits and deltas per cell.
	Anchors AnchorGenerator
	// PreNMSTopNTrain and PreNMSTopNTest bound the proposals kept by
	// objectness before NMS, per image and feature level (2000, 1000).
	PreNMSTopNTrain, PreNMSTopNTest int
	// PostNMSTopNTrain and PostNMSTopNTest bound the proposals kept after
	// NMS, per image (2000, 1000; the paper tests with 300).
	PostNMSTopNTrain, PostNMSTopNTest int
	// NMSThresh is the IoU above which NMS suppresses a proposal (0.7).
	NMSThresh float32
	// ScoreThresh drops proposals whose objectness probability is below it
	// (0: keep all; torchvision compares with >=).
	ScoreThresh float32
	// MinSize drops proposals narrower or lower than it, in pixels, after
	// clipping (1e-3, fixed in torchvision).
	MinSize float32
	// FGIoUThresh and BGIoUThresh: anchors with IoU >= FG are positive,
	// < BG negative, in between ignored (0.7, 0.3). Each ground-truth
	// box's best anchors are positive too (low-quality matches).
	FGIoUThresh, BGIoUThresh float32
	// BatchSizePerImage anchors are sampled per image for the loss (256),
	// at most PositiveFraction of them positive (0.5).
	BatchSizePerImage int
	PositiveFraction  float32
	// BoxCoderWeights weight the RPN deltas: (1, 1, 1, 1).
	BoxCoderWeights [4]float32
}

// DefaultRPNConfig returns torchvision's defaults
// (torchvision/models/detection/faster_rcnn.py) with the paper's anchors.
func DefaultRPNConfig() RPNConfig {
	return RPNConfig{
		Anchors:           DefaultAnchorGenerator(),
		PreNMSTopNTrain:   2000,
		PreNMSTopNTest:    1000,
		PostNMSTopNTrain:  2000,
		PostNMSTopNTest:   1000,
		NMSThresh:         0.7,
		ScoreThresh:       0,
		MinSize:           1e-3,
		FGIoUThresh:       0.7,
		BGIoUThresh:       0.3,
		BatchSizePerImage: 256,
		PositiveFraction:  0.5,
		BoxCoderWeights:   [4]float32{1, 1, 1, 1},
	}
}

// TopN returns the pre- and post-NMS proposal counts for training or
// inference.
func (c RPNConfig) TopN(training bool) (pre, post int) {
	if training {
		return c.PreNMSTopNTrain, c.PostNMSTopNTrain
	}
	return c.PreNMSTopNTest, c.PostNMSTopNTest
}

// BoxCoder returns the coder of the RPN deltas.
func (c RPNConfig) BoxCoder() box.BoxCoder {
	w := c.BoxCoderWeights
	return box.NewBoxCoder(w[0], w[1], w[2], w[3])
}

// Matcher returns the anchor matcher (with low-quality matches).
func (c RPNConfig) Matcher() box.Matcher {
	return box.Matcher{High: c.FGIoUThresh, Low: c.BGIoUThresh, AllowLowQualityMatches: true}
}

// Sampler returns the anchor sampler.
func (c RPNConfig) Sampler() box.Sampler {
	return box.Sampler{BatchSizePerImage: c.BatchSizePerImage, PositiveFraction: c.PositiveFraction}
}

// Validate returns an error naming the first field out of range.
func (c RPNConfig) Validate() error {
	if err := c.Anchors.Validate(); err != nil {
		return fmt.Errorf("detection: RPNConfig.Anchors: %w", err)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"PreNMSTopNTrain", c.PreNMSTopNTrain}, {"PreNMSTopNTest", c.PreNMSTopNTest},
		{"PostNMSTopNTrain", c.PostNMSTopNTrain}, {"PostNMSTopNTest", c.PostNMSTopNTest},
		{"BatchSizePerImage", c.BatchSizePerImage},
	} {
		if f.v < 1 {
			return fmt.Errorf("detection: RPNConfig.%s = %d, want >= 1", f.name, f.v)
		}
	}
	if err := checkFractions("RPNConfig", map[string]float32{
		"NMSThresh": c.NMSThresh, "ScoreThresh": c.ScoreThresh, "FGIoUThresh": c.FGIoUThresh,
		"BGIoUThresh": c.BGIoUThresh, "PositiveFraction": c.PositiveFraction,
	}); err != nil {
		return err
	}
	if c.BGIoUThresh > c.FGIoUThresh {
		return fmt.Errorf("detection: RPNConfig.BGIoUThresh = %v above FGIoUThresh = %v", c.BGIoUThresh, c.FGIoUThresh)
	}
	if !(c.MinSize >= 0) {
		return fmt.Errorf("detection: RPNConfig.MinSize = %v, want >= 0", c.MinSize)
	}
	return checkWeights("RPNConfig", c.BoxCoderWeights)
}

// RoIHeadsConfig configures the second stage: training targets of the box
// head and post-processing of its predictions. DefaultRoIHeadsConfig gives
// torchvision's FasterRCNN defaults.
type RoIHeadsConfig struct {
	// FGIoUThresh and BGIoUThresh: proposals with IoU >= FG are
	// foreground, below BG background (0.5, 0.5).
	FGIoUThresh, BGIoUThresh float32
	// BatchSizePerImage RoIs are sampled per image (512 in torchvision;
	// the paper uses 128), at most PositiveFraction foreground (0.25).
	BatchSizePerImage int
	PositiveFraction  float32
	// BoxCoderWeights weight the class-specific deltas: (10, 10, 5, 5).
	BoxCoderWeights [4]float32
	// ScoreThresh drops detections whose class probability is not above
	// it (0.05; torchvision compares with >).
	ScoreThresh float32
	// NMSThresh is the per-class NMS IoU threshold (0.5; the original code
	// used 0.3).
	NMSThresh float32
	// DetectionsPerImage bounds the detections per image (100).
	DetectionsPerImage int
	// MinSize drops detections narrower or lower than it after clipping
	// (1e-2, fixed in torchvision).
	MinSize float32
}

// DefaultRoIHeadsConfig returns torchvision's defaults
// (torchvision/models/detection/faster_rcnn.py and roi_heads.py).
func DefaultRoIHeadsConfig() RoIHeadsConfig {
	return RoIHeadsConfig{
		FGIoUThresh:        0.5,
		BGIoUThresh:        0.5,
		BatchSizePerImage:  512,
		PositiveFraction:   0.25,
		BoxCoderWeights:    [4]float32{10, 10, 5, 5},
		ScoreThresh:        0.05,
		NMSThresh:          0.5,
		DetectionsPerImage: 100,
		MinSize:            1e-2,
	}
}

// BoxCoder returns the coder of the class-specific deltas.
func (c RoIHeadsConfig) BoxCoder() box.BoxCoder {
	w := c.BoxCoderWeights
	return box.NewBoxCoder(w[0], w[1], w[2], w[3])
}

// Matcher returns the proposal matcher (no low-quality matches).
func (c RoIHeadsConfig) Matcher() box.Matcher {
	return box.Matcher{High: c.FGIoUThresh, Low: c.BGIoUThresh}
}

// Sampler returns the RoI sampler.
func (c RoIHeadsConfig) Sampler() box.Sampler {
	return box.Sampler{BatchSizePerImage: c.BatchSizePerImage, PositiveFraction: c.PositiveFraction}
}

// Validate returns an error naming the first field out of range.
func (c RoIHeadsConfig) Validate() error {
	if c.BatchSizePerImage < 1 {
		return fmt.Errorf("detection: RoIHeadsConfig.BatchSizePerImage = %d, want >= 1", c.BatchSizePerImage)
	}
	if c.DetectionsPerImage < 1 {
		return fmt.Errorf("detection: RoIHeadsConfig.DetectionsPerImage = %d, want >= 1", c.DetectionsPerImage)
	}
	if err := checkFractions("RoIHeadsConfig", map[string]float32{
		"FGIoUThresh": c.FGIoUThresh, "BGIoUThresh": c.BGIoUThresh, "PositiveFraction": c.PositiveFraction,
		"ScoreThresh": c.ScoreThresh, "NMSThresh": c.NMSThresh,
	}); err != nil {
		return err
	}
	if c.BGIoUThresh > c.FGIoUThresh {
		return fmt.Errorf("detection: RoIHeadsConfig.BGIoUThresh = %v above FGIoUThresh = %v", c.BGIoUThresh, c.FGIoUThresh)
	}
	if !(c.MinSize >= 0) {
		return fmt.Errorf("detection: RoIHeadsConfig.MinSize = %v, want >= 0", c.MinSize)
	}
	return checkWeights("RoIHeadsConfig", c.BoxCoderWeights)
}

func checkFractions(cfg string, fields map[string]float32) error {
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if v := fields[name]; !(v >= 0 && v <= 1) {
			return fmt.Errorf("detection: %s.%s = %v, want in [0, 1]", cfg, name, v)
		}
	}
	return nil
}

func checkWeights(cfg string, w [4]float32) error {
	for i, v := range w {
		if !(v > 0) {
			return fmt.Errorf("detection: %s.BoxCoderWeights[%d] = %v, want > 0", cfg, i, v)
		}
	}
	return nil
}
