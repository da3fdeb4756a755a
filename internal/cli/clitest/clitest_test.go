package clitest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/spf13/cobra"

	"resdet/internal/cli"
)

func TestMainRunsRoot(t *testing.T) {
	newRoot := func(ios *cli.IOStreams) *cobra.Command {
		root := &cobra.Command{Use: "demo", Args: cobra.ArbitraryArgs, RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && args[0] == "fail" {
				return errors.New("disk full")
			}
			fmt.Fprintf(ios.Out, "args %v\n", args)
			return nil
		}}
		cli.SetupRoot(root, ios)
		return root
	}
	for _, tc := range []struct {
		name           string
		argv           []string
		code           int
		stdout, stderr string
	}{
		{name: "success", argv: []string{"a", "b"}, stdout: "args [a b]\n"},
		{name: "run error", argv: []string{"fail"}, code: 1, stderr: "demo: disk full\n"},
		{name: "usage error", argv: []string{"--nope"}, code: 2, stderr: "demo: unknown flag: --nope\nRun 'demo --help' for usage.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := Main(newRoot, tc.argv...)
			if code != tc.code || stdout != tc.stdout || stderr != tc.stderr {
				t.Errorf("got %d, %q, %q; want %d, %q, %q", code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}
