package cli

import (
	"fmt"
	"io"
)

// DownloadBar draws the progress of one download on w (a progress bar in
// bytes, redrawn on a terminal, else a few lines): Update is the progress
// callback of download.Request and zoo.Cache.Fetch (bytes done, total or
// -1; the first call gives the offset a resumed download starts from), and
// End closes the line once the download returned.
type DownloadBar struct {
	w     io.Writer
	label string
	bar   *Progress
	last  int64
}

// NewDownloadBar returns the bar of a download called label (e.g. the
// model's name) on w.
func NewDownloadBar(w io.Writer, label string) *DownloadBar {
	return &DownloadBar{w: w, label: label}
}

// Update records done of total bytes.
func (d *DownloadBar) Update(done, total int64) {
	if d.bar == nil {
		d.bar = NewProgressWith(d.w, d.label, int(max(total, 0)), ProgressOptions{Terminal: IsTerminal(d.w), Bytes: true, Initial: int(done)})
		d.last = done
		return
	}
	d.bar.Add(int(done - d.last))
	d.last = done
}

// End finishes the bar after the download returned err.
func (d *DownloadBar) End(err error) {
	switch {
	case d.bar != nil && err == nil:
		d.bar.Done()
	case d.bar != nil && IsTerminal(d.w):
		fmt.Fprintln(d.w) // end the bar's line before the error
	}
}
