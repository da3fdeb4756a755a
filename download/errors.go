package download

import "fmt"

// OfflineError is a failure to reach the server at all: DNS, no route,
// connection refused or a dial timeout. Path is where the file would have
// been written, so the user can fetch URL elsewhere and put it there.
type OfflineError struct {
	URL  string
	Path string
	Err  error
}

func (e *OfflineError) Error() string {
	return fmt.Sprintf("download: cannot reach %s (%v); without network access, download that URL on another machine and put the file at %s",
		e.URL, e.Err, e.Path)
}

func (e *OfflineError) Unwrap() error { return e.Err }

// HTTPError is an HTTP response with a status other than 200 or 206 (or 416
// while resuming).
type HTTPError struct {
	URL        string
	StatusCode int
	Status     string // as the server sent it, e.g. "404 Not Found"
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("download: GET %s: HTTP %s", e.URL, e.Status)
}

// MismatchError is a file whose size or digest differs from what was
// expected. Deleted reports whether the file (the partial download) was
// removed; a cached file at the final path is never removed.
type MismatchError struct {
	URL     string
	Path    string
	What    string // "size" (bytes), "sha256" or "md5"
	Want    string // expected value; for digests a hex prefix
	Got     string // actual value; for digests the full hex digest
	Deleted bool
}

func (e *MismatchError) Error() string {
	want := e.Want
	if e.What != "size" {
		want += "..."
	}
	msg := fmt.Sprintf("download: %s: %s mismatch: expected %s, got %s", e.URL, e.What, want, e.Got)
	if e.Deleted {
		return msg + "; the bad download was deleted"
	}
	return msg + fmt.Sprintf("; delete %s to download it again", e.Path)
}
