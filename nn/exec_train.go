package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// GradValues pairs parameters with their gradient nodes (as returned by
// G.Grad(loss, params...)) for a gorgonia Solver, so that a training step
// can run on an Executor instead of a TapeMachine:
//
//	grads, _ := G.Grad(loss, params...)
//	e, _ := nn.NewExecutor(g, append(grads, loss)...)
//	vg, _ := nn.GradValues(params, grads)
//	for each batch { G.Let(inputs...); e.Run(); solver.Step(vg) }
//
// The Executor frees activations once the backward pass no longer needs them
// and computes fresh gradients on every Run (a TapeMachine accumulates them
// across runs). The solver updates the parameters' values in place, which the
// next Run reads. A gradient is valid until the next Run. GradValues returns
// an error if the lengths differ or a node is nil.
func GradValues(params, grads []*G.Node) ([]G.ValueGrad, error) {
	if len(params) != len(grads) {
		return nil, fmt.Errorf("nn: GradValues: %d parameters, %d gradients", len(params), len(grads))
	}
	out := make([]G.ValueGrad, len(params))
	for i := range params {
		if params[i] == nil || grads[i] == nil {
			return nil, fmt.Errorf("nn: GradValues: parameter or gradient %d is nil", i)
		}
		out[i] = paramGrad{p: params[i], g: grads[i]}
	}
	return out, nil
}

// paramGrad is a parameter and the node of its gradient.
type paramGrad struct{ p, g *G.Node }

func (pg paramGrad) Value() G.Value { return pg.p.Value() }
func (pg paramGrad) Name() string   { return pg.p.Name() }
func (pg paramGrad) Grad() (G.Value, error) {
	v := pg.g.Value()
	if v == nil {
		return nil, fmt.Errorf("nn: gradient of %s has no value: run the Executor with it as an output first", pg.p.Name())
	}
	return v, nil
}
