package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// NewCmdCompletion returns a `completion SHELL` subcommand that writes the
// completion script of its root command for bash, zsh, fish or powershell to
// ios.Out. Adding it also stops cobra from adding its default one, so every
// resdet command has the same completion command whether or not it has other
// subcommands.
// name is the root command's name, used in the examples.
func NewCmdCompletion(ios *IOStreams, name string) *cobra.Command {
	return &cobra.Command{
		Use:   "completion {bash|zsh|fish|powershell}",
		Short: "Print a shell completion script",
		Long: `Print the shell completion script for this command.

Load it in the current shell, or save it where your shell looks for completions.`,
		Example: strings.ReplaceAll(`  # bash, current shell
  source <(CMD completion bash)
  # zsh
  CMD completion zsh > "${fpath[1]}/_CMD"
  # fish
  CMD completion fish > ~/.config/fish/completions/CMD.fish`, "CMD", name),
		Args:                  cobra.ExactArgs(1),
		ValidArgs:             []string{"bash", "zsh", "fish", "powershell"},
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(ios.Out, true)
			case "zsh":
				return root.GenZshCompletion(ios.Out)
			case "fish":
				return root.GenFishCompletion(ios.Out, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(ios.Out)
			}
			return fmt.Errorf("completion: unknown shell %q (want bash, zsh, fish or powershell)", args[0])
		},
	}
}
