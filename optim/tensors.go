package optim

import (
	"fmt"
	"slices"
	"strconv"

	"resdet/weights"
)

// StepsKey is the metadata key under which Tensors' companion step count is
// meant to be stored in a safetensors checkpoint (see MetaSteps).
const StepsKey = "resdet.optim.steps"

// Tensors returns the momentum buffers as named tensors "<prefix><parameter
// name>", to be written next to the model's weights in one checkpoint
// (weights.WriteSafetensors), with MetaSteps in its metadata. Parameters
// without a buffer are left out. The tensors share st's memory.
func (st State) Tensors(prefix string) weights.State {
	ws := make(weights.State)
	for _, p := range st.Params {
		if p.Momentum != nil {
			ws[prefix+p.Name] = weights.Tensor{Shape: p.Shape, Data: p.Momentum}
		}
	}
	return ws
}

// MetaSteps returns the metadata entry of the step count.
func (st State) MetaSteps() (key, value string) { return StepsKey, strconv.FormatInt(st.Steps, 10) }

// SetStateTensors restores the state saved by State.Tensors(prefix) and
// MetaSteps: ws holds (at least) the momentum tensors, meta the metadata.
// A parameter without a tensor gets no buffer, which is an error after the
// first step when Momentum is not 0. Errors name the tensor or the metadata
// key; the optimiser is unchanged then.
func (s *SGD) SetStateTensors(ws weights.State, meta map[string]string, prefix string) error {
	v, ok := meta[StepsKey]
	if !ok {
		return fmt.Errorf("optim: checkpoint metadata has no %q", StepsKey)
	}
	steps, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("optim: checkpoint metadata %q = %q: %w", StepsKey, v, err)
	}
	st := State{Steps: steps, Params: make([]ParamState, len(s.params))}
	for i, name := range s.names {
		p := ParamState{Name: name, Shape: slices.Clone([]int(s.shapes[i]))}
		if t, ok := ws[prefix+name]; ok {
			if !slices.Equal(t.Shape, p.Shape) {
				return fmt.Errorf("optim: checkpoint tensor %q has shape %v, parameter %v", prefix+name, t.Shape, p.Shape)
			}
			p.Momentum = t.Data
		} else if steps > 0 && s.cfg.Momentum != 0 {
			return fmt.Errorf("optim: checkpoint has no momentum tensor %q after %d steps", prefix+name, steps)
		}
		st.Params[i] = p
	}
	return s.SetState(st)
}
