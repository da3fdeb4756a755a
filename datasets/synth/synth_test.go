package synth

import (
	"bytes"
	"image/jpeg"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"resdet/box"
	"resdet/datasets"
)

func smallConfig(images int) Config {
	c := DefaultConfig()
	c.Images = images
	return c
}

func generate(t *testing.T, dir string, c Config, seed uint64) *Result {
	t.Helper()
	res, err := Generate(dir, c, rand.New(rand.NewPCG(seed, 0)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// readTree returns every file under dir by relative path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestDeterministic(t *testing.T) {
	c := smallConfig(16)
	c.Workers = 1
	a := readTree(t, generate(t, t.TempDir(), c, 7).VOCRoot+"/..")
	c.Workers = 3 // the worker count must not matter
	b := readTree(t, generate(t, t.TempDir(), c, 7).VOCRoot+"/..")
	other := readTree(t, generate(t, t.TempDir(), c, 8).VOCRoot+"/..")
	// 16 images + 16 XML + 4 lists + 4 COCO files + synth.json
	if len(a) != 41 {
		t.Errorf("%d files written, want 41", len(a))
	}
	if len(b) != len(a) {
		t.Fatalf("second run wrote %d files, first %d", len(b), len(a))
	}
	for name, data := range a {
		if !bytes.Equal(data, b[name]) {
			t.Errorf("%s differs between two runs with seed 7", name)
		}
		if strings.Contains(name, ".tmp") {
			t.Errorf("temporary file %s left behind", name)
		}
	}
	same := 0
	for name, data := range a {
		if strings.HasSuffix(name, ".jpg") && bytes.Equal(data, other[name]) {
			same++
		}
	}
	if same > 0 {
		t.Errorf("%d images identical between seeds 7 and 8", same)
	}
}

// TestRoundTrip is issue 2's check: read the generated dataset with both
// the VOC and the COCO reader and get identical boxes and labels back, equal
// to what the generator drew.
func TestRoundTrip(t *testing.T) {
	c := smallConfig(40)
	res := generate(t, t.TempDir(), c, 1)
	if len(res.Splits) != 4 {
		t.Fatalf("%d splits, want 4", len(res.Splits))
	}
	for _, sp := range res.Splits {
		t.Run(sp.Name, func(t *testing.T) {
			voc, err := datasets.ReadVOC(res.VOCRoot, sp.Name, datasets.VOCOptions{Classes: Classes(), KeepDifficult: true, CheckImages: true})
			if err != nil {
				t.Fatal(err)
			}
			coco, err := datasets.ReadCOCO(res.COCOFile(sp.Name), res.ImageDir, datasets.COCOOptions{CheckImages: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(voc.Records) != len(sp.Set.Records) || len(coco.Records) != len(sp.Set.Records) {
				t.Fatalf("records: VOC %d, COCO %d, generated %d", len(voc.Records), len(coco.Records), len(sp.Set.Records))
			}
			if strings.Join(coco.Classes, ",") != strings.Join(Classes(), ",") {
				t.Errorf("COCO classes %v, want %v", coco.Classes, Classes())
			}
			cocoByName := map[string]datasets.Record{}
			for _, r := range coco.Records {
				cocoByName[r.Name] = r
			}
			objects := 0
			for i, want := range sp.Set.Records {
				v := voc.Records[i]
				co, ok := cocoByName[want.Name+".jpg"]
				if !ok {
					t.Fatalf("COCO has no image %s.jpg", want.Name)
				}
				if v.Name != want.Name || v.Width != want.Width || v.Height != want.Height ||
					co.Width != want.Width || co.Height != want.Height {
					t.Fatalf("record %d: VOC %s %dx%d, COCO %s %dx%d, generated %s %dx%d",
						i, v.Name, v.Width, v.Height, co.Name, co.Width, co.Height, want.Name, want.Width, want.Height)
				}
				if len(v.Objects) != len(want.Objects) || len(co.Objects) != len(want.Objects) {
					t.Fatalf("%s: objects VOC %d, COCO %d, generated %d", want.Name, len(v.Objects), len(co.Objects), len(want.Objects))
				}
				for j, wo := range want.Objects {
					vo, cob := v.Objects[j], co.Objects[j]
					if vo.Box != wo.Box || cob.Box != wo.Box {
						t.Errorf("%s object %d: box VOC %v, COCO %v, generated %v", want.Name, j, vo.Box, cob.Box, wo.Box)
					}
					if vo.Label != wo.Label || cob.Label != wo.Label {
						t.Errorf("%s object %d: label VOC %d, COCO %d, generated %d", want.Name, j, vo.Label, cob.Label, wo.Label)
					}
					if vo.Difficult != wo.Difficult || vo.Truncated != wo.Truncated ||
						cob.Difficult != wo.Difficult || cob.Truncated != wo.Truncated {
						t.Errorf("%s object %d: difficult/truncated VOC %v/%v, COCO %v/%v, generated %v/%v", want.Name, j,
							vo.Difficult, vo.Truncated, cob.Difficult, cob.Truncated, wo.Difficult, wo.Truncated)
					}
					if cob.ID != wo.ID {
						t.Errorf("%s object %d: COCO id %d, generated %d", want.Name, j, cob.ID, wo.ID)
					}
					objects++
				}
			}
			if objects == 0 {
				t.Error("no objects compared")
			}
		})
	}
}

func TestSplits(t *testing.T) {
	res := generate(t, t.TempDir(), smallConfig(41), 3)
	names := func(split string) map[string]bool {
		m := map[string]bool{}
		for _, r := range res.Split(split).Records {
			m[r.Name] = true
		}
		return m
	}
	train, val, trainval, test := names("train"), names("val"), names("trainval"), names("test")
	// 41 images, test fraction 0.25: round(10.25) = 10 test, 31 trainval = 16 train + 15 val.
	if len(test) != 10 || len(trainval) != 31 || len(train) != 16 || len(val) != 15 {
		t.Fatalf("sizes train %d val %d trainval %d test %d, want 16 15 31 10", len(train), len(val), len(trainval), len(test))
	}
	for n := range trainval {
		if train[n] == val[n] {
			t.Errorf("%s: in train %v, in val %v; want exactly one", n, train[n], val[n])
		}
		if test[n] {
			t.Errorf("%s in both trainval and test", n)
		}
	}
	for n := range train {
		if !trainval[n] {
			t.Errorf("train image %s not in trainval", n)
		}
	}
	list, err := os.ReadFile(filepath.Join(res.VOCRoot, "ImageSets", "Main", "val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(list))
	for i := 1; i < len(lines); i++ {
		if lines[i-1] >= lines[i] {
			t.Fatalf("val.txt not sorted: %s before %s", lines[i-1], lines[i])
		}
	}
}

// TestContent checks what the issue asks of the images: all classes, sizes
// from under 16 px to most of the image, difficult tiny objects, truncated
// objects, boxes inside images that match the JPEG sizes.
func TestContent(t *testing.T) {
	c := smallConfig(120)
	res := generate(t, t.TempDir(), c, 11)
	all := res.Splits[2:] // trainval and test: every image once
	st := ComputeStats(all)
	if st.Images != c.Images {
		t.Fatalf("%d images in trainval+test, want %d", st.Images, c.Images)
	}
	for l, n := range st.PerClass {
		if n < 20 {
			t.Errorf("class %s has %d objects, want at least 20 of ~%d", Classes()[l], n, st.Objects)
		}
	}
	if st.MinSide >= 16 || st.MaxSide < 150 {
		t.Errorf("longer box sides %g..%g px, want below 16 up to at least 150", st.MinSide, st.MaxSide)
	}
	if st.Difficult == 0 || st.Difficult > st.Objects/5 || st.Truncated == 0 || st.Truncated > st.Objects/4 {
		t.Errorf("%d difficult, %d truncated of %d objects", st.Difficult, st.Truncated, st.Objects)
	}
	for _, sp := range all {
		for _, r := range sp.Set.Records {
			data, err := os.ReadFile(r.ImagePath)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", r.ImagePath, err)
			}
			if cfg.Width != r.Width || cfg.Height != r.Height {
				t.Errorf("%s: JPEG %dx%d, annotation %dx%d", r.Name, cfg.Width, cfg.Height, r.Width, r.Height)
			}
			if len(r.Objects) == 0 {
				t.Errorf("%s: no objects", r.Name)
			}
			for j, o := range r.Objects {
				b := o.Box
				if b.X1 < 0 || b.Y1 < 0 || b.X2 > float32(r.Width) || b.Y2 > float32(r.Height) || b.Empty() {
					t.Errorf("%s object %d: box %v outside %dx%d or empty", r.Name, j, b, r.Width, r.Height)
				}
				long := max(b.Width(), b.Height())
				if o.Difficult != (long < float32(c.MinSize)) {
					t.Errorf("%s object %d: difficult %v with longer side %g (MinSize %d)", r.Name, j, o.Difficult, long, c.MinSize)
				}
				touches := b.X1 == 0 || b.Y1 == 0 || b.X2 == float32(r.Width) || b.Y2 == float32(r.Height)
				if o.Truncated && !touches {
					t.Errorf("%s object %d: truncated but box %v does not touch the border", r.Name, j, b)
				}
			}
		}
	}
}

// TestOcclusionLimit recounts, from the pixel owner map, how much of each
// object stays visible.
func TestOcclusionLimit(t *testing.T) {
	c := DefaultConfig()
	c.MaxObjects = 12
	rng := rand.New(rand.NewPCG(5, 5))
	occluded := 0
	for range 40 {
		_, cv := drawImage(c, rng)
		visible := make([]int, len(cv.placed))
		for _, o := range cv.owner {
			if o >= 0 {
				visible[o]++
			}
		}
		for i, p := range cv.placed {
			if visible[i] != p.visible {
				t.Fatalf("object %d: %d pixels visible in the owner map, canvas says %d", i, visible[i], p.visible)
			}
			if float64(visible[i]) < (1-c.MaxOcclusion)*float64(p.pixels) {
				t.Errorf("object %d: %d of %d pixels visible, limit %.0f%% hidden", i, visible[i], p.pixels, 100*c.MaxOcclusion)
			}
			if visible[i] < p.pixels {
				occluded++
			}
		}
	}
	if occluded == 0 {
		t.Error("no object is partly occluded in 40 images of up to 12 objects")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		field  string
		modify func(*Config)
	}{
		{"Images", func(c *Config) { c.Images = 0 }},
		{"Width", func(c *Config) { c.Width = 10 }},
		{"Height", func(c *Config) { c.Height = 63 }},
		{"SizeJitter", func(c *Config) { c.SizeJitter = 0.6 }},
		{"TestFraction", func(c *Config) { c.TestFraction = 1 }},
		{"MaxObjects", func(c *Config) { c.MaxObjects = 0 }},
		{"MinSize", func(c *Config) { c.MinSize = 4 }},
		{"MinSize", func(c *Config) { c.MinSize = 200 }},
		{"TinyFraction", func(c *Config) { c.TinyFraction = -0.1 }},
		{"TruncatedFraction", func(c *Config) { c.TruncatedFraction = 2 }},
		{"MaxOcclusion", func(c *Config) { c.MaxOcclusion = 1 }},
		{"Noise", func(c *Config) { c.Noise = 100 }},
		{"JPEGQuality", func(c *Config) { c.JPEGQuality = 0 }},
		{"Workers", func(c *Config) { c.Workers = -1 }},
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			c := DefaultConfig()
			tt.modify(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Validate() = %v, want an error naming %s", err, tt.field)
			}
			if _, err := Generate(t.TempDir(), c, rand.New(rand.NewPCG(1, 1)), nil); err == nil {
				t.Error("Generate accepted the config")
			}
		})
	}
}

func TestOverwrite(t *testing.T) {
	c := smallConfig(3)
	dir := t.TempDir()
	generate(t, dir, c, 1)
	if _, err := Generate(dir, c, rand.New(rand.NewPCG(1, 0)), nil); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second Generate without Overwrite: %v, want an error saying the folder exists", err)
	}
	stale := filepath.Join(dir, "VOC2007", "JPEGImages", "999999.jpg")
	if err := os.WriteFile(stale, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.Overwrite = true
	generate(t, dir, c, 1)
	if _, err := os.Stat(stale); err == nil {
		t.Error("Overwrite left an earlier file in VOC2007")
	}

	// A VOC2007 folder not written by synth (no synth.json) is never removed.
	foreign := t.TempDir()
	keep := filepath.Join(foreign, "VOC2007", "Annotations", "000005.xml")
	if err := os.MkdirAll(filepath.Dir(keep), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keep, []byte("<annotation/>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(foreign, c, rand.New(rand.NewPCG(1, 0)), nil); err == nil || !strings.Contains(err.Error(), "synth.json") {
		t.Fatalf("Generate over a foreign VOC2007: %v, want an error naming synth.json", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("foreign file removed: %v", err)
	}
}

func TestProgressCalls(t *testing.T) {
	c := smallConfig(9)
	c.Workers = 3
	var n atomic.Int64
	if _, err := Generate(t.TempDir(), c, rand.New(rand.NewPCG(2, 0)), func() { n.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != 9 {
		t.Errorf("progress called %d times, want 9", got)
	}
}

func TestStatsText(t *testing.T) {
	set := &datasets.Set{Classes: []string{"a", "b"}, Records: []datasets.Record{
		{Name: "1", Objects: []datasets.Object{
			{Label: 0, Box: boxWH(10, 10), Difficult: true}, // sqrt area 10 -> [0,16)
			{Label: 1, Box: boxWH(40, 10), Truncated: true}, // 20 -> [16,32)
		}},
		{Name: "2", Objects: []datasets.Object{{Label: 1, Box: boxWH(300, 300)}}}, // [256,inf)
	}}
	st := ComputeStats([]Split{{Name: "x", Set: set}, {Name: "y", Set: &datasets.Set{Classes: set.Classes, Records: set.Records[1:]}}})
	var buf bytes.Buffer
	if _, err := st.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	want := `split       images  objects
x                2        3
y                1        1
all              2        3

class       objects
a                 1
b                 2

difficult 1, truncated 1; longer box side 10..300 px

sqrt(area) px   objects
[0, 16)               1
[16, 32)              1
[32, 64)              0
[64, 128)             0
[128, 256)            0
[256, +Inf)           1
`
	if buf.String() != want {
		t.Errorf("stats text:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func boxWH(w, h float32) box.Box { return box.Box{X1: 1, Y1: 2, X2: 1 + w, Y2: 2 + h} }

// TestClassHues checks that with Config.ClassHues every visible pixel of an
// object has a hue in its class's band, and that without it objects stray
// outside their bands (the option is what puts them there).
func TestClassHues(t *testing.T) {
	for _, tt := range []struct {
		name    string
		on      bool
		wantOut bool
	}{{"class hues", true, false}, {"random colours", false, true}} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.ClassHues, c.Noise = tt.on, 0 // noise would blur the hues
			rng := rand.New(rand.NewPCG(8, 8))
			objects, outside := 0, 0
			for range 30 {
				img, cv := drawImage(c, rng)
				for i, p := range cv.placed {
					lo := float64(p.obj.Label) / numClasses
					in, n := 0, 0
					for k, o := range cv.owner {
						if int(o) != i {
							continue
						}
						px := img.Pix[4*k : 4*k+3]
						h := hueOf(float64(px[0]), float64(px[1]), float64(px[2]))
						// Rounding to 8 bits moves the hue by well under 0.01.
						if d := h - lo; d > 0.24/numClasses-0.01 && d < 0.76/numClasses+0.01 {
							in++
						}
						n++
					}
					objects++
					if in < n {
						outside++
					}
				}
			}
			t.Logf("%d of %d objects have pixels outside their class's hue band", outside, objects)
			if objects < 30 || (outside > 0) != tt.wantOut {
				t.Errorf("%d of %d objects outside their class's hue band; want some: %v", outside, objects, tt.wantOut)
			}
		})
	}
}

// hueOf returns the HSV hue in [0, 1) of an RGB colour.
func hueOf(r, g, b float64) float64 {
	mx, mn := max(r, g, b), min(r, g, b)
	if mx == mn {
		return 0
	}
	var h float64
	switch mx {
	case r:
		h = (g - b) / (mx - mn)
	case g:
		h = 2 + (b-r)/(mx-mn)
	default:
		h = 4 + (r-g)/(mx-mn)
	}
	h /= 6
	if h < 0 {
		h++
	}
	return h
}
