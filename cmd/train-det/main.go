// Command train-det trains detectors and prepares their data; see
// `train-det --help`.
package main

import (
	"os"

	"resdet/internal/cli"
)

func main() {
	os.Exit(cli.Main(NewCmdRoot(cli.System())))
}
