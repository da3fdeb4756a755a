package detection

import (
	"strings"
	"testing"
)

func TestDefaultConfigs(t *testing.T) {
	rpn := DefaultRPNConfig()
	if err := rpn.Validate(); err != nil {
		t.Fatalf("DefaultRPNConfig: %v", err)
	}
	roi := DefaultRoIHeadsConfig()
	if err := roi.Validate(); err != nil {
		t.Fatalf("DefaultRoIHeadsConfig: %v", err)
	}
	// torchvision/models/detection/faster_rcnn.py defaults.
	checks := []struct {
		name      string
		got, want any
	}{
		{"rpn pre-NMS train/test", [2]int{rpn.PreNMSTopNTrain, rpn.PreNMSTopNTest}, [2]int{2000, 1000}},
		{"rpn post-NMS train/test", [2]int{rpn.PostNMSTopNTrain, rpn.PostNMSTopNTest}, [2]int{2000, 1000}},
		{"rpn NMS", rpn.NMSThresh, float32(0.7)},
		{"rpn IoU fg/bg", [2]float32{rpn.FGIoUThresh, rpn.BGIoUThresh}, [2]float32{0.7, 0.3}},
		{"rpn sampler", rpn.Sampler().BatchSizePerImage*10 + int(rpn.Sampler().PositiveFraction*10), 256*10 + 5},
		{"rpn matcher low quality", rpn.Matcher().AllowLowQualityMatches, true},
		{"rpn weights", rpn.BoxCoder().Weights, [4]float32{1, 1, 1, 1}},
		{"rpn anchors", rpn.Anchors.NumAnchors(), 9},
		{"roi score/nms/dets", [3]float32{roi.ScoreThresh, roi.NMSThresh, float32(roi.DetectionsPerImage)}, [3]float32{0.05, 0.5, 100}},
		{"roi IoU fg/bg", [2]float32{roi.FGIoUThresh, roi.BGIoUThresh}, [2]float32{0.5, 0.5}},
		{"roi sampler", [2]float32{float32(roi.BatchSizePerImage), roi.PositiveFraction}, [2]float32{512, 0.25}},
		{"roi matcher low quality", roi.Matcher().AllowLowQualityMatches, false},
		{"roi weights", roi.BoxCoder().Weights, [4]float32{10, 10, 5, 5}},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if pre, post := rpn.TopN(true); pre != 2000 || post != 2000 {
		t.Errorf("TopN(training) = %d, %d", pre, post)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*RPNConfig, *RoIHeadsConfig)
		want string
	}{
		{"rpn NMS above 1", func(r *RPNConfig, _ *RoIHeadsConfig) { r.NMSThresh = 1.5 }, "RPNConfig.NMSThresh"},
		{"rpn bg above fg", func(r *RPNConfig, _ *RoIHeadsConfig) { r.BGIoUThresh = 0.8 }, "RPNConfig.BGIoUThresh"},
		{"rpn zero post-NMS", func(r *RPNConfig, _ *RoIHeadsConfig) { r.PostNMSTopNTest = 0 }, "RPNConfig.PostNMSTopNTest"},
		{"rpn no anchors", func(r *RPNConfig, _ *RoIHeadsConfig) { r.Anchors.Sizes = nil }, "RPNConfig.Anchors"},
		{"rpn zero weight", func(r *RPNConfig, _ *RoIHeadsConfig) { r.BoxCoderWeights[2] = 0 }, "RPNConfig.BoxCoderWeights[2]"},
		{"roi no detections", func(_ *RPNConfig, h *RoIHeadsConfig) { h.DetectionsPerImage = 0 }, "RoIHeadsConfig.DetectionsPerImage"},
		{"roi negative score", func(_ *RPNConfig, h *RoIHeadsConfig) { h.ScoreThresh = -1 }, "RoIHeadsConfig.ScoreThresh"},
		{"roi NaN min size", func(_ *RPNConfig, h *RoIHeadsConfig) { h.MinSize = float32(nan()) }, "RoIHeadsConfig.MinSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h := DefaultRPNConfig(), DefaultRoIHeadsConfig()
			tt.edit(&r, &h)
			err := r.Validate()
			if err == nil {
				err = h.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to name %s", err, tt.want)
			}
		})
	}
}

func nan() float64 { var z float64; return z / z }
