package box

import (
	"flag"
	"testing"

	"resdet/internal/testutil"
)

var update = flag.Bool("update", false, "regenerate the torchvision fixtures in testdata/ with ../detection/testdata/gen_fixtures.py")

// fixtures are the torchvision fixtures of box, written by
// ../detection/testdata/gen_fixtures.py.
var fixtures = testutil.Fixtures{Script: "../detection/testdata/gen_fixtures.py", Args: []string{"box"}, Dir: "testdata", Update: update}

// fixtureBoxes returns the [N, 4] float32 field of c as boxes.
func fixtureBoxes(t *testing.T, c testutil.FixtureCase, field string) []Box {
	t.Helper()
	v, shape := c.F32(t, field)
	return toBoxes(t, v, shape)
}
