// Package optim holds the training optimisation of resdet: SGD with
// momentum and weight decay with torch.optim.SGD's semantics (parameter
// groups with their own learning-rate multiplier and weight decay), applied
// in place to the values of gorgonia learnable nodes, with a state that can
// be saved and restored for checkpoints and exact resume (State, or named
// tensors for a safetensors checkpoint next to the weights); and the step
// learning-rate schedule with linear warm-up of Detectron2
// (WarmupMultiStepLR).
//
// A training iteration is: run the forward+backward graph, lr :=
// schedule.LR(iter), sgd.Step(lr) (which also zeroes the gradients, since
// gorgonia accumulates them across runs; a non-finite gradient makes Step
// return an error wrapping ErrNonFinite and change nothing), iter++.
//
// Tensors are float32, dense, row-major. Step matches torch.optim.SGD bit
// for bit on the test fixtures (torch 1.13, CPU).
package optim
