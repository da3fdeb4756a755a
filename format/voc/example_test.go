package voc_test

import (
	"fmt"
	"strings"

	"resdet/format/voc"
)

func ExampleReadResults() {
	dets, err := voc.ReadResults(strings.NewReader("000005 0.9 1 1 500 375\n000007 0.25 10 20 30 40\n"), "comp4_det_test_car.txt")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range dets {
		fmt.Println(d.Image, d.Score, d.Box, voc.ToBox(d.Box))
	}
	_, err = voc.ReadResults(strings.NewReader("000005 0.9 1 1 500\n"), "comp4_det_test_car.txt")
	fmt.Println(err)
	// Output:
	// 000005 0.9 {1 1 500 375} {0 0 500 375}
	// 000007 0.25 {10 20 30 40} {9 19 30 40}
	// comp4_det_test_car.txt: line 1: 5 fields, want 6 (image score xmin ymin xmax ymax)
}
