package optim

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"

	"resdet/weights"
)

// TestSGDCheckpointSafetensors saves the parameters and the optimiser state
// in one safetensors file mid-run, restores both into fresh nodes, and
// checks that the continued run is bit-identical to an uninterrupted one.
func TestSGDCheckpointSafetensors(t *testing.T) {
	c := loadFixture(t)["default"]
	sched := NewWarmupMultiStep(c.BaseLR, c.Steps, c.WarmupIters)
	run := func(sgd *SGD, grads []*G.Node, from, to int) {
		t.Helper()
		for it := from; it < to; it++ {
			for i, p := range c.Params {
				copy(data(grads[i]), floats(p.Grads[it]))
			}
			if err := sgd.Step(sched.LR(it)); err != nil {
				t.Fatal(err)
			}
		}
	}
	vgA, paramsA, gradsA := pairs(c.Params)
	a, err := NewSGD(vgA, DefaultSGDConfig())
	if err != nil {
		t.Fatal(err)
	}
	run(a, gradsA, 0, len(c.LR))

	const stop = 5
	vgB, paramsB, gradsB := pairs(c.Params)
	b, err := NewSGD(vgB, DefaultSGDConfig())
	if err != nil {
		t.Fatal(err)
	}
	run(b, gradsB, 0, stop)
	ws := b.State().Tensors("optim.momentum.")
	for _, p := range paramsB {
		ws["model."+p.Name()] = weights.Tensor{Shape: p.Shape().Clone(), Data: slices.Clone(data(p))}
	}
	k, v := b.State().MetaSteps()
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	if err := weights.WriteSafetensors(path, ws, map[string]string{k: v}); err != nil {
		t.Fatal(err)
	}

	loaded, meta, err := weights.ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	vgC, paramsC, gradsC := pairs(c.Params)
	for _, p := range paramsC {
		copy(data(p), loaded["model."+p.Name()].Data)
	}
	resumed, err := NewSGD(vgC, DefaultSGDConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := resumed.SetStateTensors(loaded, meta, "optim.momentum."); err != nil {
		t.Fatal(err)
	}
	run(resumed, gradsC, stop, len(c.LR))
	for i := range paramsA {
		if !slices.Equal(data(paramsA[i]), data(paramsC[i])) {
			t.Errorf("parameter %s differs after resume", paramsA[i].Name())
		}
	}

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name string
			ws   weights.State
			meta map[string]string
			want string
		}{
			{"no_steps", loaded, nil, "no \"resdet.optim.steps\""},
			{"bad_steps", loaded, map[string]string{StepsKey: "x"}, "\"x\""},
			{"missing", weights.State{}, meta, "no momentum tensor \"optim.momentum.p0\""},
			{"shape", weights.State{"optim.momentum.p0": {Shape: []int{2}, Data: []float32{1, 2}}}, meta, "shape [2]"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := resumed.SetStateTensors(tc.ws, tc.meta, "optim.momentum.")
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %v, want one containing %q", err, tc.want)
				}
			})
		}
	})
}
