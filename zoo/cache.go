package zoo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"resdet/download"
)

// Environment variables read by NewCache.
const (
	EnvCache   = "RESDET_CACHE"          // folder of the model files
	EnvBaseURL = "RESDET_MODEL_BASE_URL" // replaces the publishers' URL prefixes
)

// Cache is the local folder of downloaded models.
type Cache struct {
	// Dir holds one sub-folder per model name.
	Dir string
	// BaseURL, when not empty, replaces every model's publisher prefix: a
	// model is fetched from BaseURL + "/" + Model.Path.
	BaseURL string
	// Client is the HTTP client; nil means download's default.
	Client *http.Client
}

// NewCache returns the cache in dir, or when dir is "" in $RESDET_CACHE,
// $XDG_CACHE_HOME/resdet/models or ~/.cache/resdet/models (the first that
// is set); BaseURL comes from $RESDET_MODEL_BASE_URL. The folder is not
// created until something is downloaded.
func NewCache(dir string) (*Cache, error) {
	if dir == "" {
		var err error
		if dir, err = DefaultDir(); err != nil {
			return nil, err
		}
	}
	base := os.Getenv(EnvBaseURL)
	if base != "" {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("zoo: $%s=%q is not an http(s) URL", EnvBaseURL, base)
		}
	}
	return &Cache{Dir: dir, BaseURL: base}, nil
}

// DefaultDir returns $RESDET_CACHE, else $XDG_CACHE_HOME/resdet/models, else
// ~/.cache/resdet/models.
func DefaultDir() (string, error) {
	if d := os.Getenv(EnvCache); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "resdet", "models"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("zoo: no cache folder: set $%s or $XDG_CACHE_HOME (%v)", EnvCache, err)
	}
	return filepath.Join(home, ".cache", "resdet", "models"), nil
}

// Path returns where m is (or would be) cached: Dir/<name>/<file name>.
func (c *Cache) Path(m Model) string {
	return filepath.Join(c.Dir, m.Name, m.FileName())
}

// URL returns where m is downloaded from: the publisher's URL, or BaseURL +
// "/" + m.Path.
func (c *Cache) URL(m Model) string {
	if c.BaseURL == "" {
		return m.URL()
	}
	return strings.TrimSuffix(c.BaseURL, "/") + "/" + m.Path
}

// Cached returns the cached file of m and its size; ok is false when there
// is no regular file at Path(m).
func (c *Cache) Cached(m Model) (path string, size int64, ok bool) {
	path = c.Path(m)
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return path, 0, false
	}
	return path, st.Size(), true
}

// FetchResult describes a model file in the cache.
type FetchResult struct {
	download.Result
	// Warning is set when a fresh Detectron2 download's md5 does not start
	// with the digits of its file name (which Detectron2 documents as an md5
	// prefix but never checks); the file is kept.
	Warning string
}

// Fetch returns the cached file of m, downloading it first when absent
// (resuming an interrupted download, verifying size and checksum).
// progress, when not nil, gets the bytes done and the total (-1 when
// unknown). Errors name the URL; without network, the *download.OfflineError
// names the path where the file can be put by hand.
func (c *Cache) Fetch(ctx context.Context, m Model, progress func(done, total int64)) (FetchResult, error) {
	res, err := download.Fetch(ctx, download.Request{
		URL: c.URL(m), Path: c.Path(m), Size: m.Size, Digest: m.Checksum,
		Progress: progress, Client: c.Client,
	})
	if err != nil {
		return FetchResult{}, fmt.Errorf("zoo: %s: %w", m.Name, err)
	}
	out := FetchResult{Result: res}
	if !res.Cached && m.NameMD5 != "" && !strings.HasPrefix(res.MD5, m.NameMD5) {
		out.Warning = fmt.Sprintf("%s: md5 %s does not start with %s, the digits of the file name; Detectron2's MODEL_ZOO.md calls them an md5 prefix but Detectron2 never checks them, so the file was kept (%s)",
			m.Name, res.MD5, m.NameMD5, res.Path)
	}
	return out, nil
}

// IsOffline reports whether err (from Fetch) means the server could not be
// reached.
func IsOffline(err error) bool {
	var off *download.OfflineError
	return errors.As(err, &off)
}
