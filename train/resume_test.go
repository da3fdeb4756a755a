package train

import (
	"strings"
	"testing"
)

// TestCheckResume checks which changes keep a run the same run.
func TestCheckResume(t *testing.T) {
	prev := DefaultConfig("r18-c4", []string{"a", "b"})
	prev.Workers = 2
	tests := []struct {
		name    string
		change  func(c *Config)
		wantErr string // "" for the same run
	}{
		{name: "nothing", change: func(*Config) {}},
		{name: "length and logging", change: func(c *Config) {
			c.Iters, c.LogEvery, c.CheckpointEvery, c.Keep, c.EvalEvery, c.MaxLoss = 5000, 1, 7, 9, 100, 50
		}},
		{name: "resources", change: func(c *Config) { c.Workers, c.MaxGraphs = 0, 3 }},
		{name: "lr", change: func(c *Config) { c.BaseLR *= 2 }, wantErr: `"lr" is 0.002, the saved run has 0.001`},
		{name: "model", change: func(c *Config) { c.Model.RoIOp.Size = 7 }, wantErr: `"model"`},
		{name: "data", change: func(c *Config) { c.Data = "elsewhere" }, wantErr: `"data"`},
		{name: "init added", change: func(c *Config) { c.Init = "r18.pth" }, wantErr: `"init" is "r18.pth", the saved run has none`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := prev
			next.Model.Classes = []string{"a", "b"}
			tt.change(&next)
			err := CheckResume(prev, next)
			if tt.wantErr == "" && err != nil {
				t.Errorf("%v, want the same run", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("%v, want an error containing %s", err, tt.wantErr)
			}
		})
	}
}

// TestResumeConfig checks that a resumed run takes the fields set from
// the given configuration, only those, and refuses the others.
func TestResumeConfig(t *testing.T) {
	saved := DefaultConfig("r18-c4", []string{"a", "b"})
	saved.BaseLR, saved.Iters, saved.Keep, saved.Workers = 0.05, 100, 3, 4
	given := DefaultConfig("r101-c4", nil)
	given.BaseLR, given.Iters, given.Keep, given.Workers = 0.5, 150, 5, 0
	tests := []struct {
		name    string
		set     []string
		want    func(c Config) bool
		wantErr string
	}{
		{name: "none", want: func(c Config) bool { return c.Iters == 100 && c.Keep == 3 && c.Workers == 4 && c.BaseLR == 0.05 }},
		{name: "iters and keep", set: []string{"iters", "keep"},
			want: func(c Config) bool {
				return c.Iters == 150 && c.Keep == 5 && c.Workers == 4 && c.BaseLR == 0.05 && c.Model.Arch == "r18-c4"
			}},
		{name: "workers back to 0", set: []string{"workers"}, want: func(c Config) bool { return c.Workers == 0 && c.Iters == 100 }},
		{name: "lr", set: []string{"iters", "lr"}, wantErr: `"lr" cannot change`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ResumeConfig(saved, given, tt.set)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("%v, want an error containing %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(c) {
				t.Errorf("got iters %d keep %d workers %d lr %g arch %s", c.Iters, c.Keep, c.Workers, c.BaseLR, c.Model.Arch)
			}
			if err := CheckResume(saved, c); err != nil {
				t.Errorf("the resumed configuration is not the saved run: %v", err)
			}
		})
	}
}
