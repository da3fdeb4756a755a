package testutil

import (
	"strings"
	"testing"
)

// OneLineError fails the test unless err is a non-nil, one-line error
// whose text contains every string of want (a bad-input error must name
// the file and the field in one line).
func OneLineError(t testing.TB, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error has several lines: %q", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}
