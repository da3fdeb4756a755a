package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"resdet/inference"
	"resdet/internal/cli"
	"resdet/zoo"
)

// ModelsOptions are the inputs of `detect models` and `detect models download`.
type ModelsOptions struct {
	IO       *cli.IOStreams
	Cache    string   // cache folder; "" = $RESDET_CACHE, $XDG_CACHE_HOME/resdet/models or ~/.cache/resdet/models
	JSON     bool     // list as one JSON array
	Download bool     // download Names instead of listing
	Names    []string // models to download (registry short names)
}

// newCmdModels returns `detect models` with its `download` subcommand.
// runF, when not nil, replaces the run function (tests capture the options).
func newCmdModels(ios *cli.IOStreams, runF func(*ModelsOptions) error) *cobra.Command {
	opts := &ModelsOptions{IO: ios}
	run := func() error {
		if runF != nil {
			return runF(opts)
		}
		return runModels(opts)
	}
	cmd := &cobra.Command{
		Use:   "models [--json] [--cache DIR]",
		Short: "List the published pretrained models and where they are cached",
		Long: `models lists the pretrained Faster R-CNN weights resdet knows: short name,
architecture, whose construction it is (detectron2 or torchvision), training
dataset, published AP (COCO box AP on val2017; AP50 on VOC 2007 test for the
VOC model), whether 'detect --model NAME' runs it (RUNS), file size, and
whether it is in the cache (with its path). The default model is marked
with *. --json prints one JSON array instead.

"models download NAME..." downloads into the cache, with a progress bar on a
terminal. An interrupted download resumes where it stopped when run again;
sizes and the published checksums (torchvision's SHA-256 prefixes) are
verified and a bad file is deleted. Without network access the error names
the URL and the path to put the file at by hand.

The cache is --cache, else $RESDET_CACHE, else $XDG_CACHE_HOME/resdet/models,
else ~/.cache/resdet/models; a model lives in <cache>/<name>/<file name>.
$RESDET_MODEL_BASE_URL replaces the publishers' URL prefixes
(https://dl.fbaipublicfiles.com/detectron2/, https://download.pytorch.org/models/)
to download from a mirror holding the same paths.`,
		Example: `  detect models
  detect models download d2-r101-c4-3x
  RESDET_CACHE=/data/models detect models download tv-r50-fpn tv-r50-fpn-v2
  detect models --json | jq -r '.[] | select(.cached) | .path'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return run() },
	}
	cmd.PersistentFlags().StringVar(&opts.Cache, "cache", "", "model cache folder (default: $RESDET_CACHE, $XDG_CACHE_HOME/resdet/models or ~/.cache/resdet/models)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the list as one JSON array")
	_ = cmd.MarkPersistentFlagDirname("cache")

	dl := &cobra.Command{
		Use:     "download NAME...",
		Aliases: []string{"fetch"},
		Short:   "Download pretrained models into the cache",
		Example: `  detect models download d2-r101-c4-3x
  detect models fetch tv-r50-fpn --cache ./models`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cli.Usagef("no model names given (see 'detect models')")
			}
			for _, name := range args {
				if _, err := zoo.Lookup(name); err != nil {
					return &cli.UsageError{Err: err}
				}
			}
			return nil
		},
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			var names []string
			for _, m := range zoo.Models() {
				names = append(names, m.Name)
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Download, opts.Names = true, args
			return run()
		},
	}
	cmd.AddCommand(dl)
	return cmd
}

func runModels(opts *ModelsOptions) error {
	cache, err := zoo.NewCache(opts.Cache)
	if err != nil {
		return err
	}
	if opts.Download {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return downloadModels(ctx, opts.IO, cache, opts.Names)
	}
	if opts.JSON {
		return listModelsJSON(opts.IO, cache)
	}
	return listModels(opts.IO, cache)
}

// modelJSON is one element of `detect models --json`.
type modelJSON struct {
	Name         string  `json:"name"`
	Title        string  `json:"title"`
	URL          string  `json:"url"`
	File         string  `json:"file"`
	Format       string  `json:"format"`
	Arch         string  `json:"arch"`
	Construction string  `json:"construction"`
	Dataset      string  `json:"dataset"`
	Metric       string  `json:"metric,omitempty"` // "box AP" or "AP50"
	AP           float64 `json:"ap,omitempty"`
	Size         int64   `json:"size,omitempty"`     // published size in bytes
	Checksum     string  `json:"checksum,omitempty"` // "sha256:<hex prefix>"
	Default      bool    `json:"default"`
	Cached       bool    `json:"cached"`
	Runs         bool    `json:"runs"` // detect --model NAME runs it
	Path         string  `json:"path"` // where the file is or would be cached
	CachedBytes  int64   `json:"cached_bytes,omitempty"`
}

func listModelsJSON(ios *cli.IOStreams, cache *zoo.Cache) error {
	var out []modelJSON
	for _, m := range zoo.Models() {
		path, size, ok := cache.Cached(m)
		j := modelJSON{Name: m.Name, Title: m.Title, URL: cache.URL(m), File: m.FileName(), Format: string(m.Format),
			Arch: m.Arch, Construction: string(m.Construction), Dataset: string(m.Dataset), Metric: m.Metric, AP: m.AP,
			Size: m.Size, Default: m.Name == zoo.DefaultName, Cached: ok, Path: path, CachedBytes: size, Runs: inference.Runnable(m) == nil}
		if !m.Checksum.IsZero() {
			j.Checksum = string(m.Checksum.Algo) + ":" + m.Checksum.Prefix
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(ios.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func listModels(ios *cli.IOStreams, cache *zoo.Cache) error {
	tw := tabwriter.NewWriter(ios.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tARCH\tBUILD\tDATASET\tAP\tRUNS\tSIZE\tCACHED")
	for _, m := range zoo.Models() {
		name := m.Name
		if name == zoo.DefaultName {
			name += " *"
		}
		ap := "-"
		if m.Metric != "" {
			ap = fmt.Sprintf("%.1f", m.AP)
			if m.Metric != "box AP" {
				ap += " " + m.Metric
			}
		}
		path, size, ok := cache.Cached(m)
		sz, cached := "?", "-"
		if m.Size > 0 {
			sz = cli.FormatBytes(m.Size)
		}
		if ok {
			sz, cached = cli.FormatBytes(size), path
		}
		runs := "yes"
		if inference.Runnable(m) != nil {
			runs = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, m.Arch, m.Construction, m.Dataset, ap, runs, sz, cached)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(ios.Out, "\n* default model. AP: COCO box AP (val2017); AP50: VOC 2007 test. RUNS: detect --model NAME runs it. Cache: %s\n", cache.Dir)
	if cache.BaseURL != "" {
		fmt.Fprintf(ios.Out, "Downloads from $%s=%s\n", zoo.EnvBaseURL, cache.BaseURL)
	}
	return nil
}

// fetchModel returns the cached file of m, downloading it first with a
// progress bar on ios.ErrOut (redrawn on a terminal, else a few lines).
func fetchModel(ctx context.Context, ios *cli.IOStreams, cache *zoo.Cache, m zoo.Model) (zoo.FetchResult, error) {
	bar := cli.NewDownloadBar(ios.ErrOut, m.Name)
	res, err := cache.Fetch(ctx, m, bar.Update)
	bar.End(err)
	return res, err
}

// downloadModels fetches each model in turn, stopping at the first error.
func downloadModels(ctx context.Context, ios *cli.IOStreams, cache *zoo.Cache, names []string) error {
	for _, name := range names {
		m, err := zoo.Lookup(name)
		if err != nil {
			return err
		}
		res, err := fetchModel(ctx, ios, cache, m)
		if err != nil {
			return err
		}
		switch {
		case res.Cached:
			fmt.Fprintf(ios.Out, "%s: %s (already cached, %s)\n", m.Name, res.Path, cli.FormatBytes(res.Bytes))
		case res.Resumed > 0:
			fmt.Fprintf(ios.Out, "%s: %s (%s, resumed at %s, sha256 %s)\n", m.Name, res.Path, cli.FormatBytes(res.Bytes), cli.FormatBytes(res.Resumed), res.SHA256)
		default:
			fmt.Fprintf(ios.Out, "%s: %s (%s, sha256 %s)\n", m.Name, res.Path, cli.FormatBytes(res.Bytes), res.SHA256)
		}
		if res.Warning != "" {
			fmt.Fprintf(ios.ErrOut, "warning: %s\n", res.Warning)
		}
	}
	return nil
}
