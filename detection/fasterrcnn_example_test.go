package detection_test

import (
	"fmt"

	"resdet/detection"
	"resdet/weights"
)

// FromTorchvision maps the state_dict names of torchvision's FasterRCNN
// (issue 6's C4 construction) to the detector's: the trunk's nn.Sequential
// indices to ResNet names, the box head's layer4 into the backbone.
func ExampleFromTorchvision() {
	t := weights.Tensor{Shape: []int{1}, Data: []float32{0}}
	s := weights.State{
		"backbone.0.weight":                        t, // conv1
		"backbone.1.running_mean":                  t, // bn1
		"backbone.6.22.conv3.weight":               t, // layer3 (ResNet-101)
		"roi_heads.box_head.0.0.conv1.weight":      t, // layer4 inside nn.Sequential(layer4, mean)
		"rpn.head.conv.0.0.weight":                 t,
		"roi_heads.box_predictor.cls_score.weight": {Shape: []int{21, 2048}, Data: make([]float32, 21*2048)},
	}
	native, k, err := detection.FromTorchvision(s)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("classes:", k)
	for _, name := range native.Names() {
		fmt.Println(name)
	}
	// Output:
	// classes: 20
	// backbone.bn1.running_mean
	// backbone.conv1.weight
	// backbone.layer3.22.conv3.weight
	// backbone.layer4.0.conv1.weight
	// roi_heads.box_predictor.cls_score.weight
	// rpn.head.conv.weight
}

// DefaultConfig is the paper's test-time detector: 600/1000 pixels, 9
// anchors, 300 proposals, RoIAlign 14x14 before res5.
func ExampleDefaultConfig() {
	cfg := detection.DefaultConfig("r101-c4", []string{"cat", "dog"})
	fmt.Println(cfg.Transform.MinSize, cfg.Transform.MaxSize, cfg.RPN.Anchors.NumAnchors(), cfg.RPN.PostNMSTopNTest,
		cfg.RoIOp.Op, cfg.RoIOp.Size, cfg.RoIHeads.ScoreThresh, cfg.RoIHeads.NMSThresh, cfg.Validate())
	// Output: 600 1000 9 300 align 14 0.05 0.5 <nil>
}
