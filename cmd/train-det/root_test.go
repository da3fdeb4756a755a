package main

import (
	"strings"
	"testing"

	"resdet/internal/cli"
	"resdet/internal/cli/clitest"
)

func TestRoot(t *testing.T) {
	tests := []struct {
		name     string
		argv     []string
		code     int
		stdout   string
		stderr   string
		noStdout bool
	}{
		{name: "version", argv: []string{"--version"}, stdout: "train-det " + cli.Release},
		{name: "help", argv: []string{"--help"}, stdout: "Examples:\n  # 200 images"},
		{name: "synth help", argv: []string{"synth", "--help"}, stdout: "--test-fraction"},
		{name: "completion", argv: []string{"completion", "zsh"}, stdout: "#compdef train-det"},
		{name: "unknown command", argv: []string{"frobnicate"}, code: 2, stderr: `train-det: unknown command "frobnicate"`},
		{name: "usage error", argv: []string{"synth", "--out", "x", "--images", "-3"}, code: 2,
			stderr: "--images must be positive, got -3\nRun 'train-det synth --help' for usage.", noStdout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := clitest.Main(NewCmdRoot, tt.argv...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; stderr %q", code, tt.code, stderr)
			}
			if !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout does not contain %q:\n%s", tt.stdout, stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.stderr, stderr)
			}
			if tt.noStdout && stdout != "" {
				t.Errorf("stdout not empty: %q", stdout)
			}
		})
	}
}
