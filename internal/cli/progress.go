package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// ProgressOptions tune a Progress. The zero value is valid.
type ProgressOptions struct {
	// Terminal selects the redrawn bar (true) or plain log lines (false).
	Terminal bool
	// Unit names what is counted ("images"); empty prints bare counts.
	Unit string
	// Interval is the least time between two updates: default 100ms on a
	// terminal, 10s for log lines (which are also printed at every 10% step).
	Interval time.Duration
	// Now is the clock; nil means time.Now. Tests pass a fake one.
	Now func() time.Time
	// Bytes prints counts and rates as byte sizes ("12.5 MiB/159.7 MiB,
	// 3.1 MiB/s") instead of numbers of Unit.
	Bytes bool
	// Initial is the number of steps done before this run (the bytes of a
	// resumed download): counted as done, left out of the rate and ETA.
	Initial int
}

// Progress reports how far a job of a known number of steps has got. On a
// terminal it redraws one line: label, bar, count, rate and ETA. Otherwise
// (a file, a pipe, CI logs) it prints a plain line at every 10% step or
// every Interval, whichever comes first, up to the last step; Done prints
// the summary line. It is safe for concurrent use.
type Progress struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	total    int
	opts     ProgressOptions
	start    time.Time
	last     time.Time
	lastStep int // last 10% step printed in log mode
	done     int
	finished bool
}

// NewProgress returns a Progress writing to w, drawing a bar when w is a
// terminal and log lines otherwise. total is the number of steps (> 0
// for a rate and ETA; 0 prints counts only).
func NewProgress(w io.Writer, label string, total int, unit string) *Progress {
	return NewProgressWith(w, label, total, ProgressOptions{Terminal: IsTerminal(w), Unit: unit})
}

// NewProgressWith is NewProgress with explicit options.
func NewProgressWith(w io.Writer, label string, total int, o ProgressOptions) *Progress {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
		if o.Terminal {
			o.Interval = 100 * time.Millisecond
		}
	}
	now := o.Now()
	p := &Progress{w: w, label: label, total: total, opts: o, start: now, last: now, done: o.Initial}
	if total > 0 {
		p.lastStep = 10 * o.Initial / total
	}
	return p
}

// Add records n more finished steps and prints an update if one is due.
func (p *Progress) Add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	now := p.opts.Now()
	if p.opts.Terminal {
		if now.Sub(p.last) >= p.opts.Interval || p.done == p.total {
			p.last = now
			fmt.Fprintf(p.w, "\r%s\x1b[K", p.line(now, true))
		}
		return
	}
	if p.total > 0 && p.done >= p.total {
		return // Done prints the summary line
	}
	step := -1
	if p.total > 0 {
		step = 10 * p.done / p.total
	}
	if step > p.lastStep || now.Sub(p.last) >= p.opts.Interval {
		if step > p.lastStep {
			p.lastStep = step
		}
		p.last = now
		fmt.Fprintln(p.w, p.line(now, false))
	}
}

// Done prints the final state (total time and mean rate) and ends the
// terminal line. Further calls do nothing.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	now := p.opts.Now()
	el := now.Sub(p.start)
	msg := fmt.Sprintf("%s: %s in %s (%s)", p.label, p.count(), fmtDuration(el), p.rate(el))
	if p.opts.Terminal {
		fmt.Fprintf(p.w, "\r%s\x1b[K\n", msg)
		return
	}
	fmt.Fprintln(p.w, msg)
}

func (p *Progress) count() string {
	if p.opts.Bytes {
		s := FormatBytes(int64(p.done))
		if p.total > 0 {
			s += "/" + FormatBytes(int64(p.total))
		}
		return s
	}
	s := fmt.Sprint(p.done)
	if p.total > 0 {
		s += fmt.Sprintf("/%d", p.total)
	}
	if p.opts.Unit != "" {
		s += " " + p.opts.Unit
	}
	return s
}

// line formats the current state; bar adds a 24-cell bar for terminals.
func (p *Progress) line(now time.Time, bar bool) string {
	var b strings.Builder
	b.WriteString(p.label)
	if bar && p.total > 0 {
		const width = 24
		fill := min(width*p.done/p.total, width)
		b.WriteString(" [")
		b.WriteString(strings.Repeat("=", fill))
		if fill < width {
			b.WriteString(">")
			b.WriteString(strings.Repeat(" ", width-fill-1))
		}
		b.WriteString("]")
	} else {
		b.WriteString(":")
	}
	b.WriteString(" ")
	b.WriteString(p.count())
	if p.total > 0 {
		fmt.Fprintf(&b, " (%d%%)", 100*p.done/p.total)
	}
	el := now.Sub(p.start)
	fmt.Fprintf(&b, ", %s", p.rate(el))
	if ran := p.done - p.opts.Initial; p.total > 0 && ran > 0 && p.done < p.total && el > 0 {
		eta := time.Duration(float64(el) * float64(p.total-p.done) / float64(ran))
		fmt.Fprintf(&b, ", ETA %s", fmtDuration(eta))
	}
	return b.String()
}

// rate formats the steps done in this run per second.
func (p *Progress) rate(el time.Duration) string {
	n := p.done - p.opts.Initial
	if !p.opts.Bytes {
		return fmtRate(n, el, p.opts.Unit)
	}
	if el <= 0 {
		return "- B/s"
	}
	return FormatBytes(int64(float64(n)/el.Seconds())) + "/s"
}

func fmtRate(n int, el time.Duration, unit string) string {
	if unit == "" {
		unit = "steps"
	}
	if el <= 0 {
		return "- " + unit + "/s"
	}
	return fmt.Sprintf("%.1f %s/s", float64(n)/el.Seconds(), unit)
}

// fmtDuration rounds to 0.1s under a minute and to seconds above.
func fmtDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// FormatBytes formats n bytes with binary units: "512 B", "1.5 KiB", "159.7 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
