// Package clitest runs the commands' cobra trees in tests.
package clitest

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"resdet/internal/cli"
)

// Execute runs cmd with argv, its output going to ios, and checks the
// error. With wantErr set, the command must fail with an error containing
// it and Execute returns false (nothing more to check); otherwise it must
// succeed and Execute returns true.
func Execute(t testing.TB, cmd *cobra.Command, ios *cli.IOStreams, argv []string, wantErr string) bool {
	t.Helper()
	cmd.SetArgs(argv)
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	err := cmd.Execute()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v, want one containing %q", err, wantErr)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// Main builds a root command with newRoot on buffered streams (cli.Test),
// runs it on argv as a process would (cli.Main) and returns the exit code
// and what it wrote to standard output and standard error.
func Main(newRoot func(*cli.IOStreams) *cobra.Command, argv ...string) (code int, stdout, stderr string) {
	ios, _, out, errOut := cli.Test()
	root := newRoot(ios)
	root.SetArgs(argv)
	code = cli.Main(root)
	return code, out.String(), errOut.String()
}
