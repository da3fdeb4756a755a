// Command gencoco writes a synthetic COCO detection-evaluation case
// (gt.json, dets.json) the size of COCO val2017, for timing eval-det
// (scripts/bench-eval.sh).
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"resdet/eval/evaltest"
	"resdet/internal/atomicfile"
)

func main() {
	out := flag.String("out", ".", "output folder")
	seed := flag.Uint64("seed", 2017, "random seed")
	images := flag.Int("images", 5000, "number of images")
	flag.Parse()
	o := evaltest.Val2017()
	o.Images = *images
	gt, dets := evaltest.COCO(rand.New(rand.NewPCG(*seed, 1)), o)
	for name, data := range map[string][]byte{"gt.json": gt, "dets.json": dets} {
		if err := atomicfile.WriteFile(filepath.Join(*out, name), data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gencoco:", err)
			os.Exit(1)
		}
	}
}
