package checkpoint_test

import (
	"fmt"

	"resdet/checkpoint"
	"resdet/weights"
)

// FromTorchvision maps the state_dict names of torchvision's FasterRCNN
// (the C4 construction) to the detector's: the trunk's nn.Sequential
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
	native, k, err := checkpoint.FromTorchvision(s)
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
