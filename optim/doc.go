// Package optim holds the training optimisation of resdet: SGD with
// momentum and weight decay with torch.optim.SGD's semantics, applied in
// place to the values of gorgonia learnable nodes, with a state that can be
// saved and restored for checkpoints and exact resume; and the step
// learning-rate schedule with linear warm-up of Detectron2
// (WarmupMultiStepLR).
//
// A training iteration is: run the forward+backward graph, lr :=
// schedule.LR(iter), sgd.Step(lr) (which also zeroes the gradients, since
// gorgonia accumulates them across runs), iter++.
//
// Tensors are float32, dense, row-major.
package optim
