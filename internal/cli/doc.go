// Package cli holds what the resdet commands (cmd/detect, cmd/train-det,
// cmd/eval-det) share: the I/O streams a command writes to, the version
// string behind --version, a `completion` subcommand, and a progress
// reporter that draws a bar with rate and ETA on a terminal and prints plain
// log lines otherwise.
//
// It has no package state: every command receives an *IOStreams, so tests
// pass buffers (see Test) and no process is started.
package cli
