//go:build !mpi

package mpi

import (
	"errors"
	"strings"
	"testing"
)

func TestInitWithoutTag(t *testing.T) {
	c, err := Init()
	if c != nil || !errors.Is(err, ErrNotBuilt) {
		t.Fatalf("Init() = %v, %v; want nil, ErrNotBuilt", c, err)
	}
	for _, want := range []string{"go build -tags mpi", "libopenmpi-dev"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Init error %q does not say %q", err, want)
		}
	}
	if Enabled {
		t.Error("Enabled without the mpi tag")
	}
}
