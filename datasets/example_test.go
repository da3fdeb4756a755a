package datasets_test

import (
	"fmt"
	"math/rand/v2"

	"resdet/datasets"
)

func ExampleVOCToBox() {
	// A VOC <bndbox> covering pixel columns 1..500 and rows 1..375
	// (1-based, inclusive) is the whole 500x375 image.
	b := datasets.VOCToBox(1, 1, 500, 375)
	fmt.Println(b, b.Width(), b.Height())
	fmt.Println(datasets.BoxToVOC(b))
	// Output:
	// {0 0 500 375} 500 375
	// 1 1 500 375
}

func ExampleReadVOC() {
	s, err := datasets.ReadVOC("testdata/VOCdevkit/VOC2007", "trainval", datasets.VOCOptions{KeepDifficult: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range s.Records {
		fmt.Printf("%s %dx%d\n", r.Name, r.Width, r.Height)
		for _, o := range r.Objects {
			fmt.Printf("  %s %v difficult=%v\n", s.Classes[o.Label], o.Box, o.Difficult)
		}
	}
	// Output:
	// 000005 500x375
	//   chair {262 210 324 339} difficult=false
	//   chair {164 263 253 372} difficult=false
	//   chair {4 243 67 374} difficult=true
	// 000007 500x333
	//   car {140 49 500 330} difficult=false
	// 2008_000008 500x442
	//   horse {51 85 471.5 420} difficult=false
	//   person {157 0 250 67} difficult=false
}

func ExampleReadCOCO() {
	s, err := datasets.ReadCOCO("testdata/coco/crowd_gt.json", "train2017", datasets.COCOOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Classes, s.CategoryIDs)
	r := s.Records[1]
	fmt.Println(r.ID, r.ImagePath)
	for _, o := range r.Objects {
		fmt.Printf("  id %d label %d %v crowd=%v\n", o.ID, o.Label, o.Box, o.Crowd)
	}
	// Output:
	// [cat1 cat2] [1 2]
	// 2 train2017/000000000002.jpg
	//   id 5 label 1 {100 100 400 300} crowd=true
	//   id 6 label 0 {10 10 50 50} crowd=false
}

func ExampleLoader() {
	// Records of a tiny dataset: two landscape images, two portrait ones.
	s := &datasets.Set{Records: []datasets.Record{
		{Name: "a", Width: 640, Height: 480}, {Name: "b", Width: 480, Height: 640},
		{Name: "c", Width: 500, Height: 375}, {Name: "d", Width: 375, Height: 500},
	}}
	// One epoch: a seeded shuffle, batches of 2 images of the same
	// orientation.
	batches := datasets.TrainingBatches(s, 2, rand.New(rand.NewPCG(1, 0)))
	load := func(i int, rng *rand.Rand) (string, error) {
		// A real load decodes the image; rng drives its augmentation.
		flip := rng.IntN(2) == 1
		return fmt.Sprintf("%s(flip=%v)", s.Records[i].Name, flip), nil
	}
	loader := datasets.NewLoader(load, datasets.LoaderConfig{Workers: 2})
	var got []string
	for b, err := range loader.Epoch(batches, 7) {
		if err != nil {
			fmt.Println(err)
			return
		}
		got = append(got, fmt.Sprint(b.Items))
	}
	// Any number of workers gives the same batches for seeds 1 and 7.
	again := datasets.NewLoader(load, datasets.LoaderConfig{Workers: 5})
	same := true
	i := 0
	for b := range again.Epoch(batches, 7) {
		same = same && fmt.Sprint(b.Items) == got[i]
		i++
	}
	fmt.Println(len(got), "batches, same with 5 workers:", same)
	// Output:
	// 2 batches, same with 5 workers: true
}
