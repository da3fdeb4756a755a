package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"resdet/datasets"
	"resdet/datasets/imageio"
	"resdet/datasets/synth"
	"resdet/internal/cli"
	"resdet/internal/cli/clitest"
)

func TestNewCmdSynth(t *testing.T) {
	def := SynthOptions{Images: 200, Seed: 1, Size: cli.Size{W: 320, H: 240}, Jitter: 0.2, TestFraction: 0.25, MaxObjects: 6,
		Noise: 10, Tiny: 0.08, Truncated: 0.1, Occlus: 0.5}
	with := func(f func(*SynthOptions)) SynthOptions { o := def; f(&o); return o }
	tests := []struct {
		name    string
		argv    string
		want    SynthOptions
		wantErr string
	}{
		{name: "defaults", argv: "--out d", want: with(func(o *SynthOptions) { o.Out = "d" })},
		{name: "issue example", argv: "--out demo-out/data --images 200 --seed 1",
			want: with(func(o *SynthOptions) { o.Out = "demo-out/data" })},
		{name: "all flags", argv: "-o x -n 7 --seed 99 --size 400x300 --size-jitter 0 --test-fraction 0.5 --max-objects 3 --workers 2 --overwrite --preview 5 " +
			"--class-colours --noise 0 --tiny 0.5 --truncated 0 --max-occlusion 0.25",
			want: SynthOptions{Out: "x", Images: 7, Seed: 99, Size: cli.Size{W: 400, H: 300}, Jitter: 0, TestFraction: 0.5, MaxObjects: 3, Workers: 2, Overwrite: true, Preview: 5,
				ClassColours: true, Noise: 0, Tiny: 0.5, Truncated: 0, Occlus: 0.25}},
		{name: "demo", argv: "--out d --class-colours", want: with(func(o *SynthOptions) { o.Out, o.ClassColours = "d", true })},
		{name: "noise", argv: "--out d --noise 65", wantErr: "--noise must be in [0, 64]"},
		{name: "tiny", argv: "--out d --tiny -0.1", wantErr: "--tiny must be in [0, 1]"},
		{name: "truncated", argv: "--out d --truncated 1.5", wantErr: "--truncated must be in [0, 1]"},
		{name: "occlusion", argv: "--out d --max-occlusion 1", wantErr: "--max-occlusion must be in (0, 1)"},
		{name: "negative preview", argv: "--out d --preview -1", wantErr: "--preview must be >= 0"},
		{name: "no out", argv: "--images 3", wantErr: `required flag(s) "out" not set`},
		{name: "bad size", argv: "--out d --size 320", wantErr: `invalid argument "320" for "--size" flag`},
		{name: "small size", argv: "--out d --size 32x32", wantErr: "--size must be at least 64x64"},
		{name: "zero images", argv: "--out d --images 0", wantErr: "--images must be positive"},
		{name: "test fraction", argv: "--out d --test-fraction 1", wantErr: "--test-fraction must be in [0, 1)"},
		{name: "jitter", argv: "--out d --size-jitter 0.7", wantErr: "--size-jitter"},
		{name: "max objects", argv: "--out d --max-objects 0", wantErr: "--max-objects"},
		{name: "negative seed", argv: "--out d --seed -1", wantErr: `invalid argument "-1" for "--seed"`},
		{name: "stray argument", argv: "--out d extra", wantErr: `unknown command "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, _, _ := cli.Test()
			var got *SynthOptions
			if !clitest.Execute(t, NewCmdSynth(ios, func(o *SynthOptions) error { got = o; return nil }), ios, strings.Fields(tt.argv), tt.wantErr) {
				return
			}
			if got == nil {
				t.Fatal("run function not called")
			}
			if got.IO != ios {
				t.Error("options do not carry the command's IOStreams")
			}
			got.IO = nil
			if *got != tt.want {
				t.Errorf("options\n got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

// TestRunSynth runs the command body on a small dataset and checks the
// printed statistics against the dataset read back with the VOC reader.
func TestRunSynth(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ios, _, out, errOut := cli.Test()
	opts := &SynthOptions{IO: ios, Out: dir, Images: 12, Seed: 3, Size: cli.Size{W: 160, H: 120},
		Jitter: 0.1, TestFraction: 0.25, MaxObjects: 4, Preview: 3, Noise: 10, Tiny: 0.08, Truncated: 0.1, Occlus: 0.5}
	if err := runSynth(opts); err != nil {
		t.Fatal(err)
	}
	printed := map[string][2]int{}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var name string
		var images, objects int
		if n, _ := fmt.Sscanf(sc.Text(), "%s %d %d", &name, &images, &objects); n == 3 {
			printed[name] = [2]int{images, objects}
		}
	}
	for _, split := range []string{"train", "val", "trainval", "test"} {
		set, err := datasets.ReadVOC(filepath.Join(dir, "VOC2007"), split, datasets.VOCOptions{Classes: synth.Classes(), KeepDifficult: true})
		if err != nil {
			t.Fatal(err)
		}
		want := [2]int{len(set.Records), set.NumObjects()}
		if printed[split] != want {
			t.Errorf("%s: printed images/objects %v, on disk %v\noutput:\n%s", split, printed[split], want, out.String())
		}
	}
	if printed["all"][0] != 12 {
		t.Errorf("printed %d images in all, want 12", printed["all"][0])
	}
	for _, want := range []string{filepath.Join(dir, "VOC2007"), "instances_{train,val,trainval,test}.json", "seed 3", "sqrt(area) px"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout does not mention %q:\n%s", want, out.String())
		}
	}
	// Previews: the first 3 trainval images, same sizes as the originals.
	trainval, err := datasets.ReadVOC(filepath.Join(dir, "VOC2007"), "trainval", datasets.VOCOptions{Classes: synth.Classes(), KeepDifficult: true})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "preview"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("%d preview files, want 3", len(entries))
	}
	for i, r := range trainval.Records[:3] {
		if entries[i].Name() != r.Name+".jpg" {
			t.Errorf("preview %d is %s, want %s.jpg", i, entries[i].Name(), r.Name)
		}
		im, err := imageio.Read(filepath.Join(dir, "preview", r.Name+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
		if im.W != r.Width || im.H != r.Height {
			t.Errorf("preview %s is %dx%d, image %dx%d", r.Name, im.W, im.H, r.Width, r.Height)
		}
	}
	if !strings.Contains(errOut.String(), "synth: 12/12 images in") {
		t.Errorf("stderr has no final progress line:\n%s", errOut.String())
	}

	// A second run into the same folder needs --overwrite.
	ios2, _, _, _ := cli.Test()
	opts.IO = ios2
	if err := runSynth(opts); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second run without --overwrite: %v", err)
	}
	opts.Overwrite = true
	if err := runSynth(opts); err != nil {
		t.Errorf("second run with --overwrite: %v", err)
	}
}
