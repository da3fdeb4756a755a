// Command detect finds objects in images with a trained Faster R-CNN; see
// `detect --help`.
package main

import (
	"os"

	"resdet/internal/cli"
)

func main() {
	os.Exit(cli.Main(NewCmdDetect(cli.System(), nil)))
}
