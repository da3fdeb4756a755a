package batch

import (
	"context"
	"fmt"
	"os"
	"sync"

	"resdet/detection"
	"resdet/inference"
	"resdet/nn"
)

// modelPool holds the detectors of one worker process for one set of model
// options: at most max of them, each loaded once and lent to one bundle at
// a time. A runner may process several bundles of a stage at once in one
// process (prism splits slow bundles; Dataflow runs several harness
// threads), each with its own detectFn instance; the pool caps the models
// in memory at max whatever that number, and lets the instances reuse
// them across bundles.
type modelPool struct {
	opts    inference.ModelOptions
	threads int
	sem     chan struct{} // one token per model lent out or being loaded
	loadMu  sync.Mutex    // one load at a time: they share the weights' copy
	mu      sync.Mutex
	free    []*detection.FasterRCNN
	all     []*detection.FasterRCNN
	refs    int    // detectFn instances set up with this pool
	tmp     string // folder for a local copy of remote weights
}

// Test hooks, nil outside tests: loadHook runs after each detector load
// (a test makes it slow, as a real model's load is); detectHook runs when an
// image starts through a borrowed detector, and the function it returns
// when the image is done.
var (
	loadHook   func()
	detectHook func(path string) (done func())
)

// pools are the worker process's model pools by options: package state,
// because the DoFn instances Beam creates share nothing else.
var pools = struct {
	sync.Mutex
	m map[string]*modelPool
}{m: map[string]*modelPool{}}

// acquirePool returns the pool for o, threads and max, made on first use,
// and counts a reference to it (releasePool drops it).
func acquirePool(o inference.ModelOptions, threads, max int) *modelPool {
	key := fmt.Sprintf("%+v/%d/%d", o, threads, max)
	pools.Lock()
	defer pools.Unlock()
	p := pools.m[key]
	if p == nil {
		p = &modelPool{opts: o, threads: threads, sem: make(chan struct{}, max)}
		pools.m[key] = p
	}
	p.refs++
	return p
}

// releasePool drops a reference to p; the last one closes its models.
func releasePool(p *modelPool) error {
	pools.Lock()
	defer pools.Unlock()
	if p.refs--; p.refs > 0 {
		return nil
	}
	for k, q := range pools.m {
		if q == p {
			delete(pools.m, k)
		}
	}
	for _, m := range p.all {
		m.Close()
	}
	p.all, p.free = nil, nil
	if p.tmp != "" {
		return os.RemoveAll(p.tmp)
	}
	return nil
}

// get lends a detector, loading one when none is free and fewer than max
// exist, else waiting for one.
func (p *modelPool) get(ctx context.Context) (*detection.FasterRCNN, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		m := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return m, nil
	}
	p.mu.Unlock()
	m, err := p.load(ctx)
	if err != nil {
		<-p.sem
		return nil, err
	}
	p.mu.Lock()
	p.all = append(p.all, m)
	p.mu.Unlock()
	modelsCounter.Inc(ctx, 1)
	return m, nil
}

// ensureLoaded makes sure the pool holds a detector, loading the first one
// (a model that cannot load fails here); once one exists it returns at
// once, lending nothing.
func (p *modelPool) ensureLoaded(ctx context.Context) error {
	p.mu.Lock()
	n := len(p.all)
	p.mu.Unlock()
	if n > 0 {
		return nil
	}
	m, err := p.get(ctx)
	if err != nil {
		return err
	}
	p.put(m)
	return nil
}

// put returns a detector get lent.
func (p *modelPool) put(m *detection.FasterRCNN) {
	p.mu.Lock()
	p.free = append(p.free, m)
	p.mu.Unlock()
	<-p.sem
}

// load builds one detector (copying remote weights once).
func (p *modelPool) load(ctx context.Context) (*detection.FasterRCNN, error) {
	if p.threads > 0 {
		nn.SetThreads(p.threads)
	} else if _, err := nn.ThreadsFromEnv(); err != nil {
		return nil, err
	}
	p.loadMu.Lock()
	defer p.loadMu.Unlock()
	o := p.opts
	if o.Weights != "" && !isLocal(o.Weights) {
		if p.tmp == "" {
			dir, err := os.MkdirTemp("", "resdet-weights-")
			if err != nil {
				return nil, err
			}
			local, _, err := fetchLocal(ctx, o.Weights, dir)
			if err != nil {
				os.RemoveAll(dir)
				return nil, fmt.Errorf("--weights: %w", err)
			}
			p.tmp, p.opts.Weights = dir, local
		}
		o.Weights = p.opts.Weights
	}
	m, err := inference.Load(o, inference.FetchZoo(ctx, o.Cache))
	if err == nil && loadHook != nil {
		loadHook()
	}
	return m, err
}
