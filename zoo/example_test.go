package zoo_test

import (
	"fmt"

	"resdet/zoo"
)

func ExampleLookup() {
	m, err := zoo.Lookup(zoo.DefaultName)
	if err != nil {
		panic(err)
	}
	c := &zoo.Cache{Dir: "/home/u/.cache/resdet/models"}
	fmt.Println(m.Title, m.Arch, m.Construction, m.Dataset, m.Metric, m.AP)
	fmt.Println(c.URL(m))
	fmt.Println(c.Path(m))
	c.BaseURL = "http://mirror.local/models"
	fmt.Println(c.URL(m))
	// Output:
	// COCO-Detection/faster_rcnn_R_101_C4_3x r101-c4 detectron2 coco box AP 41.1
	// https://dl.fbaipublicfiles.com/detectron2/COCO-Detection/faster_rcnn_R_101_C4_3x/138204752/model_final_298dad.pkl
	// /home/u/.cache/resdet/models/d2-r101-c4-3x/model_final_298dad.pkl
	// http://mirror.local/models/COCO-Detection/faster_rcnn_R_101_C4_3x/138204752/model_final_298dad.pkl
}
