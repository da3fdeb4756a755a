package testutil

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTB records Skip and Fatal calls and stops the helper under test with
// a panic that run recovers.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	panic(f)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	panic(f)
}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}
func (f *fakeTB) Logf(format string, args ...any) {}
func (f *fakeTB) Fatal(args ...any) {
	f.failed = fmt.Sprint(args...)
	panic(f)
}

// run calls fn with a fakeTB and returns it.
func run(fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{}
	func() {
		defer func() {
			if r := recover(); r != nil && r != f {
				panic(r)
			}
		}()
		fn(f)
	}()
	return f
}

// mkdirs creates the folders and files (names ending in a slash are
// folders) under root.
func mkdirs(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSharedPath(t *testing.T) {
	for _, tc := range []struct {
		name    string
		layout  []string
		from    string
		parts   []string
		want    string // relative to the temporary root; "" for an error
		missing bool   // the error is errNoShared (no shared folder at all)
	}{
		{name: "beside the clone", layout: []string{"ci/repo/go.mod", "ci/repo/pkg/sub/", "ci/shared/fixtures/a.json"},
			from: "ci/repo/pkg/sub", parts: []string{"fixtures", "a.json"}, want: "ci/shared/fixtures/a.json"},
		{name: "from the repository root", layout: []string{"ci/repo/go.mod", "ci/shared/x/"},
			from: "ci/repo", parts: []string{"x"}, want: "ci/shared/x"},
		{name: "no parts", layout: []string{"ci/repo/go.mod", "ci/repo/pkg/", "ci/shared/"},
			from: "ci/repo/pkg", want: "ci/shared"},
		{name: "user clone without shared", layout: []string{"ci/repo/go.mod", "ci/repo/pkg/"},
			from: "ci/repo/pkg", parts: []string{"fixtures"}, missing: true},
		{name: "not above the root's parent", layout: []string{"top/ci/repo/go.mod", "top/ci/repo/pkg/", "top/shared/fixtures/"},
			from: "top/ci/repo/pkg", parts: []string{"fixtures"}, missing: true},
		{name: "a file named shared", layout: []string{"ci/repo/go.mod", "ci/repo/pkg/", "ci/shared"},
			from: "ci/repo/pkg", missing: true},
		{name: "shared without the fixture", layout: []string{"ci/repo/go.mod", "ci/repo/pkg/", "ci/shared/fixtures/"},
			from: "ci/repo/pkg", parts: []string{"fixtures", "b.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			mkdirs(t, root, tc.layout...)
			got, err := sharedPath(filepath.Join(root, tc.from), tc.parts...)
			if tc.want != "" {
				if err != nil {
					t.Fatal(err)
				}
				if want := filepath.Join(root, tc.want); got != want {
					t.Errorf("got %s, want %s", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %s, want an error", got)
			}
			if errors.Is(err, errNoShared) != tc.missing {
				t.Errorf("error %q: errNoShared %v, want %v", err, errors.Is(err, errNoShared), tc.missing)
			}
			if len(tc.parts) > 0 && !strings.Contains(err.Error(), tc.parts[len(tc.parts)-1]) {
				t.Errorf("error %q does not name %s", err, tc.parts[len(tc.parts)-1])
			}
		})
	}
}

// TestSharedDirSkipOrFail asks for a fixture that exists nowhere: the test
// is skipped, or failed with RESDET_REQUIRE_SHARED=1.
func TestSharedDirSkipOrFail(t *testing.T) {
	for _, tc := range []struct {
		env      string
		wantSkip bool
	}{{env: "", wantSkip: true}, {env: "0", wantSkip: true}, {env: "1"}} {
		t.Run("RESDET_REQUIRE_SHARED="+tc.env, func(t *testing.T) {
			t.Setenv(RequireSharedEnv, tc.env)
			f := run(func(tb testing.TB) { SharedDir(tb, "no-such-fixture.json") })
			msg := f.skipped + f.failed
			if (f.skipped != "") != tc.wantSkip || (f.failed != "") == tc.wantSkip {
				t.Errorf("skipped %q, failed %q; want skip %v", f.skipped, f.failed, tc.wantSkip)
			}
			if !strings.Contains(msg, "no-such-fixture.json") || !strings.Contains(msg, RequireSharedEnv) {
				t.Errorf("message %q should name the fixture and %s", msg, RequireSharedEnv)
			}
		})
	}
}

// TestPythonSkipOrFail points the package at an interpreter that does not
// exist: Python skips, or fails with RESDET_REQUIRE_TORCH=1, and so do the
// script runners; Regenerate always fails.
func TestPythonSkipOrFail(t *testing.T) {
	defer func(p string) { pythonPath = p }(pythonPath)
	pythonPath = filepath.Join(t.TempDir(), "python3")
	for _, tc := range []struct {
		name     string
		env      string
		call     func(testing.TB)
		wantSkip bool
	}{
		{name: "Python", call: func(tb testing.TB) { Python(tb) }, wantSkip: true},
		{name: "Python required", env: "1", call: func(tb testing.TB) { Python(tb, "PIL") }},
		{name: "RunScript", call: func(tb testing.TB) { RunScript(tb, "testdata/x.py") }, wantSkip: true},
		{name: "ScriptJSON required", env: "1", call: func(tb testing.TB) { ScriptJSON(tb, new(int), "testdata/x.py") }},
		{name: "Regenerate", call: func(tb testing.TB) { Regenerate(tb, "testdata/x.py") }},
		{name: "ScriptDir", call: func(tb testing.TB) { ScriptDir(tb, "testdata/x.py", "large") }, wantSkip: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(RequireTorchEnv, tc.env)
			f := run(tc.call)
			if (f.skipped != "") != tc.wantSkip || (f.failed != "") == tc.wantSkip {
				t.Errorf("skipped %q, failed %q; want skip %v", f.skipped, f.failed, tc.wantSkip)
			}
			if msg := f.skipped + f.failed; !strings.Contains(msg, pythonPath) || !strings.Contains(msg, "torch") {
				t.Errorf("message %q should name the interpreter and torch", msg)
			}
		})
	}
}

// TestScripts runs a small script (plain Python, so that it starts fast)
// under the real interpreter, skipped without torch.
func TestScripts(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.py")
	src := "import json, sys\n" +
		"if sys.argv[1] == 'fail':\n    sys.exit('bad argument')\n" +
		"if sys.argv[1] == 'write':\n    open(sys.argv[2], 'w').write(sys.stdin.read() or 'none')\n" +
		"if sys.argv[1] == 'dir':\n    open(sys.argv[-1] + '/f.txt', 'a').write(sys.argv[2])\n" +
		"if sys.argv[1] in ('fixture', 'large'):\n    open(sys.argv[-1] + '/f.json', 'w').write('{\"c\": {\"n\": 1}}')\n" +
		"print(json.dumps({'arg': sys.argv[1], 'sum': sum(range(5))}))\n"
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Python(t); got != PythonPath {
		t.Errorf("Python = %s, want %s", got, PythonPath)
	}
	var v struct {
		Arg string
		Sum int
	}
	ScriptJSON(t, &v, script, "a")
	if v.Arg != "a" || v.Sum != 10 {
		t.Errorf("ScriptJSON decoded %+v, want {a 10}", v)
	}
	out := filepath.Join(dir, "out.txt")
	RunScriptStdin(t, "from stdin", script, "write", out)
	if b, err := os.ReadFile(out); err != nil || string(b) != "from stdin" {
		t.Errorf("the script read %q (%v), want %q", b, err, "from stdin")
	}
	f := run(func(tb testing.TB) { RunScript(tb, script, "fail") })
	if !strings.Contains(f.failed, "bad argument") || !strings.Contains(f.failed, "s.py fail") {
		t.Errorf("failure %q should give the script, its arguments and its stderr", f.failed)
	}
	f = run(func(tb testing.TB) { ScriptJSON(tb, new([]int), script, "b") })
	if !strings.Contains(f.failed, "not the JSON expected") {
		t.Errorf("decoding an object into a slice: failure %q", f.failed)
	}
	Regenerate(t, script, "write", out)
	if b, _ := os.ReadFile(out); string(b) != "none" {
		t.Errorf("Regenerate: the script wrote %q", b)
	}
	os.Remove(out)
	Regenerate(t, script, "write", out) // once per process
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("Regenerate ran the same script twice (%v)", err)
	}

	// ScriptDir: once per script and arguments, until RemoveScriptDirs.
	d1 := ScriptDir(t, script, "dir", "x")
	if d2 := ScriptDir(t, script, "dir", "x"); d2 != d1 {
		t.Errorf("ScriptDir twice: %s, then %s", d1, d2)
	}
	if b, err := os.ReadFile(filepath.Join(d1, "f.txt")); err != nil || string(b) != "x" {
		t.Errorf("ScriptDir: the script wrote %q (%v), want %q once", b, err, "x")
	}
	d3 := ScriptDir(t, script, "dir", "y")
	if b, _ := os.ReadFile(filepath.Join(d3, "f.txt")); d3 == d1 || string(b) != "y" {
		t.Errorf("ScriptDir with another argument: %s holds %q, want a new folder with %q", d3, b, "y")
	}
	f = run(func(tb testing.TB) { ScriptDir(tb, script, "fail") })
	if !strings.Contains(f.failed, "bad argument") || !strings.Contains(f.failed, "s.py fail") {
		t.Errorf("ScriptDir of a failing script: failure %q should give the script, its arguments and its output", f.failed)
	}
	RemoveScriptDirs()
	for _, d := range []string{d1, d3} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s after RemoveScriptDirs: %v, want removed", d, err)
		}
	}
	if d4 := ScriptDir(t, script, "dir", "x"); d4 == d1 {
		t.Errorf("ScriptDir after RemoveScriptDirs returned the removed folder")
	}

	// Fixtures: Load runs `script fixture DIR` first only when *Update is
	// set; Large reads what `script large TMPDIR` wrote.
	upd := false
	fx := Fixtures{Script: script, Args: []string{"fixture"}, Dir: t.TempDir(), Update: &upd}
	if f := run(func(tb testing.TB) { fx.Load(tb, "f.json") }); !strings.Contains(f.failed, "f.json") {
		t.Errorf("Fixtures.Load without -update ran the script (failure %q, want the missing f.json)", f.failed)
	}
	upd = true
	if c := fx.Load(t, "f.json")["c"]; !c.Has("n") {
		t.Errorf("Fixtures.Load with -update: case c is %+v, want field n", c)
	}
	if c := LoadFixture(t, fx.Large(t), "f.json")["c"]; !c.Has("n") {
		t.Errorf("Fixtures.Large: case c is %+v, want field n", c)
	}
	RemoveScriptDirs()
}

// The arrays below were written by numpy (little-endian): f32 [1.5, -2, 0.1]
// and i64 [3, -1].
const fixtureJSON = `{"c1": {"x": {"shape": [3], "dtype": "f32", "b64": "AADAPwAAAMDNzMw9"},
 "idx": {"shape": [2, 1], "dtype": "i64", "b64": "AwAAAAAAAAD//////////w=="},
 "short": {"shape": [4], "dtype": "f32", "b64": "AADAPwAAAMDNzMw9"},
 "thresh": 0.7, "paper": true}}`

func TestLoadFixture(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.json"), []byte(fixtureJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := LoadFixture(t, dir, "f.json")
	c, ok := cases["c1"]
	if len(cases) != 1 || !ok {
		t.Fatalf("cases %v, want c1 only", cases)
	}
	x, shape := c.F32(t, "x")
	if fmt.Sprint(x, shape) != fmt.Sprint([]float32{1.5, -2, 0.1}, []int{3}) {
		t.Errorf("x = %v %v", x, shape)
	}
	if idx := c.Ints(t, "idx"); fmt.Sprint(idx) != "[3 -1]" {
		t.Errorf("idx = %v", idx)
	}
	var th float64
	if c.Scalar(t, "thresh", &th); th != 0.7 || !c.Has("thresh") || c.Has("nope") {
		t.Errorf("thresh = %v", th)
	}
	if n, b := c.Num(t, "thresh"), c.Bool(t, "paper"); n != 0.7 || !b {
		t.Errorf("Num(thresh) = %v, Bool(paper) = %v; want 0.7, true", n, b)
	}
	for _, tc := range []struct {
		name string
		call func(testing.TB)
		want string
	}{
		{name: "missing field", call: func(tb testing.TB) { c.F32(tb, "nope") }, want: `no field "nope"`},
		{name: "wrong dtype", call: func(tb testing.TB) { c.F32(tb, "idx") }, want: "dtype i64, want f32"},
		{name: "size against shape", call: func(tb testing.TB) { c.F32(tb, "short") }, want: "12 bytes for shape [4]"},
		{name: "scalar as array", call: func(tb testing.TB) { c.Ints(tb, "thresh") }, want: `field "thresh"`},
		{name: "array as number", call: func(tb testing.TB) { c.Num(tb, "x") }, want: `field "x"`},
		{name: "number as boolean", call: func(tb testing.TB) { c.Bool(tb, "thresh") }, want: `field "thresh"`},
		{name: "missing file", call: func(tb testing.TB) { LoadFixture(tb, dir, "none.json") }, want: "none.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := run(tc.call)
			if !strings.Contains(f.failed, tc.want) {
				t.Errorf("failure %q, want one containing %q", f.failed, tc.want)
			}
		})
	}
}

func TestMaxRelErr(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want []float32
		err       float64
	}{
		{name: "equal", got: []float32{1, -2}, want: []float32{1, -2}, err: 0},
		{name: "relative to the largest magnitude", got: []float32{0.5, -4}, want: []float32{0, -4}, err: 0.125},
		{name: "zero reference", got: []float32{0.25}, want: []float32{0}, err: 0.25},
		{name: "length", got: []float32{1}, want: []float32{1, 2}, err: math.Inf(1)},
		{name: "NaN", got: []float32{float32(math.NaN()), 1}, want: []float32{1, 1}, err: math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := MaxRelErr(tc.got, tc.want)
			if e != tc.err && !(math.IsNaN(e) && math.IsNaN(tc.err)) {
				t.Errorf("MaxRelErr = %g, want %g", e, tc.err)
			}
		})
	}
}

// TestExpectClose: ExpectClose and ExpectScalarRel pass values within the
// bounds and fail values beyond them, NaN and (ExpectClose) a length
// mismatch; ExpectClose returns the largest absolute difference.
func TestExpectClose(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name      string
		got, want []float32
		fail      bool
		worst     float64 // -1: not checked
	}{
		{name: "within atol", got: []float32{1, 2.0625}, want: []float32{1, 2}, worst: 0.0625},
		{name: "within rtol", got: []float32{101}, want: []float32{100}, worst: 1},
		{name: "beyond", got: []float32{1, 2.5}, want: []float32{1, 2}, fail: true, worst: 0.5},
		{name: "NaN", got: []float32{nan}, want: []float32{1}, fail: true, worst: -1},
		{name: "length", got: []float32{1}, want: []float32{1, 2}, fail: true, worst: -1},
	} {
		var worst float64
		f := run(func(tb testing.TB) { worst = ExpectClose(tb, "x", tc.got, tc.want, 0.01, 0.1) })
		if failed := f.failed != ""; failed != tc.fail {
			t.Errorf("ExpectClose %s: failed %v (%q), want %v", tc.name, failed, f.failed, tc.fail)
		}
		if tc.worst >= 0 && worst != tc.worst {
			t.Errorf("ExpectClose %s = %g, want %g", tc.name, worst, tc.worst)
		}
	}
	for _, tc := range []struct {
		name      string
		got, want float64
		fail      bool
	}{
		{"equal", 2, 2, false},
		{"within", 2.001, 2, false},
		{"beyond", 2.1, 2, true},
		{"NaN", math.NaN(), 2, true},
	} {
		f := run(func(tb testing.TB) { ExpectScalarRel(tb, "loss", tc.got, tc.want, 1e-3) })
		if failed := f.failed != ""; failed != tc.fail {
			t.Errorf("ExpectScalarRel %s: failed %v (%q), want %v", tc.name, failed, f.failed, tc.fail)
		}
	}
}

// TestSharedDirBesideClone finds the real shared folder (skipped in a clone
// without one): a folder "fixtures" beside the repository, not inside it.
func TestSharedDirBesideClone(t *testing.T) {
	p := SharedDir(t, "fixtures")
	fi, err := os.Stat(p)
	if err != nil || !fi.IsDir() {
		t.Fatalf("%s: not a folder (%v)", p, err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(wd)) // internal/testutil -> repository root
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("%s is not the repository root: %v", root, err)
	}
	if want := filepath.Join(filepath.Dir(root), "shared", "fixtures"); p != want {
		t.Errorf("SharedDir = %s, want %s", p, want)
	}
}

// TestBF16SkipOrFail: a reason skips the test, or fails it with
// RESDET_REQUIRE_BF16=1; no reason lets it run.
func TestBF16SkipOrFail(t *testing.T) {
	why := errors.New("no bf16 on this CPU (oneDNN ISA avx2)")
	for _, tc := range []struct {
		env            string
		why            error
		wantSkip, fail bool
	}{
		{env: "", why: why, wantSkip: true}, {env: "0", why: why, wantSkip: true}, {env: "1", why: why, fail: true},
		{env: "", why: nil}, {env: "1", why: nil},
	} {
		t.Run(fmt.Sprintf("RESDET_REQUIRE_BF16=%s,reason=%v", tc.env, tc.why != nil), func(t *testing.T) {
			t.Setenv(RequireBF16Env, tc.env)
			f := run(func(tb testing.TB) { BF16(tb, tc.why) })
			if (f.skipped != "") != tc.wantSkip || (f.failed != "") != tc.fail {
				t.Errorf("skipped %q, failed %q; want skip %v, fail %v", f.skipped, f.failed, tc.wantSkip, tc.fail)
			}
			if msg := f.skipped + f.failed; tc.why != nil && (!strings.Contains(msg, "avx2") || !strings.Contains(msg, RequireBF16Env)) {
				t.Errorf("message %q should give the reason and %s", msg, RequireBF16Env)
			}
		})
	}
}

// TestOneLineError: OneLineError passes a one-line error holding every
// wanted string and fails a nil error, a two-line one and a missing string.
func TestOneLineError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		fail bool
	}{
		{"ok", errors.New("f.pkl: tensor x: bad shape"), false},
		{"nil", nil, true},
		{"two lines", errors.New("f.pkl:\ntensor x: bad shape"), true},
		{"missing", errors.New("f.pkl: bad"), true},
	} {
		want := []string{"f.pkl", "bad"}
		if tc.name == "missing" {
			want = []string{"f.pkl", "tensor x"}
		}
		f := run(func(tb testing.TB) { OneLineError(tb, tc.err, want...) })
		if failed := f.failed != ""; failed != tc.fail {
			t.Errorf("%s: failed %v (%q), want %v", tc.name, failed, f.failed, tc.fail)
		}
	}
}
