package coco_test

import (
	"fmt"
	"os"

	"resdet/format/coco"
)

func ExampleParseResults() {
	res, err := coco.ParseResults([]byte(`[{"image_id": 42, "category_id": 18, "bbox": [10, 20, 30.5, 40], "score": 0.9}]`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%+v\n", res[0])
	fmt.Println(coco.XYWHToBox(res[0].BBox))
	if err := coco.WriteResults(os.Stdout, res); err != nil {
		fmt.Println(err)
	}
	_, err = coco.ParseResults([]byte(`[{"image_id": 42, "category_id": 18, "bbox": [10, 20, -1, 40], "score": 0.9}]`))
	fmt.Println(err)
	// Output:
	// {ImageID:42 CategoryID:18 BBox:[10 20 30.5 40] Score:0.9}
	// {10 20 40.5 60}
	// [
	// {"image_id":42,"category_id":18,"bbox":[10,20,30.5,40],"score":0.9}]
	// entry 0: bbox width -1 is negative
}
