package synth_test

import (
	"fmt"

	"resdet/datasets/synth"
)

func ExampleClasses() {
	fmt.Println(synth.Classes())
	// Output: [circle square triangle ellipse star cross]
}
