package imageio

import (
	"fmt"
	"math/rand/v2"

	"resdet/box"
	"resdet/datasets"
)

// Example is one image ready for the detector: the transformed sample, the
// labels and difficult flags of its boxes, and the record it came from.
type Example struct {
	Sample
	Labels    []int  // Labels[j] is the class of Sample.Boxes[j] (index into the set's classes)
	Difficult []bool // Difficult[j] tells whether Sample.Boxes[j] is marked difficult
	Record    datasets.Record
}

// LoadFunc returns the datasets.LoadFunc that reads record i of d from its
// ImagePath and transforms it, flipping it horizontally with probability
// flipProb (drawn from the sample's rng, so an epoch is the same whichever
// worker loads what). An image whose decoded size differs from the size its
// annotation gives is an error naming the file, since the boxes would not fit.
func (tr Transform) LoadFunc(d datasets.Dataset, flipProb float64) datasets.LoadFunc[Example] {
	return func(i int, rng *rand.Rand) (Example, error) {
		r := d.Record(i)
		im, err := tr.Read(r.ImagePath)
		if err != nil {
			return Example{}, err
		}
		if im.W != r.Width || im.H != r.Height {
			return Example{}, fmt.Errorf("imageio: %s: image is %dx%d but its annotation (%s) says %dx%d",
				r.ImagePath, im.W, im.H, r.Name, r.Width, r.Height)
		}
		flip := flipProb > 0 && rng.Float64() < flipProb
		ex := Example{
			Labels:    make([]int, len(r.Objects)),
			Difficult: make([]bool, len(r.Objects)),
			Record:    r,
		}
		boxes := make([]box.Box, len(r.Objects))
		for j, o := range r.Objects {
			boxes[j], ex.Labels[j], ex.Difficult[j] = o.Box, o.Label, o.Difficult
		}
		if ex.Sample, err = tr.Apply(im, boxes, flip); err != nil {
			return Example{}, fmt.Errorf("imageio: %s: %w", r.ImagePath, err)
		}
		return ex, nil
	}
}
