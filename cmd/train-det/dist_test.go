package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestFailAt(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		rank    int
		want    bool // an injection for this rank
		wantErr string
	}{
		{name: "unset", value: "", rank: 1},
		{name: "this rank", value: "1:3", rank: 1, want: true},
		{name: "another rank", value: "1:3", rank: 0},
		{name: "no colon", value: "13", rank: 1, wantErr: "want RANK:ITERATION"},
		{name: "iteration 0", value: "1:0", rank: 1, wantErr: "want RANK:ITERATION"},
		{name: "not a number", value: "a:3", rank: 1, wantErr: "want RANK:ITERATION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(failAtEnv, tt.value)
			f, err := failAt(tt.rank, &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), failAtEnv) {
					t.Errorf("error %v, want one naming %s and saying %q", err, failAtEnv, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (f != nil) != tt.want {
				t.Errorf("injection set: %v, want %v", f != nil, tt.want)
			}
		})
	}
}
