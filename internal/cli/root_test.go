package cli

import (
	"errors"
	"testing"

	"github.com/spf13/cobra"
)

func TestMainExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		runErr error
		argv   []string
		code   int
		stderr string
	}{
		{name: "ok", code: 0, stderr: ""},
		{name: "run error", runErr: errors.New("disk full"), code: 1, stderr: "demo: disk full\n"},
		{name: "usage error", runErr: Usagef("--n must be positive, got %d", -1), code: 2,
			stderr: "demo: --n must be positive, got -1\nRun 'demo --help' for usage.\n"},
		{name: "flag error", argv: []string{"--nope"}, code: 2,
			stderr: "demo: unknown flag: --nope\nRun 'demo --help' for usage.\n"},
		{name: "version", argv: []string{"--version"}, code: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, out, errOut := Test()
			root := &cobra.Command{Use: "demo", Version: "1.2.3", RunE: func(*cobra.Command, []string) error { return tt.runErr }}
			SetupRoot(root, ios)
			root.SetArgs(tt.argv)
			if code := Main(root); code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			if errOut.String() != tt.stderr {
				t.Errorf("stderr %q, want %q", errOut.String(), tt.stderr)
			}
			if tt.name == "version" && out.String() != "demo 1.2.3\n" {
				t.Errorf("--version printed %q, want %q", out.String(), "demo 1.2.3\n")
			}
		})
	}
}
