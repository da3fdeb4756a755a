package download

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Algo names a digest algorithm.
type Algo string

// The digest algorithms a Digest can use.
const (
	SHA256 Algo = "sha256"
	MD5    Algo = "md5"
)

// Digest is an expected digest of a whole file: the hex digest must start
// with Prefix (torch.hub's convention of putting the first 8 hex digits of
// the SHA-256 in the file name). The zero Digest checks nothing.
type Digest struct {
	Algo   Algo
	Prefix string // lowercase hex digits
}

// IsZero reports whether d checks nothing.
func (d Digest) IsZero() bool { return d.Prefix == "" }

// Validate reports a malformed digest: an unknown algorithm, or a prefix that
// is not lowercase hex or is longer than the digest.
func (d Digest) Validate() error {
	if d.IsZero() {
		return nil
	}
	n := 0
	switch d.Algo {
	case SHA256:
		n = 2 * sha256.Size
	case MD5:
		n = 2 * md5.Size
	default:
		return fmt.Errorf("digest: unknown algorithm %q (want sha256 or md5)", d.Algo)
	}
	if len(d.Prefix) > n {
		return fmt.Errorf("digest: %s prefix %q longer than %d hex digits", d.Algo, d.Prefix, n)
	}
	for _, c := range d.Prefix {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("digest: %s prefix %q is not lowercase hex", d.Algo, d.Prefix)
		}
	}
	return nil
}

// Request describes one file to fetch.
type Request struct {
	URL  string // http or https
	Path string // final location; the partial file is Path+".part"
	// Size is the expected size in bytes; 0 means unknown (then the
	// server's Content-Length, when sent, is still enforced).
	Size   int64
	Digest Digest
	// Progress, when not nil, is called with the bytes written so far and
	// the total (-1 when unknown): first once the server has answered (done =
	// the resumed offset), then after every chunk.
	Progress func(done, total int64)
	// Client is the HTTP client; nil means a client with the default
	// transport (proxy from the environment, 30 s dial timeout) and no
	// overall timeout. Cancel ctx to stop a download.
	Client *http.Client
	// IdleTimeout stops a download that receives no data for this long
	// (waiting for the response included); the partial file is kept for a
	// resume. 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// DefaultIdleTimeout is the IdleTimeout of a Request that sets none.
const DefaultIdleTimeout = time.Minute

// ErrStalled is the cause of a download stopped by its IdleTimeout.
var ErrStalled = errors.New("download stalled")

// Result describes a fetched (or cached) file.
type Result struct {
	Path    string
	Bytes   int64 // size of the file at Path
	Cached  bool  // Path existed: nothing was requested
	Resumed int64 // bytes kept from an earlier partial download
	// SHA256 and MD5 are the hex digests of the whole file; empty when
	// Cached.
	SHA256, MD5 string
}

// partMeta is what PATH.part.json remembers to resume a download.
type partMeta struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Total        int64  `json:"total"` // -1 when unknown
}

// validator returns the If-Range value: the ETag when strong, else
// Last-Modified; "" when the download cannot be resumed safely.
func (m partMeta) validator() string {
	if m.ETag != "" && !strings.HasPrefix(m.ETag, "W/") {
		return m.ETag
	}
	return m.LastModified
}

// Fetch downloads req.URL to req.Path unless req.Path exists; see the
// package documentation for resuming, verification and errors. On a
// cancelled ctx it returns an error wrapping ctx.Err() and keeps the partial
// file for a later resume.
func Fetch(ctx context.Context, req Request) (Result, error) {
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Result{}, fmt.Errorf("download: %q is not an http(s) URL", req.URL)
	}
	if req.Path == "" {
		return Result{}, fmt.Errorf("download: %s: no destination path", req.URL)
	}
	if req.Size < 0 {
		return Result{}, fmt.Errorf("download: %s: negative expected size %d", req.URL, req.Size)
	}
	if err := req.Digest.Validate(); err != nil {
		return Result{}, fmt.Errorf("download: %s: %w", req.URL, err)
	}
	if res, ok, err := cached(req); ok || err != nil {
		return res, err
	}
	if err := os.MkdirAll(filepath.Dir(req.Path), 0o755); err != nil {
		return Result{}, fmt.Errorf("download: %w", err)
	}
	lock := req.Path + ".lock"
	unlock, err := lockFile(lock)
	if errors.Is(err, errBusy) {
		return Result{}, fmt.Errorf("download: %s: another download to %s is running (it holds %s)", req.URL, req.Path, lock)
	}
	if err != nil {
		return Result{}, fmt.Errorf("download: lock: %w", err)
	}
	defer unlock()
	// Another process may have finished the file while we waited for the lock.
	if res, ok, err := cached(req); ok || err != nil {
		return res, err
	}
	f := &fetch{req: req, part: req.Path + ".part", meta: req.Path + ".part.json", client: req.Client, idle: req.IdleTimeout}
	if f.client == nil {
		f.client = &http.Client{}
	}
	if f.idle <= 0 {
		f.idle = DefaultIdleTimeout
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	f.watchdog = time.AfterFunc(f.idle, func() { cancel(fmt.Errorf("%w: no data for %s", ErrStalled, f.idle)) })
	defer f.watchdog.Stop()
	return f.run(ctx)
}

// errBusy is lockFile's answer when another download holds the lock.
var errBusy = errors.New("locked")

// cached returns the cache hit of req when req.Path exists.
func cached(req Request) (Result, bool, error) {
	st, err := os.Stat(req.Path)
	if errors.Is(err, os.ErrNotExist) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, fmt.Errorf("download: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Result{}, false, fmt.Errorf("download: %s exists and is not a regular file", req.Path)
	}
	if req.Size > 0 && st.Size() != req.Size {
		return Result{}, false, &MismatchError{URL: req.URL, Path: req.Path, What: "size",
			Want: strconv.FormatInt(req.Size, 10), Got: strconv.FormatInt(st.Size(), 10)}
	}
	return Result{Path: req.Path, Bytes: st.Size(), Cached: true}, true, nil
}

// fetch is the state of one Fetch call.
type fetch struct {
	req        Request
	part, meta string
	client     *http.Client
	idle       time.Duration
	watchdog   *time.Timer // cancels the context after idle without data
}

// resumeState returns the offset and metadata of a partial download that can
// be resumed, or 0 when there is none.
func (f *fetch) resumeState() (int64, partMeta) {
	st, err := os.Stat(f.part)
	if err != nil || st.Size() == 0 {
		return 0, partMeta{}
	}
	data, err := os.ReadFile(f.meta)
	if err != nil {
		return 0, partMeta{}
	}
	var m partMeta
	if json.Unmarshal(data, &m) != nil || m.URL != f.req.URL || m.validator() == "" {
		return 0, partMeta{}
	}
	if m.Total >= 0 && st.Size() > m.Total {
		return 0, partMeta{}
	}
	return st.Size(), m
}

func (f *fetch) removePartial() {
	os.Remove(f.part)
	os.Remove(f.meta)
}

func (f *fetch) run(ctx context.Context) (Result, error) {
	offset, meta := f.resumeState()
	resp, err := f.get(ctx, offset, meta.validator())
	if err != nil {
		return Result{}, err
	}
	defer func() { resp.Body.Close() }()
	// restart drops the partial file and asks for the whole file.
	restart := func() error {
		resp.Body.Close()
		f.removePartial()
		r, err := f.get(ctx, 0, "")
		if err != nil {
			return err
		}
		resp = r
		if resp.StatusCode != http.StatusOK {
			return &HTTPError{URL: f.req.URL, StatusCode: resp.StatusCode, Status: resp.Status}
		}
		return nil
	}
	total := int64(-1)
	switch resp.StatusCode {
	case http.StatusOK:
		offset = 0 // Range ignored, or the file changed: start again
		total = resp.ContentLength
	case http.StatusPartialContent:
		start, end, n, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || start != offset || (n >= 0 && end != n-1) {
			// Not the range asked for: start again.
			if err := restart(); err != nil {
				return Result{}, err
			}
			offset, total = 0, resp.ContentLength
			break
		}
		total = n
	case http.StatusRequestedRangeNotSatisfiable:
		if offset > 0 {
			// The partial file may already be complete (interrupted before the
			// rename); the server gives the size as "bytes */N".
			if _, _, n, err := parseContentRange(resp.Header.Get("Content-Range")); err == nil && n == offset {
				return f.finish(ctx, nil, offset, n, meta)
			}
			if err := restart(); err != nil {
				return Result{}, err
			}
			offset, total = 0, resp.ContentLength
			break
		}
		fallthrough
	default:
		return Result{}, &HTTPError{URL: f.req.URL, StatusCode: resp.StatusCode, Status: resp.Status}
	}
	if resp.StatusCode == http.StatusOK {
		meta = partMeta{URL: f.req.URL, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"), Total: total}
	}
	if f.req.Size > 0 && total >= 0 && total != f.req.Size {
		f.removePartial()
		return Result{}, &MismatchError{URL: f.req.URL, Path: f.req.Path, What: "size",
			Want: strconv.FormatInt(f.req.Size, 10), Got: strconv.FormatInt(total, 10) + " (as the server announces it)", Deleted: true}
	}
	return f.finish(ctx, resp.Body, offset, total, meta)
}

// get sends the GET request, with a Range from offset when offset > 0.
func (f *fetch) get(ctx context.Context, offset int64, validator string) (*http.Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, f.req.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("download: %s: %w", f.req.URL, err)
	}
	hreq.Header.Set("User-Agent", "resdet")
	// The bytes of the file itself: no transparent gzip, whose decoded
	// offsets would not match a later Range.
	hreq.Header.Set("Accept-Encoding", "identity")
	if offset > 0 {
		hreq.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		hreq.Header.Set("If-Range", validator)
	}
	f.watchdog.Reset(f.idle)
	resp, err := f.client.Do(hreq)
	if err == nil {
		return resp, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("download: %s: %w", f.req.URL, context.Cause(ctx))
	}
	if isNetworkError(err) {
		return nil, &OfflineError{URL: f.req.URL, Path: f.req.Path, Err: unwrapURLError(err)}
	}
	return nil, fmt.Errorf("download: %w", err)
}

// finish appends body (nil when the partial file is already complete) to the
// partial file from offset, verifies the whole file and renames it into place.
// total is the size the server announced, -1 when it did not.
func (f *fetch) finish(ctx context.Context, body io.Reader, offset, total int64, meta partMeta) (Result, error) {
	flags := os.O_CREATE | os.O_RDWR
	if offset == 0 {
		flags |= os.O_TRUNC
	}
	out, err := os.OpenFile(f.part, flags, 0o644)
	if err != nil {
		return Result{}, fmt.Errorf("download: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			out.Close()
		}
	}()
	sha, sum5 := sha256.New(), md5.New()
	hashes := io.MultiWriter(sha, sum5)
	if offset > 0 {
		// Hash the bytes kept from the earlier attempt.
		if n, err := io.Copy(hashes, io.LimitReader(out, offset)); err != nil || n != offset {
			f.removePartial()
			return Result{}, fmt.Errorf("download: re-read %s: %d of %d bytes: %v", f.part, n, offset, err)
		}
		if err := out.Truncate(offset); err != nil {
			return Result{}, fmt.Errorf("download: %w", err)
		}
		f.watchdog.Reset(f.idle) // re-reading a large partial file is not a stall
	}
	if body != nil {
		if err := writeMeta(f.meta, meta); err != nil {
			return Result{}, err
		}
	}
	done := offset
	progressTotal := total
	if progressTotal < 0 && f.req.Size > 0 {
		progressTotal = f.req.Size
	}
	if f.req.Progress != nil {
		f.req.Progress(done, progressTotal)
	}
	if body != nil {
		buf := make([]byte, 64<<10)
		for {
			n, rerr := body.Read(buf)
			if n > 0 {
				if _, err := out.Write(buf[:n]); err != nil {
					return Result{}, fmt.Errorf("download: write %s: %w", f.part, err)
				}
				hashes.Write(buf[:n])
				done += int64(n)
				f.watchdog.Reset(f.idle)
				if f.req.Progress != nil {
					f.req.Progress(done, progressTotal)
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return Result{}, f.interrupted(ctx, done, total, meta, rerr)
			}
			if total >= 0 && done > total {
				f.removePartial()
				return Result{}, fmt.Errorf("download: %s: the server sent more than the %d bytes it announced; the download was deleted", f.req.URL, total)
			}
		}
	}
	if total >= 0 && done < total {
		return Result{}, f.interrupted(ctx, done, total, meta, io.ErrUnexpectedEOF)
	}
	if f.req.Size > 0 && done != f.req.Size {
		f.removePartial()
		return Result{}, &MismatchError{URL: f.req.URL, Path: f.req.Path, What: "size",
			Want: strconv.FormatInt(f.req.Size, 10), Got: strconv.FormatInt(done, 10), Deleted: true}
	}
	res := Result{Path: f.req.Path, Bytes: done, Resumed: offset,
		SHA256: hex.EncodeToString(sha.Sum(nil)), MD5: hex.EncodeToString(sum5.Sum(nil))}
	if d := f.req.Digest; !d.IsZero() {
		got := res.SHA256
		if d.Algo == MD5 {
			got = res.MD5
		}
		if !strings.HasPrefix(got, d.Prefix) {
			f.removePartial()
			return Result{}, &MismatchError{URL: f.req.URL, Path: f.req.Path, What: string(d.Algo), Want: d.Prefix, Got: got, Deleted: true}
		}
	}
	if err := out.Sync(); err != nil {
		return Result{}, fmt.Errorf("download: %w", err)
	}
	closed = true
	if err := out.Close(); err != nil {
		return Result{}, fmt.Errorf("download: %w", err)
	}
	if err := os.Rename(f.part, f.req.Path); err != nil {
		return Result{}, fmt.Errorf("download: %w", err)
	}
	os.Remove(f.meta)
	return res, nil
}

// interrupted builds the error of a transfer cut short after done bytes. The
// partial file is kept when the server gave a validator to resume with.
func (f *fetch) interrupted(ctx context.Context, done, total int64, meta partMeta, err error) error {
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	of := ""
	if total >= 0 {
		of = fmt.Sprintf(" of %d", total)
	}
	if meta.validator() == "" {
		f.removePartial()
		return fmt.Errorf("download: %s: interrupted after %d%s bytes (the server gives no ETag or Last-Modified, so the next attempt starts again): %w",
			f.req.URL, done, of, err)
	}
	return fmt.Errorf("download: %s: interrupted after %d%s bytes; run again to resume from %s: %w", f.req.URL, done, of, f.part, err)
}

// writeMeta writes the resume metadata atomically.
func writeMeta(path string, m partMeta) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("download: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("download: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("download: %w", err)
	}
	return nil
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*", then
// -1) and "bytes */TOTAL" (START and END are then -1).
func parseContentRange(s string) (start, end, total int64, err error) {
	bad := fmt.Errorf("malformed Content-Range %q", s)
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, bad
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, bad
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total < 0 {
			return 0, 0, 0, bad
		}
	}
	if rng == "*" {
		return -1, -1, total, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, bad
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, 0, bad
	}
	return start, end, total, nil
}

// isNetworkError reports errors that mean the server could not be reached:
// DNS failures and failed dials (refused, unreachable, timed out).
func isNetworkError(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op == "dial" || op.Op == "proxyconnect"
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
