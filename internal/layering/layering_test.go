package layering

import (
	"os/exec"
	"strings"
	"testing"
)

// order lists resdet's packages bottom-up, as the README's architecture
// section does: a package may import only packages at a lower level.
// Packages on one line share a level and may import each other.
var order = [][]string{
	{"box", "internal/atomicfile", "internal/cli", "internal/cli/clitest", "internal/testutil", "internal/testutil/gradtest", "internal/layering", "internal/mpi", "internal/vec"},
	{"format", "format/coco", "format/voc", "format/classlist"},
	{"weights"},
	{"nn"},
	{"ops", "optim"},
	{"backbone"},
	{"fpn"},
	{"datasets"},
	{"datasets/synth", "datasets/imageio/pillow"},
	{"datasets/imageio"},
	{"eval", "eval/evaltest", "eval/evaltest/gencoco"},
	{"detection"},
	{"checkpoint"},
	{"download"},
	{"zoo"},
	{"train"},
	{"inference", "inference/inferencetest"},
	{"batch"},
	{"cmd/detect", "cmd/train-det", "cmd/eval-det"},
}

// TestImportsPointDown lists every package's resdet imports with go list
// and checks each against order. A package missing from order fails too, so
// a new package must be placed.
func TestImportsPointDown(t *testing.T) {
	level := map[string]int{}
	for i, ps := range order {
		for _, p := range ps {
			level[p] = i
		}
	}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", "resdet/...").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		pkg = strings.TrimPrefix(pkg, "resdet/")
		lp, ok := level[pkg]
		if !ok {
			t.Errorf("package %s is not placed in the layering order (add it to order and to the README's architecture section)", pkg)
			continue
		}
		for _, imp := range strings.Fields(imports) {
			dep, ours := strings.CutPrefix(imp, "resdet/")
			if !ours {
				continue
			}
			ld, ok := level[dep]
			if !ok {
				continue // reported as a package of its own
			}
			if ld > lp {
				t.Errorf("%s (level %d) imports %s (level %d): imports must point down", pkg, lp, dep, ld)
			}
			checked++
		}
	}
	if checked < 50 {
		t.Errorf("only %d imports checked: go list output not as expected", checked)
	}
	t.Logf("%d resdet imports checked", checked)
}
