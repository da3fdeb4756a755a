package weights

import (
	"fmt"
	"sort"
)

// Tensor is a dense row-major float32 tensor.
type Tensor struct {
	Shape []int
	Data  []float32 // len(Data) == product of Shape (1 for a scalar)
}

// NumElements returns the product of the shape (1 for a scalar).
func NumElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// State is a checkpoint: parameter name -> tensor (names as described in the package doc).
type State map[string]Tensor

// Names returns the names in s, sorted.
func (s State) Names() []string {
	names := make([]string, 0, len(s))
	for k := range s {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Get returns the tensor called name and checks its shape. The error names the tensor
// and both shapes when it is missing or has another shape.
func (s State) Get(name string, shape ...int) (Tensor, error) {
	t, ok := s[name]
	if !ok {
		return Tensor{}, fmt.Errorf("weights: missing tensor %q (want shape %v)", name, shape)
	}
	if !sameShape(t.Shape, shape) {
		return Tensor{}, fmt.Errorf("weights: tensor %q has shape %v, want %v", name, t.Shape, shape)
	}
	return t, nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
