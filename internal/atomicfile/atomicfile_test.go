package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		old     string // content before the write; "" = no file
		fill    func(w io.Writer) error
		want    string // content after
		wantErr error
	}{
		{name: "new file", fill: func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }, want: "new"},
		{name: "replaces", old: "old", fill: func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }, want: "new"},
		{name: "large content", fill: func(w io.Writer) error {
			_, err := io.WriteString(w, strings.Repeat("x", 1<<20+3))
			return err
		}, want: strings.Repeat("x", 1<<20+3)},
		{name: "failing fill keeps the old file", old: "old", fill: func(w io.Writer) error {
			io.WriteString(w, strings.Repeat("partial", 1<<15))
			return boom
		}, want: "old", wantErr: boom},
		{name: "failing fill leaves no file", fill: func(w io.Writer) error {
			io.WriteString(w, "partial")
			return boom
		}, wantErr: boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.txt")
			if tt.old != "" {
				if err := os.WriteFile(path, []byte(tt.old), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := Write(path, tt.fill)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			got, rerr := os.ReadFile(path)
			switch {
			case tt.want == "" && !errors.Is(rerr, os.ErrNotExist):
				t.Errorf("file exists after a failed write (%q, %v)", got, rerr)
			case tt.want != "" && string(got) != tt.want:
				t.Errorf("file holds %d bytes %.20q, want %d bytes %.20q", len(got), got, len(tt.want), tt.want)
			}
			if tt.want != "" && tt.wantErr == nil {
				if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
					t.Errorf("mode %v (%v), want 0644", st.Mode(), err)
				}
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != "out.txt" {
					t.Errorf("%s left behind", e.Name())
				}
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name string
		perm os.FileMode
		data string
	}{
		{name: "0644", perm: 0o644, data: "a\nb\n"},
		{name: "0600", perm: 0o600, data: "secret"},
		{name: "empty", perm: 0o644, data: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := WriteFile(path, []byte(tt.data), tt.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tt.data {
				t.Fatalf("read %q, %v; want %q", got, err, tt.data)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != tt.perm {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), tt.perm)
			}
		})
	}
}

func TestWriteMissingFolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "f")
	err := WriteFile(path, []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want an error naming %s", err, path)
	}
}
