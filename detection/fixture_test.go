package detection

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"resdet/box"
	"resdet/internal/testutil"
)

var update = flag.Bool("update", false, "regenerate the torchvision fixtures in testdata/ with testdata/gen_fixtures.py")

// fixtureArray is one array of a fixture: see the gen_fixtures.py docstring.
type fixtureArray struct {
	Shape []int  `json:"shape"`
	Dtype string `json:"dtype"`
	B64   string `json:"b64"`
}

// fixtureCase is one named case of a fixture file: field name -> raw JSON.
type fixtureCase map[string]json.RawMessage

// loadFixture reads testdata/name (regenerating the whole directory first
// when -update is set) and returns its cases.
func loadFixture(t testing.TB, name string) map[string]fixtureCase {
	t.Helper()
	if *update {
		regenerate(t)
	}
	return loadFixtureFrom(t, "testdata", name)
}

// loadFixtureFrom reads the fixture dir/name.
func loadFixtureFrom(t testing.TB, dir, name string) map[string]fixtureCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("read fixture: %v (regenerate with go test -update)", err)
	}
	var cases map[string]fixtureCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatalf("parse fixture %s: %v", name, err)
	}
	if len(cases) == 0 {
		t.Fatalf("fixture %s has no cases", name)
	}
	return cases
}

// largeFixtures runs `gen_fixtures.py large` into a temporary directory
// once per test binary and returns it. It skips the test when
// /usr/bin/python3 cannot import torch, unless RESDET_REQUIRE_TORCH=1.
func largeFixtures(t *testing.T) string {
	t.Helper()
	py := testutil.Python(t)
	largeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "resdet-detection-fixtures-")
		if err != nil {
			largeErr = err
			return
		}
		largeDir = dir
		out, err := exec.Command(py, "testdata/gen_fixtures.py", "large", dir).CombinedOutput()
		if err != nil {
			largeErr = fmt.Errorf("gen_fixtures.py large: %v\n%s", err, out)
		}
	})
	if largeErr != nil {
		t.Fatal(largeErr)
	}
	return largeDir
}

var (
	largeOnce sync.Once
	largeDir  string
	largeErr  error
)

// TestMain removes the large fixtures after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if largeDir != "" {
		os.RemoveAll(largeDir)
	}
	os.Exit(code)
}

var regenerated bool

func regenerate(t testing.TB) {
	t.Helper()
	if regenerated {
		return
	}
	cmd := exec.Command("/usr/bin/python3", "testdata/gen_fixtures.py", "detection", "testdata")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gen_fixtures.py detection: %v\n%s", err, out)
	}
	regenerated = true
}

func (c fixtureCase) raw(t testing.TB, field string) json.RawMessage {
	t.Helper()
	r, ok := c[field]
	if !ok {
		t.Fatalf("fixture case has no field %q", field)
	}
	return r
}

func (c fixtureCase) array(t testing.TB, field string) fixtureArray {
	t.Helper()
	var a fixtureArray
	if err := json.Unmarshal(c.raw(t, field), &a); err != nil {
		t.Fatalf("field %q: %v", field, err)
	}
	return a
}

func (c fixtureCase) f32(t testing.TB, field string) ([]float32, []int) {
	t.Helper()
	a := c.array(t, field)
	if a.Dtype != "f32" {
		t.Fatalf("field %q has dtype %s, want f32", field, a.Dtype)
	}
	b, err := base64.StdEncoding.DecodeString(a.B64)
	if err != nil {
		t.Fatalf("field %q: %v", field, err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, a.Shape
}

func (c fixtureCase) ints(t testing.TB, field string) []int {
	t.Helper()
	a := c.array(t, field)
	if a.Dtype != "i64" {
		t.Fatalf("field %q has dtype %s, want i64", field, a.Dtype)
	}
	b, err := base64.StdEncoding.DecodeString(a.B64)
	if err != nil {
		t.Fatalf("field %q: %v", field, err)
	}
	out := make([]int, len(b)/8)
	for i := range out {
		out[i] = int(int64(binary.LittleEndian.Uint64(b[8*i:])))
	}
	return out
}

func (c fixtureCase) scalar(t testing.TB, field string, v any) {
	t.Helper()
	if err := json.Unmarshal(c.raw(t, field), v); err != nil {
		t.Fatalf("field %q: %v", field, err)
	}
}

func (c fixtureCase) boxes(t testing.TB, field string) []box.Box {
	t.Helper()
	v, shape := c.f32(t, field)
	if len(v) == 0 {
		return nil
	}
	if len(shape) != 2 || shape[1] != 4 {
		t.Fatalf("field %q has shape %v, want [N, 4]", field, shape)
	}
	out := make([]box.Box, shape[0])
	for i := range out {
		out[i] = box.Box{X1: v[4*i], Y1: v[4*i+1], X2: v[4*i+2], Y2: v[4*i+3]}
	}
	return out
}
