package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

// PythonPath is the interpreter of the parity tests: Debian's python3, whose
// python3-torch and python3-torchvision packages compute the references (a
// python3 earlier on the PATH, e.g. pyenv's, usually has no torch).
const PythonPath = "/usr/bin/python3"

// RequireTorchEnv is the variable that turns the skip of a parity test
// without torch into a failure when set to 1.
const RequireTorchEnv = "RESDET_REQUIRE_TORCH"

// pythonPath is PythonPath; the package's tests change it.
var pythonPath = PythonPath

// importChecks caches, per interpreter and module list, the error of
// importing the modules (nil when they import).
var importChecks sync.Map // string -> *importCheck

type importCheck struct {
	once sync.Once
	err  error
}

// importError imports torch, torchvision and modules with python, once per
// process for each list, and returns why that failed (nil if it did not).
func importError(python string, modules []string) error {
	mods := append([]string{"torch", "torchvision"}, modules...)
	key := python + "\x00" + strings.Join(mods, ",")
	v, _ := importChecks.LoadOrStore(key, &importCheck{})
	c := v.(*importCheck)
	c.once.Do(func() {
		out, err := exec.Command(python, "-c", "import "+strings.Join(mods, ", ")).CombinedOutput()
		if err != nil {
			c.err = fmt.Errorf("%s cannot import %s: %v\n%s", python, strings.Join(mods, ", "), err, bytes.TrimSpace(out))
		}
	})
	return c.err
}

// Python returns the interpreter of the parity tests (PythonPath) after
// checking that it imports torch, torchvision and the extra modules (e.g.
// "PIL", "numpy"). When it cannot, Python skips the test, or fails it when
// RESDET_REQUIRE_TORCH=1. The check runs once per process.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	if err := importError(pythonPath, modules); err != nil {
		if os.Getenv(RequireTorchEnv) == "1" {
			t.Fatalf("%v\n(%s=1: the torch parity tests must run)", err, RequireTorchEnv)
		}
		t.Skipf("skipping torch parity: %v\n(set %s=1 to fail instead)", err, RequireTorchEnv)
	}
	return pythonPath
}

// RunScript runs script (a path relative to the package folder, usually in
// testdata/) with args under Python (skipping as Python does) and returns
// its standard output. It fails the test, with the script's standard error,
// when the script fails.
func RunScript(t testing.TB, script string, args ...string) []byte {
	t.Helper()
	return RunScriptStdin(t, "", script, args...)
}

// RunScriptStdin is RunScript with stdin as the script's standard input.
func RunScriptStdin(t testing.TB, stdin, script string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(Python(t), append([]string{script}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// ScriptJSON runs script with args as RunScript does and decodes its
// standard output, one JSON value, into v.
func ScriptJSON(t testing.TB, v any, script string, args ...string) {
	t.Helper()
	out := RunScript(t, script, args...)
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("%s %s: output is not the JSON expected: %v\n%.500s", script, strings.Join(args, " "), err, out)
	}
}

// regenerated records the Regenerate calls already made in this process.
var regenerated sync.Map // string -> *importCheck (its err: the run's error)

// Regenerate runs script with args under PythonPath once per process (for a
// given script and arguments), for tests run with -update that rewrite
// committed fixtures. -update asks for torch, so its absence fails the test
// rather than skipping it.
func Regenerate(t testing.TB, script string, args ...string) {
	t.Helper()
	if err := importError(pythonPath, nil); err != nil {
		t.Fatalf("-update: %v", err)
	}
	key := script + "\x00" + strings.Join(args, "\x00")
	v, _ := regenerated.LoadOrStore(key, &importCheck{})
	c := v.(*importCheck)
	c.once.Do(func() {
		out, err := exec.Command(pythonPath, append([]string{script}, args...)...).CombinedOutput()
		if err != nil {
			c.err = fmt.Errorf("-update: %s %s: %v\n%s", script, strings.Join(args, " "), err, out)
		}
	})
	if c.err != nil {
		t.Fatal(c.err)
	}
}

// scriptDirs holds the ScriptDir runs of this process, by script and
// arguments.
var scriptDirs sync.Map // string -> *scriptDir

type scriptDir struct {
	once sync.Once
	dir  string
	err  error
}

// ScriptDir runs script with args and then the path of a new temporary
// folder as its last argument, under Python (skipping as Python does), once
// per process for a given script and arguments, and returns the folder: for
// fixtures generated at test time that are too large to commit. It fails
// the test, with the script's output, when the script fails. The folders
// stay until RemoveScriptDirs, which the package's TestMain calls after its
// tests.
func ScriptDir(t testing.TB, script string, args ...string) string {
	t.Helper()
	py := Python(t)
	v, _ := scriptDirs.LoadOrStore(script+"\x00"+strings.Join(args, "\x00"), &scriptDir{})
	d := v.(*scriptDir)
	d.once.Do(func() {
		dir, err := os.MkdirTemp("", "resdet-fixtures-")
		if err != nil {
			d.err = err
			return
		}
		d.dir = dir
		argv := slices.Concat([]string{script}, args, []string{dir})
		if out, err := exec.Command(py, argv...).CombinedOutput(); err != nil {
			d.err = fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	})
	if d.err != nil {
		t.Fatal(d.err)
	}
	return d.dir
}

// RemoveScriptDirs removes the folders ScriptDir made in this process (a
// later ScriptDir runs its script again).
func RemoveScriptDirs() {
	scriptDirs.Range(func(k, v any) bool {
		if d := v.(*scriptDir); d.dir != "" {
			os.RemoveAll(d.dir)
		}
		scriptDirs.Delete(k)
		return true
	})
}
