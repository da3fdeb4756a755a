package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// fakeClock advances only when told to.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestVersionString(t *testing.T) {
	tests := []struct {
		name  string
		rev   string
		dirty bool
		want  string
	}{
		{name: "no vcs info", want: Release + " (go1.26.8)"},
		{name: "clean", rev: "5f296cb1a2b3c4d5e6f7", want: Release + " (rev 5f296cb1a2b3, go1.26.8)"},
		{name: "dirty", rev: "5f296cb1a2b3c4d5e6f7", dirty: true, want: Release + " (rev 5f296cb1a2b3+dirty, go1.26.8)"},
		{name: "short rev", rev: "abc", want: Release + " (rev abc, go1.26.8)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionString(tt.rev, tt.dirty, "go1.26.8"); got != tt.want {
				t.Errorf("versionString = %q, want %q", got, tt.want)
			}
		})
	}
	if v := Version(); !strings.HasPrefix(v, Release+" (") {
		t.Errorf("Version() = %q, want prefix %q", v, Release+" (")
	}
}

func TestProgressLogLines(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	var buf bytes.Buffer
	p := NewProgressWith(&buf, "synth", 200, ProgressOptions{Unit: "images", Now: clk.now})
	// 19 images in 3.8 s: below the first 10% step and the 10 s interval.
	for range 19 {
		clk.advance(200 * time.Millisecond)
		p.Add(1)
	}
	if buf.Len() != 0 {
		t.Fatalf("printed before the first 10%% step: %q", buf.String())
	}
	clk.advance(200 * time.Millisecond) // 20 images in 4 s: 5 images/s, 180 left -> 36 s
	p.Add(1)
	want := "synth: 20/200 images (10%), 5.0 images/s, ETA 36s\n"
	if buf.String() != want {
		t.Fatalf("after 10%%: got %q, want %q", buf.String(), want)
	}
	buf.Reset()
	clk.advance(11 * time.Second) // interval passed without a new step
	p.Add(2)
	want = "synth: 22/200 images (11%), 1.5 images/s, ETA 2m1s\n" // 22/15 s ; 178/(22/15) = 121.4 s
	if buf.String() != want {
		t.Fatalf("after interval: got %q, want %q", buf.String(), want)
	}
	buf.Reset()
	clk.advance(5 * time.Second)
	p.Add(178)
	p.Done()
	p.Done()
	want = "synth: 200/200 images in 20s (10.0 images/s)\n"
	if buf.String() != want {
		t.Fatalf("at the end: got %q, want %q", buf.String(), want)
	}
}

func TestProgressTerminal(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	var buf bytes.Buffer
	p := NewProgressWith(&buf, "synth", 8, ProgressOptions{Terminal: true, Unit: "images", Now: clk.now})
	clk.advance(time.Second)
	p.Add(2) // 2/8 in 1 s: 2/s, 3 s left; bar 24*2/8 = 6 cells
	want := "\rsynth [======>                 ] 2/8 images (25%), 2.0 images/s, ETA 3s\x1b[K"
	if buf.String() != want {
		t.Fatalf("got %q\nwant %q", buf.String(), want)
	}
	buf.Reset()
	clk.advance(10 * time.Millisecond) // under the 100ms interval: no redraw
	p.Add(1)
	if buf.Len() != 0 {
		t.Fatalf("redrawn within the interval: %q", buf.String())
	}
	clk.advance(990 * time.Millisecond)
	p.Add(5)
	p.Done()
	want = "\rsynth [========================] 8/8 images (100%), 4.0 images/s\x1b[K" +
		"\rsynth: 8/8 images in 2s (4.0 images/s)\x1b[K\n"
	if buf.String() != want {
		t.Fatalf("got %q\nwant %q", buf.String(), want)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests := []struct {
		name string
		w    any
	}{
		{name: "buffer", w: &bytes.Buffer{}},
		{name: "regular file", w: f},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if IsTerminal(tt.w.(interface{ Write([]byte) (int, error) })) {
				t.Errorf("IsTerminal(%s) = true", tt.name)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	tests := []struct {
		shell   string
		want    string
		wantErr bool
	}{
		{shell: "bash", want: "# bash completion V2 for demo"},
		{shell: "zsh", want: "#compdef demo"},
		{shell: "fish", want: "# fish completion for demo"},
		{shell: "powershell", want: "# powershell completion for demo"},
		{shell: "tcsh", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			ios, _, out, _ := Test()
			root := &cobra.Command{Use: "demo", SilenceUsage: true, SilenceErrors: true}
			root.AddCommand(NewCmdCompletion(ios, "demo"))
			root.SetArgs([]string{"completion", tt.shell})
			root.SetOut(out)
			root.SetErr(out)
			err := root.Execute()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error for shell %q", tt.shell)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("output does not contain %q:\n%.200s", tt.want, out.String())
			}
		})
	}
}
