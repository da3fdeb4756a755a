package box

import (
	"flag"
	"testing"

	"resdet/internal/testutil"
)

var update = flag.Bool("update", false, "regenerate the torchvision fixtures in testdata/ with ../detection/testdata/gen_fixtures.py")

// loadFixture reads testdata/name, a fixture of torchvision's outputs
// written by ../detection/testdata/gen_fixtures.py (regenerating the whole
// directory first when -update is set), and returns its cases.
func loadFixture(t *testing.T, name string) map[string]testutil.FixtureCase {
	t.Helper()
	if *update {
		testutil.Regenerate(t, "../detection/testdata/gen_fixtures.py", "box", "testdata")
	}
	return testutil.LoadFixture(t, "testdata", name)
}

// fixtureBoxes returns the [N, 4] float32 field of c as boxes.
func fixtureBoxes(t *testing.T, c testutil.FixtureCase, field string) []Box {
	t.Helper()
	v, shape := c.F32(t, field)
	return toBoxes(t, v, shape)
}
