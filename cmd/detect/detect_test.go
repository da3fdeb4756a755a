package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"resdet/internal/cli"
	"resdet/internal/cli/clitest"
	"resdet/nn"
	"resdet/zoo"
)

func TestNewCmdDetect(t *testing.T) {
	def := DetectOptions{Weights: "w.safetensors", Model: zoo.DefaultName, ScoreThresh: 0.5, MaxPixels: 50, Precision: nn.PrecisionFP32}
	tests := []struct {
		name    string
		argv    string
		want    DetectOptions
		inputs  []string
		wantErr string
	}{
		{name: "minimal", argv: "--weights w.safetensors a.jpg", want: def, inputs: []string{"a.jpg"}},
		{name: "all flags",
			argv: "-w m.pth --arch r50-c4 --roi-op pool --classes voc --score-thresh 0.7 --threads 2 --min-size 800 --max-size 1333 " +
				"--max-pixels 12.5 --json --coco-results r.json --coco-gt gt.json -o shown a.jpg dir/ img/*.png",
			want: DetectOptions{Precision: nn.PrecisionFP32, Weights: "m.pth", Model: zoo.DefaultName, Arch: "r50-c4", RoIOp: "pool", Classes: "voc", ScoreThresh: 0.7, Threads: 2,
				MinSize: 800, MaxSize: 1333, MaxPixels: 12.5, JSON: true, COCOResults: "r.json", COCOGT: "gt.json", OutDir: "shown"},
			inputs: []string{"a.jpg", "dir/", "img/*.png"}},
		{name: "no images", argv: "--weights w.safetensors", wantErr: "no images given"},
		{name: "save only", argv: "--weights w.pkl --save n.safetensors", want: DetectOptions{Precision: nn.PrecisionFP32, Weights: "w.pkl", Save: "n.safetensors", Model: zoo.DefaultName, ScoreThresh: 0.5, MaxPixels: 50}},
		{name: "default model", argv: "a.jpg", want: DetectOptions{Precision: nn.PrecisionFP32, Model: zoo.DefaultName, ScoreThresh: 0.5, MaxPixels: 50}, inputs: []string{"a.jpg"}},
		{name: "model", argv: "--model d2-r50-c4-3x --cache c a.jpg", want: DetectOptions{Precision: nn.PrecisionFP32, Model: "d2-r50-c4-3x", Cache: "c", ScoreThresh: 0.5, MaxPixels: 50}, inputs: []string{"a.jpg"}},
		{name: "model and weights", argv: "-w w.pkl --model d2-r50-c4-3x a.jpg", wantErr: "--weights and --model exclude each other"},
		{name: "threshold", argv: "-w w --score-thresh 1.5 a.jpg", wantErr: "--score-thresh must be in [0, 1]"},
		{name: "sizes", argv: "-w w --min-size -1 a.jpg", wantErr: "--min-size and --max-size must be positive"},
		{name: "max pixels", argv: "-w w --max-pixels 0 a.jpg", wantErr: "--max-pixels must be positive"},
		{name: "roi op", argv: "-w w --roi-op warp a.jpg", wantErr: `--roi-op must be "align" or "pool"`},
		{name: "threads", argv: "-w w --threads -1 a.jpg", wantErr: "--threads must be >= 0"},
		{name: "gt without results", argv: "-w w --coco-gt gt.json a.jpg", wantErr: "--coco-gt only makes sense with --coco-results"},
		{name: "precision bf16", argv: "-w w.safetensors --precision bf16 a.jpg", inputs: []string{"a.jpg"},
			want: DetectOptions{Weights: "w.safetensors", Model: zoo.DefaultName, ScoreThresh: 0.5, MaxPixels: 50, Precision: nn.PrecisionBF16}},
		{name: "precision auto", argv: "-w w.safetensors --precision AUTO a.jpg", inputs: []string{"a.jpg"},
			want: DetectOptions{Weights: "w.safetensors", Model: zoo.DefaultName, ScoreThresh: 0.5, MaxPixels: 50, Precision: nn.PrecisionAuto}},
		{name: "precision", argv: "-w w --precision fp16 a.jpg", wantErr: `--precision must be fp32, bf16 or auto, got "fp16"`},
		{name: "bad number", argv: "-w w --min-size big a.jpg", wantErr: `invalid argument "big" for "--min-size"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, _, _ := cli.Test()
			var got *DetectOptions
			if !clitest.Execute(t, NewCmdDetect(ios, func(o *DetectOptions) error { got = o; return nil }), ios, strings.Fields(tt.argv), tt.wantErr) {
				return
			}
			if got == nil {
				t.Fatal("run function not called")
			}
			if !slices.Equal(got.Inputs, tt.inputs) {
				t.Errorf("inputs %v, want %v", got.Inputs, tt.inputs)
			}
			g := *got
			g.IO, g.Inputs = nil, nil
			if !reflect.DeepEqual(g, tt.want) {
				t.Errorf("options\n got %+v\nwant %+v", g, tt.want)
			}
		})
	}
}

func TestDetectRoot(t *testing.T) {
	newRoot := func(ios *cli.IOStreams) *cobra.Command { return NewCmdDetect(ios, nil) }
	tests := []struct {
		name   string
		argv   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "missing weights", argv: []string{"--weights", "nowhere.safetensors", "a.jpg"}, code: 1,
			stderr: "detect: checkpoint: read: weights: open nowhere.safetensors: no such file or directory\n"},
		{name: "version", argv: []string{"--version"}, stdout: "detect " + cli.Release},
		{name: "help", argv: []string{"--help"}, stdout: "Examples:\n  detect photo.jpg"},
		{name: "completion", argv: []string{"completion", "bash"}, stdout: "# bash completion V2 for detect"},
		{name: "classify registered", argv: []string{"--help"}, stdout: "classify    Classify images with a ResNet"},
		{name: "classify usage", argv: []string{"classify", "--arch", "resnet18", "a.jpg"}, code: 2},
		{name: "usage", argv: []string{"--weights", "w"}, code: 2, stderr: "detect: no images given\nRun 'detect --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := clitest.Main(newRoot, tt.argv...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; stderr %q", code, tt.code, stderr)
			}
			if !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout does not contain %q:\n%s", tt.stdout, stdout)
			}
			if tt.stderr != "" && stderr != tt.stderr {
				t.Errorf("stderr %q, want %q", stderr, tt.stderr)
			}
		})
	}
}
