package detection_test

import (
	"fmt"
	"math/rand"

	"resdet/box"
	"resdet/detection"
)

// The training targets of one image: anchors matched to the ground truth
// and sampled for the RPN loss, then the proposals (with the ground truth
// appended) matched and sampled for the box-head loss.
func ExampleRPNConfig_SampleRPNBatch() {
	rpn := detection.DefaultRPNConfig()
	img := detection.Size{W: 256, H: 192}
	anchors := rpn.Anchors.Anchors(12, 16, 16, 16) // a 12x16 feature map at stride 16
	gt := []box.Box{{X1: 56, Y1: 40, X2: 186, Y2: 168}}
	r := rand.New(rand.NewSource(1))
	batch, err := rpn.SampleRPNBatch(anchors, [][]box.Box{gt}, []detection.Size{img}, detection.TargetOptions{}, r)
	if err != nil {
		fmt.Println(err)
		return
	}
	s := batch[0]
	fmt.Printf("%d anchors, %d positive and %d negative sampled\n", len(anchors), len(s.Pos), len(s.Neg))
	for _, i := range s.Pos {
		fmt.Printf("anchor %d %v: IoU %.3f, delta %.3f\n", i, anchors[i], anchors[i].IoU(gt[0]), s.Targets.Deltas[i])
	}

	heads := detection.DefaultRoIHeadsConfig()
	proposals := []box.Box{{X1: 60, Y1: 50, X2: 180, Y2: 170}, {X1: 0, Y1: 0, X2: 90, Y2: 90}}
	rois, err := heads.SelectTrainingSamples([][]box.Box{proposals}, [][]box.Box{gt}, [][]int{{7}}, detection.TargetOptions{}, r)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, b := range rois[0].RoIs {
		fmt.Printf("RoI %v: label %d\n", b, rois[0].Labels[i])
	}
	// Output:
	// 1728 anchors, 4 positive and 252 negative sampled
	// anchor 930 {48 32 176 160}: IoU 0.773, delta [0.070 0.062 0.016 0.000]
	// anchor 939 {64 32 192 160}: IoU 0.796, delta [-0.055 0.062 0.016 0.000]
	// anchor 1074 {48 48 176 176}: IoU 0.773, delta [0.070 -0.062 0.016 0.000]
	// anchor 1083 {64 48 192 176}: IoU 0.796, delta [-0.055 -0.062 0.016 0.000]
	// RoI {60 50 180 170}: label 7
	// RoI {0 0 90 90}: label 0
	// RoI {56 40 186 168}: label 7
}
