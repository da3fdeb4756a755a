package cli

import (
	"bytes"
	"testing"
	"time"
)

func TestFmtBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{n: 0, want: "0 B"},
		{n: 1023, want: "1023 B"},
		{n: 1024, want: "1.0 KiB"},
		{n: 1536, want: "1.5 KiB"},
		{n: 167_500_000, want: "159.7 MiB"}, // 167500000 / 2^20 = 159.74
		{n: 5 << 30, want: "5.0 GiB"},
	}
	for _, tt := range tests {
		if got := FormatBytes(tt.n); got != tt.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// byteStep advances the clock, adds bytes and expects this output.
type byteStep struct {
	advance time.Duration
	add     int
	want    string
}

func TestProgressBytes(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name     string
		terminal bool
		steps    []byteStep
		done     string
	}{
		{
			name: "terminal, resumed at 2 MiB", terminal: true,
			steps: []byteStep{
				// 1 MiB in 1 s (the 2 resumed MiB are not in the rate); 7 MiB left -> 7 s; bar 24*3/10 = 7 cells.
				{advance: time.Second, add: mib, want: "\rmodel [=======>                ] 3.0 MiB/10.0 MiB (30%), 1.0 MiB/s, ETA 7s\x1b[K"},
				{advance: 6 * time.Second, add: 7 * mib, want: "\rmodel [========================] 10.0 MiB/10.0 MiB (100%), 1.1 MiB/s\x1b[K"},
			},
			done: "\rmodel: 10.0 MiB/10.0 MiB in 7s (1.1 MiB/s)\x1b[K\n", // 8 MiB in 7 s
		},
		{
			name: "log lines, resumed at 2 MiB",
			steps: []byteStep{
				{advance: time.Second, add: mib / 2, want: ""}, // 25%: still in the 20% step that was resumed
				{advance: time.Second, add: mib / 2, want: "model: 3.0 MiB/10.0 MiB (30%), 512.0 KiB/s, ETA 14s\n"},
			},
			done: "model: 3.0 MiB/10.0 MiB in 2s (512.0 KiB/s)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1000, 0)}
			var buf bytes.Buffer
			p := NewProgressWith(&buf, "model", 10*mib, ProgressOptions{Terminal: tt.terminal, Bytes: true, Initial: 2 * mib, Now: clk.now})
			for i, st := range tt.steps {
				clk.advance(st.advance)
				p.Add(st.add)
				if buf.String() != st.want {
					t.Fatalf("step %d: got %q\nwant %q", i, buf.String(), st.want)
				}
				buf.Reset()
			}
			p.Done()
			if buf.String() != tt.done {
				t.Fatalf("Done: got %q\nwant %q", buf.String(), tt.done)
			}
		})
	}
}
