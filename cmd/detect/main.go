// Command detect finds objects in images with a trained Faster R-CNN; see
// `detect --help`.
package main

import (
	"os"

	"resdet/internal/cli"
)

func main() {
	if isBeamWorker(os.Args[1:]) {
		os.Exit(runBeamWorker(os.Args[1:]))
	}
	os.Exit(cli.Main(NewCmdDetect(cli.System(), nil)))
}
