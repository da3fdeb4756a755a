package testutil

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FixtureCase is one named case of a fixture written by the torch scripts
// of box, ops and detection (detection/testdata/gen_fixtures.py,
// ops/testdata/gen_fixtures.py, detection/testdata/gen_loss_fixtures.py):
// field name -> raw JSON. Array fields
// are {"shape": [...], "dtype": "f32"|"i64", "b64": base64 of the
// little-endian row-major data}, so float32 values round-trip exactly.
type FixtureCase struct {
	file   string
	name   string
	fields map[string]json.RawMessage
}

// fixtureArray is an array field of a FixtureCase.
type fixtureArray struct {
	Shape []int  `json:"shape"`
	Dtype string `json:"dtype"`
	B64   string `json:"b64"`
}

// LoadFixture reads the fixture file dir/name ({case name: {field:
// value}}) and returns its cases. It fails the test if the file cannot be
// read or parsed or has no case.
func LoadFixture(t testing.TB, dir, name string) map[string]FixtureCase {
	t.Helper()
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read fixture: %v (regenerate with go test -update)", err)
	}
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("parse fixture %s: %v", path, err)
	}
	if len(raw) == 0 {
		t.Fatalf("fixture %s has no cases", path)
	}
	cases := make(map[string]FixtureCase, len(raw))
	for k, fields := range raw {
		cases[k] = FixtureCase{file: path, name: k, fields: fields}
	}
	return cases
}

// Fixtures names one torch script's fixtures for a package's tests: the
// files committed in Dir, which `Script Args... Dir` rewrites when *Update
// is set (the package's -update flag; nil: never), and those too large to
// commit, which `Script large TMPDIR` writes at test time.
type Fixtures struct {
	Script string
	Args   []string
	Dir    string
	Update *bool
}

// Load reads the fixture Dir/name with LoadFixture, rerunning the script
// first (once per process) when *f.Update is set.
func (f Fixtures) Load(t testing.TB, name string) map[string]FixtureCase {
	t.Helper()
	if f.Update != nil && *f.Update {
		Regenerate(t, f.Script, append(slices.Clone(f.Args), f.Dir)...)
	}
	return LoadFixture(t, f.Dir, name)
}

// Large returns the folder where `Script large` wrote the fixtures too
// large to commit (ScriptDir: run once per test binary, skipping as Python
// does; Main removes it after the tests).
func (f Fixtures) Large(t testing.TB) string {
	t.Helper()
	return ScriptDir(t, f.Script, "large")
}

// Main is the TestMain of packages that use ScriptDir (or Fixtures.Large):
// it runs the tests, removes the folders ScriptDir made and exits with the
// tests' code.
func Main(m *testing.M) {
	code := m.Run()
	RemoveScriptDirs()
	os.Exit(code)
}

// Raw returns the JSON of field, failing the test if the case has none.
func (c FixtureCase) Raw(t testing.TB, field string) json.RawMessage {
	t.Helper()
	r, ok := c.fields[field]
	if !ok {
		t.Fatalf("%s: case %q has no field %q", c.file, c.name, field)
	}
	return r
}

// Has reports whether the case has field.
func (c FixtureCase) Has(field string) bool {
	_, ok := c.fields[field]
	return ok
}

// array decodes the array field, checking its dtype and its size.
func (c FixtureCase) array(t testing.TB, field, dtype string, size int) ([]byte, []int) {
	t.Helper()
	var a fixtureArray
	if err := json.Unmarshal(c.Raw(t, field), &a); err != nil {
		t.Fatalf("%s: case %q field %q: %v", c.file, c.name, field, err)
	}
	if a.Dtype != dtype {
		t.Fatalf("%s: case %q field %q has dtype %s, want %s", c.file, c.name, field, a.Dtype, dtype)
	}
	b, err := base64.StdEncoding.DecodeString(a.B64)
	if err != nil {
		t.Fatalf("%s: case %q field %q: %v", c.file, c.name, field, err)
	}
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	if len(b) != n*size {
		t.Fatalf("%s: case %q field %q: %d bytes for shape %v of %s", c.file, c.name, field, len(b), a.Shape, dtype)
	}
	return b, a.Shape
}

// F32 returns the float32 array field and its shape.
func (c FixtureCase) F32(t testing.TB, field string) ([]float32, []int) {
	t.Helper()
	b, shape := c.array(t, field, "f32", 4)
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, shape
}

// Ints returns the int64 array field as ints.
func (c FixtureCase) Ints(t testing.TB, field string) []int {
	t.Helper()
	b, _ := c.array(t, field, "i64", 8)
	out := make([]int, len(b)/8)
	for i := range out {
		out[i] = int(int64(binary.LittleEndian.Uint64(b[8*i:])))
	}
	return out
}

// Scalar decodes the JSON of field into v.
func (c FixtureCase) Scalar(t testing.TB, field string, v any) {
	t.Helper()
	if err := json.Unmarshal(c.Raw(t, field), v); err != nil {
		t.Fatalf("%s: case %q field %q: %v", c.file, c.name, field, err)
	}
}

// Num returns the number field as a float64.
func (c FixtureCase) Num(t testing.TB, field string) float64 {
	t.Helper()
	var v float64
	c.Scalar(t, field, &v)
	return v
}

// Bool returns the boolean field.
func (c FixtureCase) Bool(t testing.TB, field string) bool {
	t.Helper()
	var v bool
	c.Scalar(t, field, &v)
	return v
}
