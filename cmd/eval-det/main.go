// Command eval-det evaluates detections against ground truth with COCO's
// box metrics (pycocotools' numbers) or PASCAL VOC AP (the devkit's
// numbers). See NewCmdEvalDet.
package main

import (
	"fmt"
	"os"

	"resdet/internal/cli"
)

func main() {
	ios := cli.System()
	if err := NewCmdEvalDet(ios, nil).Execute(); err != nil {
		fmt.Fprintln(ios.ErrOut, "eval-det:", err)
		os.Exit(1)
	}
}
