package box_test

import (
	"fmt"

	"resdet/box"
)

func ExampleNMS() {
	boxes := []box.Box{
		{X1: 0, Y1: 0, X2: 10, Y2: 10},
		{X1: 1, Y1: 1, X2: 11, Y2: 11}, // IoU 0.68 with the first
		{X1: 20, Y1: 0, X2: 30, Y2: 10},
	}
	scores := []float32{0.8, 0.9, 0.3}
	fmt.Println(box.NMS(boxes, scores, 0.5))
	// Output: [1 2]
}

func ExampleBatchedNMS() {
	boxes := []box.Box{{X1: 0, Y1: 0, X2: 10, Y2: 10}, {X1: 1, Y1: 1, X2: 11, Y2: 11}}
	scores := []float32{0.8, 0.9}
	fmt.Println(box.BatchedNMS(boxes, scores, []int{1, 1}, 0.5)) // same class
	fmt.Println(box.BatchedNMS(boxes, scores, []int{1, 2}, 0.5)) // different classes
	// Output:
	// [1]
	// [1 0]
}

func ExampleBoxCoder() {
	c := box.NewBoxCoder(10, 10, 5, 5)
	anchor := box.Box{X1: 0, Y1: 0, X2: 16, Y2: 16}
	gt := box.Box{X1: 8, Y1: 0, X2: 40, Y2: 16}
	d := c.EncodeOne(gt, anchor)
	fmt.Printf("%.4f\n", d)
	fmt.Println(c.DecodeOne(d, anchor))
	// Output:
	// [10.0000 0.0000 3.4657 0.0000]
	// {8 0 40 16}
}

func ExampleMatcher() {
	gt := []box.Box{{X1: 0, Y1: 0, X2: 10, Y2: 10}}
	anchors := []box.Box{
		{X1: 0, Y1: 0, X2: 10, Y2: 9},    // IoU 0.9: matched
		{X1: 0, Y1: 0, X2: 10, Y2: 5},    // IoU 0.5: between thresholds
		{X1: 50, Y1: 50, X2: 60, Y2: 60}, // IoU 0: background
	}
	m := box.Matcher{High: 0.7, Low: 0.3}
	matches, err := m.Match(box.IoUMatrix(gt, anchors))
	if err != nil {
		panic(err)
	}
	fmt.Println(matches[0], matches[1] == box.BetweenThresholds, matches[2] == box.BelowLowThreshold)
	// Output: 0 true true
}
