package zoo

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"resdet/download"
)

func TestRegistry(t *testing.T) {
	ms := Models()
	if len(ms) != 15 {
		t.Errorf("%d models, want 15 (10 Detectron2 COCO, 1 VOC, 2 ImageNet, 2 torchvision)", len(ms))
	}
	names := map[string]bool{}
	urls := map[string]bool{}
	// Detectron2 URL layout (model_zoo.py:99-107): S3_PREFIX + config + "/" + model id + "/model_final_" + 6 hex + ".pkl".
	d2Model := regexp.MustCompile(`^https://dl\.fbaipublicfiles\.com/detectron2/(COCO|PascalVOC)-Detection/faster_rcnn_[A-Za-z0-9_]+/\d{9}/model_final_([0-9a-f]{6})\.pkl$`)
	tvModel := regexp.MustCompile(`^https://download\.pytorch\.org/models/fasterrcnn_[a-z0-9_]+-([0-9a-f]{8})\.pth$`)
	shortName := regexp.MustCompile(`^(d2|tv)(-[a-z0-9]+)+$`)
	for _, m := range ms {
		t.Run(m.Name, func(t *testing.T) {
			if names[m.Name] {
				t.Errorf("duplicate name %q", m.Name)
			}
			names[m.Name] = true
			if !shortName.MatchString(m.Name) {
				t.Errorf("name %q is not <publisher>-<lowercase parts>", m.Name)
			}
			u, err := url.Parse(m.URL())
			if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(m.URL(), " \t\n") {
				t.Errorf("URL %q is not a plain https URL (%v)", m.URL(), err)
			}
			if urls[m.URL()] {
				t.Errorf("duplicate URL %s", m.URL())
			}
			urls[m.URL()] = true
			if !strings.HasSuffix(m.URL(), "/"+m.FileName()) || m.FileName() == "" {
				t.Errorf("file name %q is not the end of %s", m.FileName(), m.URL())
			}
			if m.Title == "" || m.Arch == "" || m.Source == "" || m.Format == "" || m.Construction == "" || m.Dataset == "" {
				t.Errorf("incomplete entry %+v", m)
			}
			switch m.Dataset {
			case COCO, VOC:
				wantMetric := map[Dataset]string{COCO: "box AP", VOC: "AP50"}[m.Dataset]
				if m.Metric != wantMetric || !(m.AP > 0 && m.AP < 100) {
					t.Errorf("metric %q %g, want %s in (0, 100)", m.Metric, m.AP, wantMetric)
				}
			case ImageNet:
				if m.Metric != "" || m.AP != 0 || m.Format != FormatCaffe2 {
					t.Errorf("ImageNet backbone with metric %q %g, format %s", m.Metric, m.AP, m.Format)
				}
			default:
				t.Errorf("unknown dataset %q", m.Dataset)
			}
			if err := m.Checksum.Validate(); err != nil {
				t.Error(err)
			}
			switch m.Format {
			case FormatDetectron2:
				sub := d2Model.FindStringSubmatch(m.URL())
				if sub == nil || m.Construction != Detectron2 || !strings.HasPrefix(m.URL(), d2Base+m.Title+"/") {
					t.Errorf("Detectron2 model URL %s (title %s) does not follow model_zoo.py's layout", m.URL(), m.Title)
				} else if m.NameMD5 != sub[2] || !m.Checksum.IsZero() {
					t.Errorf("NameMD5 %q (want %q) and checksum %+v (want none)", m.NameMD5, sub[2], m.Checksum)
				}
			case FormatCaffe2:
				if !strings.HasPrefix(m.URL(), d2Base+"ImageNetPretrained/MSRA/R-") || m.NameMD5 != "" || !m.Checksum.IsZero() {
					t.Errorf("ImageNet entry %s: NameMD5 %q, checksum %+v", m.URL(), m.NameMD5, m.Checksum)
				}
			case FormatTorchvision:
				sub := tvModel.FindStringSubmatch(m.URL())
				if sub == nil || m.Construction != Torchvision || m.Checksum != (download.Digest{Algo: download.SHA256, Prefix: sub[1]}) {
					t.Errorf("torchvision URL %s, checksum %+v: want the SHA-256 prefix of the file name", m.URL(), m.Checksum)
				}
			default:
				t.Errorf("unknown format %q", m.Format)
			}
			got, err := Lookup(m.Name)
			if err != nil || got.URL() != m.URL() {
				t.Errorf("Lookup(%q) = %s, %v", m.Name, got.URL(), err)
			}
		})
	}
	def := Default()
	if def.Name != DefaultName || def.Title != "COCO-Detection/faster_rcnn_R_101_C4_3x" || def.AP != 41.1 || def.Arch != "r101-c4" {
		t.Errorf("default model %+v, want Detectron2's faster_rcnn_R_101_C4_3x (41.1 box AP)", def)
	}
	if _, err := Lookup("r101"); err == nil || !strings.Contains(err.Error(), `unknown model "r101"; known: d2-r50-c4-1x, `) {
		t.Errorf("Lookup of an unknown name: %v", err)
	}
}

// TestRegistryMatchesTorchvision compares the torchvision entries with what
// the installed torchvision publishes (URL, box mAP, torch.hub's hash prefix).
func TestRegistryMatchesTorchvision(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torchvision").Run(); err != nil {
		if os.Getenv("RESDET_REQUIRE_TORCH") == "1" {
			t.Fatalf("%s cannot import torchvision (%v) and RESDET_REQUIRE_TORCH=1", py, err)
		}
		t.Skipf("skipping: %s cannot import torchvision (%v); set RESDET_REQUIRE_TORCH=1 to fail instead", py, err)
	}
	out, err := exec.Command(py, filepath.Join("testdata", "torchvision_weights.py")).Output()
	if err != nil {
		t.Fatalf("torchvision_weights.py: %v", err)
	}
	var ref map[string]struct {
		URL          string  `json:"url"`
		BoxMAP       float64 `json:"box_map"`
		SHA256Prefix string  `json:"sha256_prefix"`
	}
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatalf("torchvision_weights.py output %q: %v", out, err)
	}
	tests := []struct{ name, builder string }{
		{name: "tv-r50-fpn", builder: "fasterrcnn_resnet50_fpn"},
		{name: "tv-r50-fpn-v2", builder: "fasterrcnn_resnet50_fpn_v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Lookup(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			r, ok := ref[tt.builder]
			if !ok {
				t.Fatalf("torchvision_weights.py printed no %s", tt.builder)
			}
			if m.URL() != r.URL || m.AP != r.BoxMAP || m.Checksum.Prefix != r.SHA256Prefix || m.Checksum.Algo != download.SHA256 {
				t.Errorf("registry %s AP %g checksum %+v; torchvision %s AP %g sha256 prefix %s",
					m.URL(), m.AP, m.Checksum, r.URL, r.BoxMAP, r.SHA256Prefix)
			}
		})
	}
}

func TestDefaultDir(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skipf("no home folder: %v", err)
	}
	tests := []struct {
		name       string
		cache, xdg string
		want       string
	}{
		{name: "RESDET_CACHE wins", cache: "/srv/models", xdg: "/tmp/xdg", want: "/srv/models"},
		{name: "XDG_CACHE_HOME", xdg: "/tmp/xdg", want: "/tmp/xdg/resdet/models"},
		{name: "home", want: filepath.Join(home, ".cache", "resdet", "models")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvCache, tt.cache)
			t.Setenv("XDG_CACHE_HOME", tt.xdg)
			got, err := DefaultDir()
			if err != nil || got != tt.want {
				t.Fatalf("DefaultDir() = %q, %v; want %q", got, err, tt.want)
			}
			c, err := NewCache("")
			if err != nil || c.Dir != tt.want {
				t.Fatalf("NewCache(\"\").Dir = %+v, %v; want %q", c, err, tt.want)
			}
			if c, err := NewCache("/opt/w"); err != nil || c.Dir != "/opt/w" {
				t.Fatalf("NewCache(dir) = %+v, %v; want the folder given", c, err)
			}
		})
	}
}

func TestCacheURLAndPath(t *testing.T) {
	m := Default()
	tests := []struct {
		name, base, wantURL, wantErr string
	}{
		{name: "publisher", wantURL: "https://dl.fbaipublicfiles.com/detectron2/COCO-Detection/faster_rcnn_R_101_C4_3x/138204752/model_final_298dad.pkl"},
		{name: "mirror", base: "http://127.0.0.1:8080/mirror/",
			wantURL: "http://127.0.0.1:8080/mirror/COCO-Detection/faster_rcnn_R_101_C4_3x/138204752/model_final_298dad.pkl"},
		{name: "bad base", base: "mirror.local/models", wantErr: `$RESDET_MODEL_BASE_URL="mirror.local/models" is not an http(s) URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvBaseURL, tt.base)
			c, err := NewCache("/cache")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.URL(m); got != tt.wantURL {
				t.Errorf("URL = %s, want %s", got, tt.wantURL)
			}
			if got, want := c.Path(m), "/cache/d2-r101-c4-3x/model_final_298dad.pkl"; got != want {
				t.Errorf("Path = %s, want %s", got, want)
			}
		})
	}
}

func TestCacheFetch(t *testing.T) {
	data := make([]byte, 200_000)
	rand.New(rand.NewSource(7)).Read(data)
	sum := md5.Sum(data)
	md5hex := hex.EncodeToString(sum[:])
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("ETag", `"e"`)
		http.ServeContent(w, r, "f", time.Unix(1_600_000_000, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	tv, _ := Lookup("tv-r50-fpn")
	// A Detectron2-style entry whose name digits are the md5 prefix of data.
	matching := Model{Name: "d2-test", Path: "COCO-Detection/x/1/model_final_" + md5hex[:6] + ".pkl", NameMD5: md5hex[:6]}
	tests := []struct {
		name        string
		model       Model
		wantErr     string
		wantWarning string
	}{
		{name: "default model, digits not its md5", model: Default(), wantWarning: "md5 " + md5hex + " does not start with 298dad"},
		{name: "digits are the md5 prefix", model: matching},
		{name: "torchvision checksum enforced", model: tv,
			wantErr: "tv-r50-fpn: download: " + srv.URL + "/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth: sha256 mismatch: expected 258fb6c6..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvBaseURL, srv.URL)
			c, err := NewCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			requests.Store(0)
			res, err := c.Fetch(context.Background(), tt.model, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if _, _, ok := c.Cached(tt.model); ok {
					t.Errorf("a file was left at %s", c.Path(tt.model))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(res.Warning, tt.wantWarning) || (tt.wantWarning == "") != (res.Warning == "") {
				t.Errorf("warning %q, want %q", res.Warning, tt.wantWarning)
			}
			path, size, ok := c.Cached(tt.model)
			if !ok || path != c.Path(tt.model) || size != int64(len(data)) || res.Path != path {
				t.Fatalf("Cached = %s %d %v after fetching to %s", path, size, ok, res.Path)
			}
			// A second Fetch is a cache hit: no request, no warning.
			res, err = c.Fetch(context.Background(), tt.model, nil)
			if err != nil || !res.Cached || res.Warning != "" || requests.Load() != 1 {
				t.Errorf("second fetch: %+v, %v, %d requests in all", res, err, requests.Load())
			}
		})
	}
}

func TestCacheFetchOffline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv(EnvBaseURL, "http://"+addr)
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Fetch(context.Background(), Default(), nil)
	if !IsOffline(err) {
		t.Fatalf("error %v, want an offline error", err)
	}
	for _, want := range []string{c.URL(Default()), "put the file at " + filepath.Join(c.Dir, "d2-r101-c4-3x", "model_final_298dad.pkl")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}
