package detection_test

import (
	"fmt"

	"resdet/detection"
)

func ExampleAnchorGenerator_CellAnchors() {
	g := detection.DefaultAnchorGenerator()
	for _, a := range g.CellAnchors()[:3] {
		fmt.Println(a)
	}
	// Output:
	// {-91 -45 91 45}
	// {-181 -91 181 91}
	// {-362 -181 362 181}
}

// DefaultConfig is the paper's test-time detector: 600/1000 pixels, 9
// anchors, 300 proposals, RoIAlign 14x14 before res5.
func ExampleDefaultConfig() {
	cfg := detection.DefaultConfig("r101-c4", []string{"cat", "dog"})
	fmt.Println(cfg.Transform.MinSize, cfg.Transform.MaxSize, cfg.RPN.Anchors.NumAnchors(), cfg.RPN.PostNMSTopNTest,
		cfg.RoIOp.Op, cfg.RoIOp.Size, cfg.RoIHeads.ScoreThresh, cfg.RoIHeads.NMSThresh, cfg.Validate())
	// Output: 600 1000 9 300 align 14 0.05 0.5 <nil>
}
