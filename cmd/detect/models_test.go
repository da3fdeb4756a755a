package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"resdet/internal/cli"
	"resdet/internal/cli/clitest"
	"resdet/zoo"
)

func TestNewCmdModels(t *testing.T) {
	tests := []struct {
		name    string
		argv    string
		want    ModelsOptions
		wantErr string
	}{
		{name: "list", argv: "", want: ModelsOptions{}},
		{name: "list json", argv: "--json --cache /m", want: ModelsOptions{JSON: true, Cache: "/m"}},
		{name: "download", argv: "download d2-r101-c4-3x tv-r50-fpn", want: ModelsOptions{Download: true, Names: []string{"d2-r101-c4-3x", "tv-r50-fpn"}}},
		{name: "fetch alias", argv: "fetch --cache /m tv-r50-fpn-v2", want: ModelsOptions{Download: true, Cache: "/m", Names: []string{"tv-r50-fpn-v2"}}},
		{name: "no names", argv: "download", wantErr: "no model names given"},
		{name: "unknown name", argv: "download d2-r101-c4-3x resnet101", wantErr: `unknown model "resnet101"; known: d2-r50-c4-1x`},
		{name: "list takes no names", argv: "d2-r101-c4-3x", wantErr: `unknown command "d2-r101-c4-3x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, _, _ := cli.Test()
			var got *ModelsOptions
			cmd := newCmdModels(ios, func(o *ModelsOptions) error { got = o; return nil })
			if !clitest.Execute(t, cmd, ios, strings.Fields(tt.argv), tt.wantErr) {
				return
			}
			if got == nil {
				t.Fatal("run function not called")
			}
			g := *got
			g.IO = nil
			if !reflect.DeepEqual(g, tt.want) {
				t.Errorf("options\n got %+v\nwant %+v", g, tt.want)
			}
		})
	}
}

// modelServer serves payload at the path of every model except missing,
// which answers 404.
func modelServer(t *testing.T, payload []byte, missing string) *httptest.Server {
	t.Helper()
	known := map[string]bool{}
	for _, m := range zoo.Models() {
		known["/"+m.Path] = true
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !known[r.URL.Path] || r.URL.Path == "/"+missing {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"1"`)
		http.ServeContent(w, r, "model", time.Unix(1_600_000_000, 0), bytes.NewReader(payload))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestModelsDownload(t *testing.T) {
	payload := make([]byte, 150_000)
	rand.New(rand.NewSource(3)).Read(payload)
	sum := sha256.Sum256(payload)
	sha := hex.EncodeToString(sum[:])
	missing := "COCO-Detection/faster_rcnn_R_50_C4_1x/137257644/model_final_721ade.pkl"
	srv := modelServer(t, payload, missing)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	cache := t.TempDir()
	defaultPath := filepath.Join(cache, "d2-r101-c4-3x", "model_final_298dad.pkl")
	resumedPath := filepath.Join(cache, "d2-r50-fpn-3x", "model_final_280758.pkl")
	tests := []struct {
		name       string
		base       string
		argv       []string
		wantErr    string
		wantOut    []string // substrings of stdout
		wantErrOut []string // substrings of stderr
		wantFile   string   // a file that must then hold payload
		prepare    func(t *testing.T)
	}{
		{name: "download the default model", base: srv.URL, argv: []string{"download", "--cache", cache, "d2-r101-c4-3x"},
			wantOut:    []string{"d2-r101-c4-3x: " + defaultPath + " (146.5 KiB, sha256 " + sha + ")\n"},
			wantErrOut: []string{"d2-r101-c4-3x: 146.5 KiB/146.5 KiB in ", "warning: d2-r101-c4-3x: md5 ", "does not start with 298dad"},
			wantFile:   defaultPath},
		{name: "second download is a cache hit", base: closed, argv: []string{"fetch", "--cache", cache, "d2-r101-c4-3x"},
			wantOut: []string{"d2-r101-c4-3x: " + defaultPath + " (already cached, 146.5 KiB)\n"}, wantFile: defaultPath},
		{name: "list shows the cached file", base: srv.URL, argv: []string{"--cache", cache},
			wantOut: []string{
				"NAME ", "d2-r101-c4-3x *", "r101-c4", "detectron2", "coco", "41.1", "146.5 KiB", defaultPath,
				"d2-r50-c4-voc", "80.3 AP50", "tv-r50-fpn-v2", "46.7",
				"Cache: " + cache, "Downloads from $RESDET_MODEL_BASE_URL=" + srv.URL,
			}},
		{name: "resume a partial download", base: srv.URL, argv: []string{"download", "--cache", cache, "d2-r50-fpn-3x"},
			prepare: func(t *testing.T) {
				part := filepath.Join(cache, "d2-r50-fpn-3x", "model_final_280758.pkl.part")
				url := srv.URL + "/COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl"
				if err := os.MkdirAll(filepath.Dir(part), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(part, payload[:100_000], 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(part+".json", []byte(`{"url": "`+url+`", "etag": "\"1\"", "total": 150000}`), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantOut:    []string{"d2-r50-fpn-3x: " + resumedPath + " (146.5 KiB, resumed at 97.7 KiB, sha256 " + sha + ")\n"},
			wantErrOut: []string{"d2-r50-fpn-3x: 146.5 KiB/146.5 KiB in "},
			wantFile:   resumedPath},
		{name: "torchvision checksum", base: srv.URL, argv: []string{"download", "--cache", cache, "tv-r50-fpn"},
			wantErr: "zoo: tv-r50-fpn: download: " + srv.URL + "/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth: sha256 mismatch: expected 258fb6c6..., got " + sha + "; the bad download was deleted"},
		{name: "404", base: srv.URL, argv: []string{"download", "--cache", cache, "d2-r50-c4-1x"},
			wantErr: srv.URL + "/" + missing + ": HTTP 404 Not Found"},
		{name: "offline", base: closed, argv: []string{"download", "--cache", cache, "d2-r101-fpn-3x"},
			wantErr: "on another machine and put the file at " + filepath.Join(cache, "d2-r101-fpn-3x", "model_final_f6e8b1.pkl")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(zoo.EnvBaseURL, tt.base)
			if tt.prepare != nil {
				tt.prepare(t)
			}
			ios, _, out, errOut := cli.Test()
			if clitest.Execute(t, newCmdModels(ios, nil), ios, tt.argv, tt.wantErr) {
				for _, want := range tt.wantOut {
					if !strings.Contains(out.String(), want) {
						t.Errorf("stdout does not contain %q:\n%s", want, out.String())
					}
				}
				for _, want := range tt.wantErrOut {
					if !strings.Contains(errOut.String(), want) {
						t.Errorf("stderr does not contain %q:\n%s", want, errOut.String())
					}
				}
			}
			if tt.wantFile != "" {
				if got, err := os.ReadFile(tt.wantFile); err != nil || !bytes.Equal(got, payload) {
					t.Errorf("%s: %d bytes, %v; want the %d served bytes", tt.wantFile, len(got), err, len(payload))
				}
			}
		})
	}
	// Nothing but the two downloaded models was left in the cache.
	var files []string
	filepath.WalkDir(cache, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if want := []string{defaultPath, resumedPath}; !reflect.DeepEqual(files, want) {
		t.Errorf("cache holds %v, want only %v", files, want)
	}
}

func TestModelsJSON(t *testing.T) {
	cache := t.TempDir()
	t.Setenv(zoo.EnvBaseURL, "")
	cached := filepath.Join(cache, "tv-r50-fpn-v2", "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth")
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cached, make([]byte, 1234), 0o644); err != nil {
		t.Fatal(err)
	}
	ios, _, out, _ := cli.Test()
	clitest.Execute(t, newCmdModels(ios, nil), ios, []string{"--json", "--cache", cache}, "")
	var got []modelJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not a JSON array: %v\n%s", err, out.String())
	}
	models := zoo.Models()
	if len(got) != len(models) {
		t.Fatalf("%d entries, want %d", len(got), len(models))
	}
	tests := []struct {
		name string
		want modelJSON
	}{
		{name: "d2-r101-c4-3x", want: modelJSON{Name: "d2-r101-c4-3x", Title: "COCO-Detection/faster_rcnn_R_101_C4_3x",
			URL:  "https://dl.fbaipublicfiles.com/detectron2/COCO-Detection/faster_rcnn_R_101_C4_3x/138204752/model_final_298dad.pkl",
			File: "model_final_298dad.pkl", Format: "detectron2-pkl", Arch: "r101-c4", Construction: "detectron2", Dataset: "coco",
			Metric: "box AP", AP: 41.1, Default: true, Runs: true, Path: filepath.Join(cache, "d2-r101-c4-3x", "model_final_298dad.pkl")}},
		{name: "d2-x101-32x8d-fpn-3x", want: modelJSON{Name: "d2-x101-32x8d-fpn-3x", Title: "COCO-Detection/faster_rcnn_X_101_32x8d_FPN_3x",
			URL:  "https://dl.fbaipublicfiles.com/detectron2/COCO-Detection/faster_rcnn_X_101_32x8d_FPN_3x/139173657/model_final_68b088.pkl",
			File: "model_final_68b088.pkl", Format: "detectron2-pkl", Arch: "x101-fpn", Construction: "detectron2", Dataset: "coco",
			Metric: "box AP", AP: 43.0, Runs: true, Path: filepath.Join(cache, "d2-x101-32x8d-fpn-3x", "model_final_68b088.pkl")}},
		{name: "tv-r50-fpn-v2", want: modelJSON{Name: "tv-r50-fpn-v2", Title: "fasterrcnn_resnet50_fpn_v2 COCO_V1",
			URL:  "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
			File: "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth", Format: "torchvision-pth", Arch: "tv-r50-fpn-v2", Construction: "torchvision",
			Dataset: "coco", Metric: "box AP", AP: 46.7, Checksum: "sha256:dd69338a", Cached: true, Runs: true, Path: cached, CachedBytes: 1234}},
		{name: "d2-r50-imagenet", want: modelJSON{Name: "d2-r50-imagenet", Title: "ImageNetPretrained/MSRA/R-50",
			URL: "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl", File: "R-50.pkl", Format: "caffe2-pkl",
			Arch: "r50", Construction: "detectron2", Dataset: "imagenet", Path: filepath.Join(cache, "d2-r50-imagenet", "R-50.pkl")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, g := range got {
				if g.Name == tt.name {
					if g != tt.want {
						t.Errorf("got  %+v\nwant %+v", g, tt.want)
					}
					return
				}
			}
			t.Errorf("no entry %s", tt.name)
		})
	}
}

// TestModelsRuns: the RUNS column of `detect models` says which models
// `detect --model NAME` runs: every detector (Detectron2's C4, DC5 and FPN,
// torchvision's FPN v1 and v2), not the ImageNet backbones.
func TestModelsRuns(t *testing.T) {
	t.Setenv(zoo.EnvBaseURL, "")
	ios, _, out, _ := cli.Test()
	clitest.Execute(t, newCmdModels(ios, nil), ios, []string{"--cache", t.TempDir()}, "")
	lines := strings.Split(out.String(), "\n")
	col := strings.Index(lines[0], " RUNS ") + 1 // tabwriter aligns the columns
	if col < 1 {
		t.Fatalf("no RUNS column: %q", lines[0])
	}
	runs := map[string]string{}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && len(l) > col {
			runs[f[0]] = strings.Fields(l[col:])[0]
		}
	}
	for _, m := range zoo.Models() {
		want := "-"
		if m.Dataset != zoo.ImageNet {
			want = "yes"
		}
		if runs[m.Name] != want {
			t.Errorf("%s (%s): RUNS %q, want %q", m.Name, m.Arch, runs[m.Name], want)
		}
	}
	for _, name := range []string{"d2-r50-fpn-1x", "d2-r50-fpn-3x", "d2-r101-fpn-3x", "d2-x101-32x8d-fpn-3x", "tv-r50-fpn", "tv-r50-fpn-v2"} {
		if runs[name] != "yes" {
			t.Errorf("%s: RUNS %q, want yes", name, runs[name])
		}
	}
}

func TestDetectModelsRegistered(t *testing.T) {
	ios, _, out, errOut := cli.Test()
	root := NewCmdDetect(ios, nil)
	root.SetArgs([]string{"models", "--help"})
	if code := cli.Main(root); code != 0 {
		t.Fatalf("exit code %d: %s", code, errOut.String())
	}
	for _, want := range []string{"detect models download d2-r101-c4-3x", "RESDET_MODEL_BASE_URL", "download    Download pretrained models"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help does not contain %q:\n%s", want, out.String())
		}
	}
}
