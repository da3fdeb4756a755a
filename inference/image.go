package inference

import (
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig: size check before decoding
	_ "image/png"
	"os"
	"slices"
	"time"

	"resdet/box"
	"resdet/datasets"
	"resdet/datasets/imageio"
	"resdet/detection"
)

// Result is one image's detections: the object `detect --json` prints, one
// per line.
type Result struct {
	Image      string      `json:"image"`  // the path as given
	Width      int         `json:"width"`  // original image width, px
	Height     int         `json:"height"` // original image height, px
	Detections []Detection `json:"detections"`
}

// Detection is one detected object of a Result.
type Detection struct {
	Label   string `json:"label"`
	ClassID int    `json:"class_id"` // from 1 (0 is the background)
	// CategoryID is the COCO category id of a COCO model's class.
	CategoryID int        `json:"category_id,omitempty"`
	Score      float32    `json:"score"`
	Box        [4]float32 `json:"box"` // x1, y1, x2, y2 in original pixels (box/doc.go)
}

// BoxValue returns d's box as a box.Box.
func (d Detection) BoxValue() box.Box {
	return box.Box{X1: d.Box[0], Y1: d.Box[1], X2: d.Box[2], Y2: d.Box[3]}
}

// Transform returns the preprocessing m was trained with (its
// configuration's resizing, normalisation and decoding rules).
func Transform(m *detection.FasterRCNN) imageio.Transform {
	cfg := m.Config
	return imageio.Transform{Preprocess: imageio.Preprocess(cfg.Transform.Preprocess), MinSize: cfg.Transform.MinSize,
		MaxSize: cfg.Transform.MaxSize, Norm: imageio.Normalization(cfg.Transform.Norm)}
}

// DetectFile reads, transforms and runs one image file: images above maxMP
// megapixels and empty files are refused before decoding. It returns the
// time spent reading and resizing (prep) and in the network (net).
func DetectFile(m *detection.FasterRCNN, tr imageio.Transform, path string, maxMP float64) (res Result, prep, net time.Duration, err error) {
	t0 := time.Now()
	if err := CheckSize(path, maxMP); err != nil {
		return res, 0, 0, err
	}
	s, err := tr.Load(path, nil, false)
	if err != nil {
		return res, time.Since(t0), 0, err
	}
	t1 := time.Now()
	det, err := m.Predict(detection.Image{Data: s.Image.Data, W: s.Image.W, H: s.Image.H, OrigW: s.OrigW, OrigH: s.OrigH})
	net = time.Since(t1)
	if err != nil {
		return res, t1.Sub(t0), net, err
	}
	res = Result{Image: path, Width: s.OrigW, Height: s.OrigH, Detections: make([]Detection, det.Len())}
	cocoIDs := CategoryIDs(m.Config.Classes)
	for i := range det.Boxes {
		b, l := det.Boxes[i], det.Labels[i]
		res.Detections[i] = Detection{Label: m.Config.Classes[l-1], ClassID: l, Score: det.Scores[i], Box: [4]float32{b.X1, b.Y1, b.X2, b.Y2}}
		if cocoIDs != nil {
			res.Detections[i].CategoryID = cocoIDs[l-1]
		}
	}
	return res, t1.Sub(t0), net, nil
}

// CheckSize refuses empty files and images above maxMP megapixels before
// decoding them (the header is enough). Files whose header Go cannot read
// are left to the decoder, which names the problem.
func CheckSize(path string, maxMP float64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		return fmt.Errorf("empty file")
	}
	c, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil
	}
	if mp := float64(c.Width) * float64(c.Height) / 1e6; mp > maxMP {
		return fmt.Errorf("image is %dx%d (%.1f megapixels), above the --max-pixels cap of %g", c.Width, c.Height, mp, maxMP)
	}
	return nil
}

// IsCOCO reports whether classes are COCO's 80 categories in order (so
// that class j has the COCO category id datasets.COCOCategoryIDs()[j-1]).
func IsCOCO(classes []string) bool { return slices.Equal(classes, datasets.COCOClasses()) }

// CategoryIDs returns the COCO category id of each class (index j-1 for
// class j) when classes are COCO's: the 80 categories in order
// (Detectron2's models, --classes coco) or the 90 ids 1..90 of
// torchvision's COCO models (datasets.COCOClassesByID), where the ten
// datasets.COCONoCategory classes get 0 (no category). Otherwise nil.
func CategoryIDs(classes []string) []int {
	if IsCOCO(classes) {
		return datasets.COCOCategoryIDs()
	}
	if !slices.Equal(classes, datasets.COCOClassesByID()) {
		return nil
	}
	ids := make([]int, len(classes))
	for i, n := range classes {
		if n != datasets.COCONoCategory {
			ids[i] = i + 1
		}
	}
	return ids
}
