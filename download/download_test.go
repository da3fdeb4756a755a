package download

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// payload is the served file: 300 KB of seeded random bytes, so a download
// takes several 64 KB chunks.
func payload(seed int64) []byte {
	b := make([]byte, 300_000)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func md5Hex(b []byte) string    { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

// handler serves request number i (from 0) of a scenario.
type handler func(w http.ResponseWriter, r *http.Request)

// serve answers with http.ServeContent (Range, If-Range, 416) and the given
// strong ETag.
func serve(data []byte, etag string) handler {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag)
		http.ServeContent(w, r, "model.pkl", time.Unix(1_600_000_000, 0), bytes.NewReader(data))
	}
}

// truncate announces the whole file, sends its first n bytes and closes the
// connection.
func truncate(data []byte, etag string, n int) handler {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:n])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
}

// ignoreRange always sends the whole file with 200.
func ignoreRange(data []byte, etag string) handler {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	}
}

// wrongRange answers any request with 206 and the first 1000 bytes.
func wrongRange(data []byte, etag string) handler {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-999/%d", len(data)))
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[:1000])
	}
}

// chunked sends the file without a Content-Length.
func chunked(data []byte) handler {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(data); i += 50_000 {
			w.Write(data[i:min(i+50_000, len(data))])
			w.(http.Flusher).Flush()
		}
	}
}

// stall sends the first n bytes and then waits for the client to go away.
func stall(data []byte, etag string, n int) handler {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:n])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
}

func status(code int) handler {
	return func(w http.ResponseWriter, r *http.Request) { http.Error(w, http.StatusText(code), code) }
}

// recorder is a test server answering the i-th request with handlers[i] and
// recording the Range and If-Range headers it saw.
type recorder struct {
	mu       sync.Mutex
	handlers []handler
	seen     []string // "Range|If-Range" per request
}

func (s *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := len(s.seen)
	s.seen = append(s.seen, r.Header.Get("Range")+"|"+r.Header.Get("If-Range"))
	s.mu.Unlock()
	if i >= len(s.handlers) {
		http.Error(w, "unexpected request", http.StatusTeapot)
		return
	}
	s.handlers[i](w, r)
}

func (s *recorder) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// step is one Fetch call of a scenario.
type step struct {
	size        int64
	digest      Digest
	cancelAfter int64 // cancel the context once this many bytes are written (0: never)
	idle        time.Duration
	wantErr     string
	wantResumed int64
	wantData    []byte // the final file; nil: no final file
	wantPart    int64  // size of PATH.part after the step; -1: absent
}

func TestFetch(t *testing.T) {
	data := payload(1)
	other := payload(2)
	const cut = 100_000
	tests := []struct {
		name     string
		handlers []handler
		prepare  func(t *testing.T, path, url string) // runs before the first step
		steps    []step
		seen     []string // Range|If-Range headers the server must have seen
	}{
		{name: "full download", handlers: []handler{serve(data, `"v1"`)},
			steps: []step{{digest: Digest{SHA256, sha256Hex(data)[:8]}, wantData: data, wantPart: -1}},
			seen:  []string{"|"}},
		{name: "md5 prefix and size", handlers: []handler{serve(data, `"v1"`)},
			steps: []step{{size: int64(len(data)), digest: Digest{MD5, md5Hex(data)[:6]}, wantData: data, wantPart: -1}}},
		{name: "truncated then resumed", handlers: []handler{truncate(data, `"v1"`, cut), serve(data, `"v1"`)},
			steps: []step{
				{wantErr: "interrupted after 100000 of 300000 bytes; run again to resume", wantPart: cut},
				{digest: Digest{SHA256, sha256Hex(data)[:8]}, wantResumed: cut, wantData: data, wantPart: -1},
			},
			seen: []string{"|", `bytes=100000-|"v1"`}},
		{name: "server ignores Range", handlers: []handler{truncate(data, `"v1"`, cut), ignoreRange(data, `"v1"`)},
			steps: []step{
				{wantErr: "interrupted", wantPart: cut},
				{digest: Digest{SHA256, sha256Hex(data)[:8]}, wantData: data, wantPart: -1},
			},
			seen: []string{"|", `bytes=100000-|"v1"`}},
		{name: "wrong range then restart", handlers: []handler{truncate(data, `"v1"`, cut), wrongRange(data, `"v1"`), serve(data, `"v1"`)},
			steps: []step{
				{wantErr: "interrupted", wantPart: cut},
				{digest: Digest{SHA256, sha256Hex(data)[:8]}, wantData: data, wantPart: -1},
			},
			seen: []string{"|", `bytes=100000-|"v1"`, "|"}},
		{name: "unsatisfiable range then restart", handlers: []handler{truncate(data, `"v1"`, cut), status(416), serve(data, `"v1"`)},
			steps: []step{
				{wantErr: "interrupted", wantPart: cut},
				{wantData: data, wantPart: -1},
			},
			seen: []string{"|", `bytes=100000-|"v1"`, "|"}},
		{name: "restart answered 404", handlers: []handler{truncate(data, `"v1"`, cut), wrongRange(data, `"v1"`), status(404)},
			steps: []step{
				{wantErr: "interrupted", wantPart: cut},
				{wantErr: "HTTP 404 Not Found", wantPart: -1},
			},
			seen: []string{"|", `bytes=100000-|"v1"`, "|"}},
		{name: "file changed on the server", handlers: []handler{truncate(data, `"v1"`, cut), serve(other, `"v2"`)},
			steps: []step{
				{wantErr: "interrupted", wantPart: cut},
				{wantData: other, wantPart: -1},
			},
			seen: []string{"|", `bytes=100000-|"v1"`}},
		{name: "no validator: no resume", handlers: []handler{truncate(data, "", cut), serve(data, "")},
			steps: []step{
				{wantErr: "no ETag or Last-Modified", wantPart: -1},
				{wantData: data, wantPart: -1},
			},
			seen: []string{"|", "|"}},
		{name: "partial file already complete", handlers: []handler{serve(data, `"v1"`)},
			prepare: func(t *testing.T, path, url string) {
				writeFile(t, path+".part", data)
				writeFile(t, path+".part.json", fmt.Appendf(nil, `{"url": %q, "etag": "\"v1\"", "total": %d}`, url, len(data)))
			},
			steps: []step{{digest: Digest{SHA256, sha256Hex(data)[:8]}, wantResumed: int64(len(data)), wantData: data, wantPart: -1}},
			seen:  []string{`bytes=300000-|"v1"`}},
		{name: "partial file of another URL", handlers: []handler{serve(data, `"v1"`)},
			prepare: func(t *testing.T, path, url string) {
				writeFile(t, path+".part", other[:cut])
				writeFile(t, path+".part.json", []byte(`{"url": "https://elsewhere/x", "etag": "\"v1\"", "total": 300000}`))
			},
			steps: []step{{wantData: data, wantPart: -1}},
			seen:  []string{"|"}},
		{name: "wrong checksum", handlers: []handler{serve(data, `"v1"`)},
			steps: []step{{digest: Digest{SHA256, flip(sha256Hex(data)[:8])},
				wantErr:  fmt.Sprintf("sha256 mismatch: expected %s..., got %s; the bad download was deleted", flip(sha256Hex(data)[:8]), sha256Hex(data)),
				wantPart: -1}}},
		{name: "wrong checksum after resume", handlers: []handler{truncate(data, `"v1"`, cut), serve(data, `"v1"`)},
			steps: []step{
				{wantErr: "interrupted", wantPart: cut},
				{digest: Digest{MD5, flip(md5Hex(data)[:6])}, wantErr: "md5 mismatch: expected " + flip(md5Hex(data)[:6]) + "..., got " + md5Hex(data), wantPart: -1},
			}},
		{name: "wrong size announced", handlers: []handler{serve(data, `"v1"`)},
			steps: []step{{size: 1234, wantErr: "size mismatch: expected 1234, got 300000 (as the server announces it); the bad download was deleted", wantPart: -1}}},
		{name: "wrong size without Content-Length", handlers: []handler{chunked(data)},
			steps: []step{{size: 300_001, wantErr: "size mismatch: expected 300001, got 300000; the bad download was deleted", wantPart: -1}}},
		{name: "404", handlers: []handler{status(404)},
			steps: []step{{wantErr: "/models/model.pkl: HTTP 404 Not Found", wantPart: -1}}},
		{name: "500", handlers: []handler{status(500)},
			steps: []step{{wantErr: "/models/model.pkl: HTTP 500 Internal Server Error", wantPart: -1}}},
		{name: "cache hit", handlers: nil,
			prepare: func(t *testing.T, path, url string) { writeFile(t, path, other) },
			steps:   []step{{wantData: other, wantPart: -1}},
			seen:    []string{}},
		{name: "cache hit of the wrong size", handlers: nil,
			prepare: func(t *testing.T, path, url string) { writeFile(t, path, other[:10]) },
			steps:   []step{{size: 300_000, wantErr: "size mismatch: expected 300000, got 10; delete", wantData: other[:10], wantPart: -1}},
			seen:    []string{}},
		{name: "stalled then resumed", handlers: []handler{stall(data, `"v1"`, cut), serve(data, `"v1"`)},
			steps: []step{
				{idle: 200 * time.Millisecond, wantErr: "interrupted after 100000 of 300000 bytes; run again to resume from ", wantPart: cut},
				{wantResumed: cut, wantData: data, wantPart: -1},
			},
			seen: []string{"|", `bytes=100000-|"v1"`}},
		{name: "cancelled then resumed", handlers: []handler{stall(data, `"v1"`, cut), serve(data, `"v1"`)},
			steps: []step{
				{cancelAfter: cut, wantErr: "context canceled", wantPart: cut},
				{wantResumed: cut, wantData: data, wantPart: -1},
			},
			seen: []string{"|", `bytes=100000-|"v1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{handlers: tt.handlers}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			url := srv.URL + "/models/model.pkl"
			path := filepath.Join(t.TempDir(), "cache", "m", "model.pkl")
			if tt.prepare != nil {
				tt.prepare(t, path, url)
			}
			for i, st := range tt.steps {
				ctx, cancel := context.WithCancel(context.Background())
				var calls [][2]int64
				res, err := Fetch(ctx, Request{URL: url, Path: path, Size: st.size, Digest: st.digest, IdleTimeout: st.idle,
					Progress: func(done, total int64) {
						calls = append(calls, [2]int64{done, total})
						if st.cancelAfter > 0 && done >= st.cancelAfter {
							cancel()
						}
					}})
				cancel()
				if st.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), st.wantErr) {
						t.Fatalf("step %d: error %v, want one containing %q", i, err, st.wantErr)
					}
					if st.idle > 0 && (!errors.Is(err, ErrStalled) || !strings.HasSuffix(err.Error(), "download stalled: no data for "+st.idle.String())) {
						t.Fatalf("step %d: error %v, want ErrStalled after %s", i, err, st.idle)
					}
					if st.cancelAfter > 0 && !errors.Is(err, context.Canceled) {
						t.Fatalf("step %d: error %v, want context.Canceled", i, err)
					}
				} else if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				checkFile(t, path, st.wantData)
				checkPart(t, path+".part", st.wantPart)
				if err != nil {
					continue
				}
				if res.Resumed != st.wantResumed || res.Bytes != int64(len(st.wantData)) || res.Path != path {
					t.Errorf("step %d: result %+v, want %d bytes, %d resumed", i, res, len(st.wantData), st.wantResumed)
				}
				if res.Cached {
					if len(calls) != 0 {
						t.Errorf("step %d: progress called on a cache hit: %v", i, calls)
					}
					continue
				}
				if res.SHA256 != sha256Hex(st.wantData) || res.MD5 != md5Hex(st.wantData) {
					t.Errorf("step %d: digests %s %s, want %s %s", i, res.SHA256, res.MD5, sha256Hex(st.wantData), md5Hex(st.wantData))
				}
				checkProgress(t, calls, st.wantResumed, int64(len(st.wantData)))
				if _, err := os.Stat(path + ".part.json"); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("step %d: resume metadata left behind (%v)", i, err)
				}
			}
			if tt.seen != nil {
				if got := rec.requests(); strings.Join(got, " ") != strings.Join(tt.seen, " ") {
					t.Errorf("server saw Range|If-Range %q, want %q", got, tt.seen)
				}
			}
		})
	}
}

// checkProgress: the first call reports the resumed offset, done never
// decreases, every call gives the total, and the last reaches it.
func checkProgress(t *testing.T, calls [][2]int64, offset, total int64) {
	t.Helper()
	if len(calls) == 0 || (offset < total && len(calls) < 2) {
		t.Fatalf("progress called %d times (%v)", len(calls), calls)
	}
	if calls[0][0] != offset {
		t.Errorf("first progress call %v, want done %d", calls[0], offset)
	}
	for i, c := range calls {
		if c[1] != total {
			t.Errorf("progress call %d: total %d, want %d", i, c[1], total)
		}
		if i > 0 && c[0] < calls[i-1][0] {
			t.Errorf("progress went back: %v then %v", calls[i-1], c)
		}
	}
	if last := calls[len(calls)-1]; last[0] != total {
		t.Errorf("last progress call %v, want done %d", last, total)
	}
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if want == nil {
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s exists (%d bytes, %v), want no file", path, len(got), err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes (sha256 %s), want %d bytes (sha256 %s)", path, len(got), sha256Hex(got), len(want), sha256Hex(want))
	}
}

func checkPart(t *testing.T, part string, want int64) {
	t.Helper()
	st, err := os.Stat(part)
	switch {
	case want < 0 && !errors.Is(err, os.ErrNotExist):
		t.Fatalf("%s left behind (%v)", part, err)
	case want >= 0 && err != nil:
		t.Fatalf("partial file: %v", err)
	case want >= 0 && st.Size() != want:
		t.Fatalf("%s has %d bytes, want %d", part, st.Size(), want)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// flip changes the first hex digit of a digest prefix.
func flip(prefix string) string {
	c := "0"
	if prefix[0] == '0' {
		c = "1"
	}
	return c + prefix[1:]
}

func TestFetchOffline(t *testing.T) {
	// A port that was just open and is now closed: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	path := filepath.Join(t.TempDir(), "d2-r101-c4-3x", "model_final_298dad.pkl")
	url := "http://" + addr + "/detectron2/model_final_298dad.pkl"
	_, err = Fetch(context.Background(), Request{URL: url, Path: path})
	var off *OfflineError
	if !errors.As(err, &off) {
		t.Fatalf("error %v (%T), want *OfflineError", err, err)
	}
	for _, want := range []string{"cannot reach " + url, "connection refused", "put the file at " + path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	checkFile(t, path, nil)
	checkPart(t, path+".part", -1)
}

func TestFetchBadRequest(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		req     Request
		wantErr string
	}{
		{name: "not http", req: Request{URL: "ftp://host/x", Path: filepath.Join(dir, "x")}, wantErr: `"ftp://host/x" is not an http(s) URL`},
		{name: "no host", req: Request{URL: "https:///x", Path: filepath.Join(dir, "x")}, wantErr: "is not an http(s) URL"},
		{name: "no path", req: Request{URL: "https://host/x"}, wantErr: "https://host/x: no destination path"},
		{name: "negative size", req: Request{URL: "https://host/x", Path: filepath.Join(dir, "x"), Size: -1}, wantErr: "negative expected size -1"},
		{name: "digest algo", req: Request{URL: "https://host/x", Path: filepath.Join(dir, "x"), Digest: Digest{"crc32", "abcd"}}, wantErr: `unknown algorithm "crc32"`},
		{name: "digest hex", req: Request{URL: "https://host/x", Path: filepath.Join(dir, "x"), Digest: Digest{SHA256, "ABCD"}}, wantErr: `prefix "ABCD" is not lowercase hex`},
		{name: "digest length", req: Request{URL: "https://host/x", Path: filepath.Join(dir, "x"), Digest: Digest{MD5, strings.Repeat("a", 33)}}, wantErr: "longer than 32 hex digits"},
		{name: "path is a folder", req: Request{URL: "https://host/x", Path: dir}, wantErr: "exists and is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Fetch(context.Background(), tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                string
		start, end, total int64
		wantErr           bool
	}{
		{in: "bytes 0-99/100", start: 0, end: 99, total: 100},
		{in: "bytes 100-299999/300000", start: 100, end: 299999, total: 300000},
		{in: "bytes 5-9/*", start: 5, end: 9, total: -1},
		{in: "bytes */300000", start: -1, end: -1, total: 300000},
		{in: "", wantErr: true},
		{in: "bytes 9-5/10", wantErr: true},
		{in: "bytes 0-9", wantErr: true},
		{in: "items 0-9/10", wantErr: true},
		{in: "bytes a-9/10", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, e, n, err := parseContentRange(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error, got %d %d %d", s, e, n)
				}
				return
			}
			if err != nil || s != tt.start || e != tt.end || n != tt.total {
				t.Fatalf("got %d %d %d %v, want %d %d %d", s, e, n, err, tt.start, tt.end, tt.total)
			}
		})
	}
}

func TestFetchLocked(t *testing.T) {
	data := payload(3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "m", time.Unix(1_600_000_000, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "model.pkl")
	unlock, err := lockFile(path + ".lock") // another download in progress
	if err != nil {
		t.Fatal(err)
	}
	_, err = Fetch(context.Background(), Request{URL: srv.URL + "/m", Path: path})
	if want := "another download to " + path + " is running (it holds " + path + ".lock)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
	checkFile(t, path, nil)
	unlock()
	if _, err := Fetch(context.Background(), Request{URL: srv.URL + "/m", Path: path}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, data)
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left behind (%v)", err)
	}
}
