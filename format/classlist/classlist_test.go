package classlist

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	named := map[string][]string{"voc": {"aeroplane", "bicycle"}}
	tests := []struct {
		name    string
		spec    string
		want    []string
		wantErr []string // substrings of the error
	}{
		{name: "named list", spec: "voc", want: []string{"aeroplane", "bicycle"}},
		{name: "inline", spec: "cat,dog", want: []string{"cat", "dog"}},
		{name: "inline with spaces", spec: " cat , traffic light ", want: []string{"cat", "traffic light"}},
		{name: "single inline name", spec: "car", want: []string{"car"}},
		{name: "inline empty name", spec: "cat,,dog", wantErr: []string{`"cat,,dog"`, "name 2 is empty"}},
		{name: "inline trailing comma", spec: "cat,", wantErr: []string{"name 2 is empty"}},
		{name: "inline empty", spec: "", wantErr: []string{"name 1 is empty"}},
		{name: "inline duplicate", spec: "car,dog,car", wantErr: []string{`name 3: "car" is listed twice (also name 1)`}},
		{name: "file", spec: write("a.txt", "cat\ndog\n"), want: []string{"cat", "dog"}},
		{name: "file without extension", spec: write("names", "cat\ndog"), want: []string{"cat", "dog"}},
		{name: "file with comments, blanks, CRLF and spaces", spec: write("b.txt", "# my classes\r\n  kitten \r\n\r\n\t# not a class\npuppy\ntraffic light\n"),
			want: []string{"kitten", "puppy", "traffic light"}},
		{name: "commas and # inside a name", spec: write("c.txt", "a,b\nc#d\n"), want: []string{"a,b", "c#d"}},
		{name: "file duplicate", spec: write("d.txt", "cat\n\ndog\n cat\n"), wantErr: []string{"d.txt: line 4", `"cat" is listed twice (also line 1)`}},
		{name: "empty file", spec: write("e.txt", "# nothing\n\n"), wantErr: []string{"e.txt", "no class names"}},
		{name: "missing file", spec: filepath.Join(dir, "missing.txt"), wantErr: []string{"missing.txt", "no such file"}},
		{name: "missing .txt without folder", spec: "classes.txt", wantErr: []string{"classes.txt", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.spec, named)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestResolveCopiesNamed(t *testing.T) {
	named := map[string][]string{"x": {"a", "b"}}
	got, err := Resolve("x", named)
	if err != nil {
		t.Fatal(err)
	}
	got[0] = "changed"
	if named["x"][0] != "a" {
		t.Error("Resolve returned the named slice itself")
	}
}
