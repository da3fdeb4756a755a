package eval_test

import (
	"fmt"
	"os"

	"resdet/eval"
)

// The fixture case coco_crowd: the printed lines are pycocotools' output
// for it (testdata/detection-eval/coco_crowd/expected.json).
func ExampleEvaluateCOCO() {
	gt, err := eval.ParseCOCOGroundTruth([]byte(`{
 "images": [{"id":1,"width":640,"height":480}, {"id":2,"width":640,"height":480}],
 "categories": [{"id":1,"name":"cat1"}, {"id":2,"name":"cat2"}],
 "annotations": [
  {"id":1,"image_id":1,"category_id":1,"bbox":[50,50,100,100],"area":10000,"iscrowd":0},
  {"id":2,"image_id":1,"category_id":1,"bbox":[300,50,200,200],"area":30000,"iscrowd":1},
  {"id":3,"image_id":1,"category_id":1,"bbox":[280,300,60,60],"area":3600,"iscrowd":0},
  {"id":4,"image_id":1,"category_id":1,"bbox":[260,250,60,60],"area":3600,"iscrowd":0},
  {"id":5,"image_id":2,"category_id":2,"bbox":[100,100,300,200],"area":45000,"iscrowd":1},
  {"id":6,"image_id":2,"category_id":1,"bbox":[10,10,40,40],"area":1600,"iscrowd":0}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	dets, err := eval.ParseCOCOResults([]byte(`[
{"image_id":1,"category_id":1,"bbox":[50,50,100,100],"score":0.9},
{"image_id":1,"category_id":1,"bbox":[320,70,50,50],"score":0.85},
{"image_id":1,"category_id":1,"bbox":[400,150,60,60],"score":0.8},
{"image_id":1,"category_id":1,"bbox":[440,100,100,100],"score":0.78},
{"image_id":1,"category_id":1,"bbox":[280,300,60,60],"score":0.7},
{"image_id":1,"category_id":1,"bbox":[265,235,60,60],"score":0.6},
{"image_id":1,"category_id":1,"bbox":[266,236,60,60],"score":0.5},
{"image_id":2,"category_id":2,"bbox":[120,120,50,50],"score":0.95},
{"image_id":2,"category_id":2,"bbox":[500,400,50,50],"score":0.4}]`))
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := eval.EvaluateCOCO(gt, dets)
	if err != nil {
		fmt.Println(err)
		return
	}
	r.Stats.WriteTo(os.Stdout)
	// Output:
	//  Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.472
	//  Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.752
	//  Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.422
	//  Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000
	//  Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.369
	//  Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 1.000
	//  Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.250
	//  Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.525
	//  Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.525
	//  Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000
	//  Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.367
	//  Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 1.000
}
