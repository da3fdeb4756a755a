package imageio

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"resdet/datasets"
	"resdet/datasets/synth"
)

// TestLoadFunc loads a generated VOC dataset through the datasets loader:
// boxes follow the flip and resize, and the epoch is reproducible.
func TestLoadFunc(t *testing.T) {
	c := synth.DefaultConfig()
	c.Images = 8
	res, err := synth.Generate(t.TempDir(), c, rand.New(rand.NewPCG(4, 0)), nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := datasets.ReadVOC(res.VOCRoot, "trainval", datasets.VOCOptions{Classes: synth.Classes(), KeepDifficult: true})
	if err != nil {
		t.Fatal(err)
	}
	tr := Transform{MinSize: 300, MaxSize: 500, Norm: ImageNet()}
	load := tr.LoadFunc(set, 0.5)
	epoch := func(seed uint64) []Example {
		var out []Example
		l := datasets.NewLoader(load, datasets.LoaderConfig{Workers: 2})
		for b, err := range l.Epoch(datasets.Batches(datasets.Sequential(set.Len()), 2, false), seed) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b.Items...)
		}
		return out
	}
	a, b := epoch(9), epoch(9)
	if len(a) != set.Len() {
		t.Fatalf("%d examples, want %d", len(a), set.Len())
	}
	flips := 0
	for i, ex := range a {
		r := set.Records[i]
		if ex.Record.Name != r.Name {
			t.Fatalf("example %d is %s, want %s", i, ex.Record.Name, r.Name)
		}
		_, w, h := ResizeSize(r.Width, r.Height, 300, 500)
		if ex.Image.W != w || ex.Image.H != h {
			t.Errorf("%s: %dx%d, want %dx%d", r.Name, ex.Image.W, ex.Image.H, w, h)
		}
		for j, o := range r.Objects {
			want := o.Box
			if ex.Flipped {
				want = want.FlipX(float32(r.Width))
			}
			want = want.Scale(float32(w)/float32(r.Width), float32(h)/float32(r.Height))
			if ex.Boxes[j] != want || ex.Labels[j] != o.Label || ex.Difficult[j] != o.Difficult {
				t.Errorf("%s object %d: box %v label %d difficult %v, want %v %d %v",
					r.Name, j, ex.Boxes[j], ex.Labels[j], ex.Difficult[j], want, o.Label, o.Difficult)
			}
		}
		if ex.Flipped {
			flips++
		}
		if ex.Flipped != b[i].Flipped || !reflect.DeepEqual(ex.Image.Data, b[i].Image.Data) {
			t.Errorf("%s: two epochs with seed 9 differ", r.Name)
		}
	}
	if flips == 0 || flips == len(a) {
		t.Errorf("%d of %d images flipped with probability 0.5", flips, len(a))
	}

	// An annotation that disagrees with its image is an error naming the file.
	bad := &datasets.Set{Classes: set.Classes, Records: []datasets.Record{set.Records[0]}}
	bad.Records[0].Width++
	_, err = tr.LoadFunc(bad, 0)(0, rand.New(rand.NewPCG(1, 1)))
	if err == nil || !strings.Contains(err.Error(), bad.Records[0].ImagePath) {
		t.Errorf("size mismatch: error %v, want one naming %s", err, bad.Records[0].ImagePath)
	}
}
