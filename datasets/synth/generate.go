package synth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"resdet/box"
	"resdet/datasets"
	"resdet/internal/atomicfile"
)

// Config describes a synthetic dataset. Start from DefaultConfig.
type Config struct {
	Images            int     // number of images, > 0
	Width, Height     int     // mean image size in pixels, each >= 64
	SizeJitter        float64 // each side is drawn uniformly from side*[1-j, 1+j]; j in [0, 0.5]
	TestFraction      float64 // share of images in the test split, [0, 1); the rest is halved into train and val
	MaxObjects        int     // objects per image: 1..MaxObjects (fewer when placements fail), >= 1
	MinSize           int     // px: objects whose longer box side is below it are tiny and difficult; >= 8
	TinyFraction      float64 // probability that an object is drawn tiny, [0, 1]
	TruncatedFraction float64 // probability that an object crosses the image border, [0, 1]
	MaxOcclusion      float64 // largest share of an object's pixels later objects may hide, (0, 1)
	Noise             int     // per-channel uniform pixel noise amplitude, 0..64
	JPEGQuality       int     // 1..100
	// ClassHues paints each class in its own band of hues (class k of K:
	// hue (k+0.5)/K ± 0.25/K), so colour as well as shape tells the classes
	// apart: the easy variant, which a detector trained from scratch learns
	// in minutes on a CPU (the demo's). Off, every object gets a random
	// saturated colour far from its background and only the shape tells.
	ClassHues bool
	// Workers is the number of images generated at once (0: GOMAXPROCS). The
	// output does not depend on it.
	Workers int `json:"-"`
	// Overwrite allows dir to hold an earlier synthetic dataset (recognised
	// by its synth.json): its VOC2007 and annotations folders are removed
	// first. Without it, existing VOC2007 or annotations folders are an
	// error. Folders without synth.json are never removed.
	Overwrite bool `json:"-"`
}

// DefaultConfig returns 200 images of about 320x240 (±20%), a quarter for
// test, up to 6 objects each, 8% tiny, 10% truncated, at most half of an
// object hidden.
func DefaultConfig() Config {
	return Config{
		Images: 200, Width: 320, Height: 240, SizeJitter: 0.2, TestFraction: 0.25,
		MaxObjects: 6, MinSize: 16, TinyFraction: 0.08, TruncatedFraction: 0.1,
		MaxOcclusion: 0.5, Noise: 10, JPEGQuality: 90,
	}
}

// Validate returns an error naming the first field out of range.
func (c Config) Validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("synth: config %s = %v, want %s", field, v, want)
	}
	switch {
	case c.Images <= 0:
		return bad("Images", c.Images, "> 0")
	case c.Width < 64:
		return bad("Width", c.Width, ">= 64")
	case c.Height < 64:
		return bad("Height", c.Height, ">= 64")
	case !(c.SizeJitter >= 0 && c.SizeJitter <= 0.5):
		return bad("SizeJitter", c.SizeJitter, "in [0, 0.5]")
	case !(c.TestFraction >= 0 && c.TestFraction < 1):
		return bad("TestFraction", c.TestFraction, "in [0, 1)")
	case c.MaxObjects < 1:
		return bad("MaxObjects", c.MaxObjects, ">= 1")
	case c.MinSize < 8:
		return bad("MinSize", c.MinSize, ">= 8")
	case float64(c.MinSize) > 0.9*float64(min(c.Width, c.Height))*(1-c.SizeJitter):
		return bad("MinSize", c.MinSize, "at most 90% of the smallest image side")
	case !(c.TinyFraction >= 0 && c.TinyFraction <= 1):
		return bad("TinyFraction", c.TinyFraction, "in [0, 1]")
	case !(c.TruncatedFraction >= 0 && c.TruncatedFraction <= 1):
		return bad("TruncatedFraction", c.TruncatedFraction, "in [0, 1]")
	case !(c.MaxOcclusion > 0 && c.MaxOcclusion < 1):
		return bad("MaxOcclusion", c.MaxOcclusion, "in (0, 1)")
	case c.Noise < 0 || c.Noise > 64:
		return bad("Noise", c.Noise, "in [0, 64]")
	case c.JPEGQuality < 1 || c.JPEGQuality > 100:
		return bad("JPEGQuality", c.JPEGQuality, "in [1, 100]")
	case c.Workers < 0:
		return bad("Workers", c.Workers, ">= 0")
	}
	return nil
}

// Split names, in the order Result lists them.
var splitNames = [...]string{"train", "val", "trainval", "test"}

// Split is one split of a generated dataset.
type Split struct {
	Name string        // "train", "val", "trainval" or "test"
	Set  *datasets.Set // records in name order; Record.ID is the image number (1-based)
}

// Result describes a generated dataset.
type Result struct {
	VOCRoot  string // dir/VOC2007, a VOC year folder
	COCODir  string // dir/annotations, holding instances_<split>.json
	ImageDir string // dir/VOC2007/JPEGImages, the COCO image folder
	Classes  []string
	Splits   []Split // train, val, trainval, test
}

// COCOFile returns the COCO instances file of a split.
func (r *Result) COCOFile(split string) string {
	return filepath.Join(r.COCODir, "instances_"+split+".json")
}

// Split returns the named split, or nil.
func (r *Result) Split(name string) *datasets.Set {
	for _, s := range r.Splits {
		if s.Name == name {
			return s.Set
		}
	}
	return nil
}

// Generate writes a synthetic dataset to dir (see the package documentation
// for the layout), drawing all randomness from rng: the same c (apart from
// Workers) and the same rng state give byte-identical files. progress, if
// not nil, is called once per image written, possibly from several
// goroutines at once.
func Generate(dir string, c Config, rng *rand.Rand, progress func()) (*Result, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	res := &Result{
		VOCRoot: filepath.Join(dir, "VOC2007"),
		COCODir: filepath.Join(dir, "annotations"),
		Classes: Classes(),
	}
	res.ImageDir = filepath.Join(res.VOCRoot, "JPEGImages")
	if err := prepareDir(dir, res, c.Overwrite); err != nil {
		return nil, err
	}
	for _, d := range []string{res.ImageDir, filepath.Join(res.VOCRoot, "Annotations"), filepath.Join(res.VOCRoot, "ImageSets", "Main"), res.COCODir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
	}
	// Everything random about image i comes from its own generator, seeded
	// here in order, so workers may run in any order.
	seeds := make([][2]uint64, c.Images)
	for i := range seeds {
		seeds[i] = [2]uint64{rng.Uint64(), rng.Uint64()}
	}
	perm := rng.Perm(c.Images)

	records := make([]datasets.Record, c.Images)
	workers := c.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, c.Images)
	errs := make([]error, c.Images)
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				records[i], errs[i] = writeImage(res, c, i, rand.New(rand.NewPCG(seeds[i][0], seeds[i][1])))
				if errs[i] == nil && progress != nil {
					progress()
				}
			}
		}()
	}
	for i := range c.Images {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Annotation ids: 1.. in image order, the same in every split.
	id := int64(0)
	for i := range records {
		for j := range records[i].Objects {
			id++
			records[i].Objects[j].ID = id
		}
	}

	nTest := int(math.Round(c.TestFraction * float64(c.Images)))
	nTrain := (c.Images - nTest + 1) / 2
	member := map[string][]int{
		"test":     perm[:nTest],
		"train":    perm[nTest : nTest+nTrain],
		"val":      perm[nTest+nTrain:],
		"trainval": perm[nTest:],
	}
	for _, name := range splitNames {
		idx := slices.Clone(member[name])
		slices.Sort(idx)
		set := &datasets.Set{Classes: Classes(), Records: make([]datasets.Record, len(idx))}
		for k, i := range idx {
			set.Records[k] = records[i]
		}
		if err := writeSplit(res, name, set); err != nil {
			return nil, err
		}
		res.Splits = append(res.Splits, Split{Name: name, Set: set})
	}
	if err := writeMarker(dir, c); err != nil {
		return nil, err
	}
	return res, nil
}

// markerName is the file that marks a folder as written by Generate.
const markerName = "synth.json"

// prepareDir checks that dir can receive a dataset, removing an earlier
// synthetic one when overwrite is set.
func prepareDir(dir string, res *Result, overwrite bool) error {
	var existing []string
	for _, d := range []string{res.VOCRoot, res.COCODir} {
		if _, err := os.Stat(d); err == nil {
			existing = append(existing, d)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("synth: %w", err)
		}
	}
	if len(existing) == 0 {
		return nil
	}
	if !overwrite {
		return fmt.Errorf("synth: %s already exists (overwrite to replace an earlier synthetic dataset)", existing[0])
	}
	marker := filepath.Join(dir, markerName)
	if _, err := os.Stat(marker); err != nil {
		return fmt.Errorf("synth: %s exists but %s does not, so it was not written by synth: not removing it", existing[0], marker)
	}
	for _, d := range existing {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("synth: remove %s: %w", d, err)
		}
	}
	return nil
}

// writeMarker writes dir/synth.json: the config and classes.
func writeMarker(dir string, c Config) error {
	data, err := json.MarshalIndent(struct {
		Generator string   `json:"generator"`
		Classes   []string `json:"classes"`
		Config    Config   `json:"config"`
	}{"resdet synth", Classes(), c}, "", "  ")
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, markerName), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// writeImage generates image i and writes its JPEG and VOC annotation.
func writeImage(res *Result, c Config, i int, rng *rand.Rand) (datasets.Record, error) {
	img, cv := drawImage(c, rng)
	objs := make([]datasets.Object, len(cv.placed))
	for i, p := range cv.placed {
		objs[i] = p.obj
	}
	name := fmt.Sprintf("%06d", i+1)
	rec := datasets.Record{
		ID:        int64(i + 1),
		Name:      name,
		ImagePath: filepath.Join(res.ImageDir, name+".jpg"),
		Width:     img.Rect.Dx(),
		Height:    img.Rect.Dy(),
		Objects:   objs,
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: c.JPEGQuality}); err != nil {
		return rec, fmt.Errorf("synth: encode %s: %w", rec.ImagePath, err)
	}
	if err := atomicfile.WriteFile(rec.ImagePath, buf.Bytes(), 0o644); err != nil {
		return rec, fmt.Errorf("synth: %w", err)
	}
	ann := filepath.Join(res.VOCRoot, "Annotations", name+".xml")
	if err := datasets.WriteVOCAnnotation(ann, rec, Classes()); err != nil {
		return rec, fmt.Errorf("synth: %w", err)
	}
	return rec, nil
}

// writeSplit writes the VOC list and the COCO file of one split.
func writeSplit(res *Result, name string, set *datasets.Set) error {
	var list bytes.Buffer
	for _, r := range set.Records {
		list.WriteString(r.Name)
		list.WriteByte('\n')
	}
	if err := atomicfile.WriteFile(filepath.Join(res.VOCRoot, "ImageSets", "Main", name+".txt"), list.Bytes(), 0o644); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if err := datasets.WriteCOCO(res.COCOFile(name), set); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// drawImage paints one image and returns it with the canvas that lists its
// objects (IDs unset) and which object shows at each pixel.
func drawImage(c Config, rng *rand.Rand) (*image.RGBA, *canvas) {
	jitter := func(side int) int {
		return int(math.Round(float64(side) * (1 + c.SizeJitter*(2*rng.Float64()-1))))
	}
	w, h := max(jitter(c.Width), 64), max(jitter(c.Height), 64)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	paintBackground(img, rng)
	cv := &canvas{img: img, owner: make([]int16, w*h)}
	for i := range cv.owner {
		cv.owner[i] = -1
	}
	n := 1 + rng.IntN(c.MaxObjects)
	for range n {
		for try := 0; try < 20; try++ {
			if cv.tryPlace(c, rng) {
				break
			}
		}
	}
	addNoise(img, c.Noise, rng)
	return img, cv
}

// canvas is an image being painted, with the index of the object that owns
// (shows) each pixel, -1 for background.
type canvas struct {
	img    *image.RGBA
	owner  []int16
	placed []placed
}

type placed struct {
	obj     datasets.Object
	pixels  int // pixels of the object inside the image
	visible int // of which not hidden by later objects
}

// tryPlace proposes one random object and paints it if it is acceptable.
func (cv *canvas) tryPlace(c Config, rng *rand.Rand) bool {
	W, H := cv.img.Rect.Dx(), cv.img.Rect.Dy()
	s := shape{class: rng.IntN(numClasses), flip: rng.IntN(2) == 1}
	tiny := rng.Float64() < c.TinyFraction
	truncated := !tiny && rng.Float64() < c.TruncatedFraction
	// Longer side, then aspect ratio (longer/shorter) and orientation.
	var long float64
	if tiny {
		long = 6 + rng.Float64()*float64(c.MinSize-6)
	} else {
		lo, hi := math.Log(float64(c.MinSize)), math.Log(0.9*float64(min(W, H)))
		long = math.Exp(lo + rng.Float64()*(hi-lo))
	}
	ratio := 1.0
	switch s.class {
	case ellipse:
		ratio = 1.5 + rng.Float64()
	case triangle, star, cross:
		ratio = 1 + 0.7*rng.Float64()
	}
	wide := rng.IntN(2) == 1
	s.rx, s.ry = long/2, long/ratio/2
	if !wide {
		s.rx, s.ry = s.ry, s.rx
	}
	if s.class == star {
		s.starPoly = starVertices()
	}
	// Centre: inside the image, or pushed over one border by 20-50% of the
	// object's extent on that axis.
	s.cx = s.rx + rng.Float64()*(float64(W)-2*s.rx)
	s.cy = s.ry + rng.Float64()*(float64(H)-2*s.ry)
	if truncated {
		out := 0.2 + 0.3*rng.Float64()
		switch rng.IntN(4) {
		case 0:
			s.cx = s.rx * (1 - 2*out)
		case 1:
			s.cx = float64(W) - s.rx*(1-2*out)
		case 2:
			s.cy = s.ry * (1 - 2*out)
		default:
			s.cy = float64(H) - s.ry*(1-2*out)
		}
	}
	// Rasterise: pixel (x, y) belongs to the object when its centre does.
	x0, x1 := int(math.Floor(s.cx-s.rx)), int(math.Ceil(s.cx+s.rx))
	y0, y1 := int(math.Floor(s.cy-s.ry)), int(math.Ceil(s.cy+s.ry))
	total := 0
	var mask []int32
	bx0, by0, bx1, by1 := W, H, -1, -1
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			if !s.inside(float64(x)+0.5, float64(y)+0.5) {
				continue
			}
			total++
			if x < 0 || y < 0 || x >= W || y >= H {
				continue
			}
			mask = append(mask, int32(y*W+x))
			bx0, by0, bx1, by1 = min(bx0, x), min(by0, y), max(bx1, x), max(by1, y)
		}
	}
	if len(mask) == 0 {
		return false
	}
	b := box.Box{X1: float32(bx0), Y1: float32(by0), X2: float32(bx1 + 1), Y2: float32(by1 + 1)}
	longSide := max(b.Width(), b.Height())
	cut := len(mask) < total
	if cut && (float64(len(mask)) < 0.4*float64(total) || longSide < float32(c.MinSize)) {
		return false
	}
	// Occlusion: no earlier object may lose more than MaxOcclusion of its pixels.
	covered := make([]int, len(cv.placed))
	for _, p := range mask {
		if o := cv.owner[p]; o >= 0 {
			covered[o]++
		}
	}
	for j, p := range cv.placed {
		if float64(p.visible-covered[j]) < (1-c.MaxOcclusion)*float64(p.pixels) {
			return false
		}
	}
	var col [3]uint8
	if c.ClassHues {
		col = classColour(s.class, rng)
	} else {
		col = objectColour(cv.img, b, rng)
	}
	idx := int16(len(cv.placed))
	shade := 0.25 * rng.Float64() // darker towards one side
	for _, p := range mask {
		x, y := int(p)%W, int(p)/W
		t := 1 - shade*(float64(x)-s.cx+s.rx)/(2*s.rx)
		o := cv.img.PixOffset(x, y)
		for k := range 3 {
			cv.img.Pix[o+k] = uint8(math.Round(float64(col[k]) * t))
		}
		cv.owner[p] = idx
	}
	for j := range cv.placed {
		cv.placed[j].visible -= covered[j]
	}
	cv.placed = append(cv.placed, placed{
		obj: datasets.Object{
			Box:       b,
			Label:     s.class,
			Difficult: longSide < float32(c.MinSize),
			Truncated: cut,
			Area:      b.Area(),
		},
		pixels:  len(mask),
		visible: len(mask),
	})
	return true
}
