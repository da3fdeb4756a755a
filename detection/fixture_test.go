package detection

import (
	"flag"
	"testing"

	"resdet/box"
	"resdet/internal/testutil"
)

var update = flag.Bool("update", false, "regenerate the torchvision fixtures in testdata/ with testdata/gen_fixtures.py and testdata/gen_loss_fixtures.py")

// fixtures are the torchvision fixtures of testdata/gen_fixtures.py, and
// lossFixtures those of testdata/gen_loss_fixtures.py.
var (
	fixtures     = testutil.Fixtures{Script: "testdata/gen_fixtures.py", Args: []string{"detection"}, Dir: "testdata", Update: update}
	lossFixtures = testutil.Fixtures{Script: "testdata/gen_loss_fixtures.py", Dir: "testdata", Update: update}
)

// TestMain removes the large fixtures after the tests.
func TestMain(m *testing.M) { testutil.Main(m) }

// fixtureBoxes returns the [N, 4] float32 field of c as boxes (nil when
// it is empty).
func fixtureBoxes(t testing.TB, c testutil.FixtureCase, field string) []box.Box {
	t.Helper()
	v, shape := c.F32(t, field)
	if len(v) == 0 {
		return nil
	}
	if len(shape) != 2 || shape[1] != 4 {
		t.Fatalf("fixture field %q has shape %v, want [N, 4]", field, shape)
	}
	out := make([]box.Box, shape[0])
	for i := range out {
		out[i] = box.Box{X1: v[4*i], Y1: v[4*i+1], X2: v[4*i+2], Y2: v[4*i+3]}
	}
	return out
}
