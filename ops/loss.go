package ops

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"slices"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/nn"
)

// This file holds the fused loss ops: each reads the elements of its input
// that the loss needs (by flat row-major offset), returns a float32 scalar,
// and has a gradient op that writes the whole input gradient in one pass.
// Per-element terms are computed in float64 and summed in float64; torch
// sums float32 terms, so values agree to float32 rounding, not bit for bit.

// BCEWithLogitsLoss returns the mean over k of the binary cross-entropy of
// the logit x.flat[idx[k]] against the target labels[k] (in [0, 1]), as
// torch's F.binary_cross_entropy_with_logits(x[idx], labels) (reduction
// "mean"): max(z, 0) - z*y + log(1 + exp(-|z|)). x is a float32 tensor of
// any shape; idx are flat row-major offsets into it (repeats count twice;
// idx and labels are copied, as by the other loss builders).
// The result is a float32 scalar node, differentiable w.r.t. x. It returns
// an error if idx is empty, an offset is out of range, or the lengths differ.
func BCEWithLogitsLoss(x *G.Node, idx []int, labels []float32) (*G.Node, error) {
	const name = "BCEWithLogitsLoss"
	if err := checkLossInput(name, x, idx, len(labels)); err != nil {
		return nil, err
	}
	if len(idx) == 0 {
		return nil, fmt.Errorf("ops: %s: no elements selected (the mean is undefined)", name)
	}
	op := &lossOp{kind: lossBCE, shape: x.Shape().Clone(), idx: slices.Clone(idx), target: slices.Clone(labels), norm: float32(len(idx))}
	op.key = op.contentKey()
	return G.ApplyOp(op, x)
}

// SmoothL1Loss returns Σ_k smoothL1(x.flat[idx[k]] - targets[k]) / norm,
// where smoothL1(d) = 0.5*d²/beta for |d| < beta, else |d| - 0.5*beta (torch's
// F.smooth_l1_loss(..., beta=beta, reduction="sum") / norm; beta 0 is the L1
// loss). x is a float32 tensor of any shape, idx flat row-major offsets.
// The result is a float32 scalar node (0 when idx is empty),
// differentiable w.r.t. x. It returns an error if an offset is out of range,
// the lengths differ, beta < 0 or norm <= 0.
func SmoothL1Loss(x *G.Node, idx []int, targets []float32, beta, norm float32) (*G.Node, error) {
	const name = "SmoothL1Loss"
	if err := checkLossInput(name, x, idx, len(targets)); err != nil {
		return nil, err
	}
	if !(beta >= 0) || !(norm > 0) {
		return nil, fmt.Errorf("ops: %s: beta %v and norm %v, want beta >= 0 and norm > 0", name, beta, norm)
	}
	op := &lossOp{kind: lossSmoothL1, shape: x.Shape().Clone(), idx: slices.Clone(idx), target: slices.Clone(targets), beta: beta, norm: norm}
	op.key = op.contentKey()
	return G.ApplyOp(op, x)
}

// CrossEntropyLoss returns the mean over the rows k of logits [K, NC] with
// labels[k] >= 0 of -log softmax(logits[k])[labels[k]], as torch's
// F.cross_entropy(logits, labels, ignore_index=-1) (reduction "mean"): a
// negative label (IgnoreLabel) leaves its row out of the sum, the mean and
// the gradient. The result is a float32 scalar node, differentiable w.r.t.
// logits. It returns an error if logits is not [K, NC] with K >= 1, or
// labels has the wrong length, an entry >= NC, or no entry >= 0.
func CrossEntropyLoss(logits *G.Node, labels []int) (*G.Node, error) {
	const name = "CrossEntropyLoss"
	if logits == nil {
		return nil, fmt.Errorf("ops: %s: logits is nil", name)
	}
	s := logits.Shape()
	if logits.Dtype() != tensor.Float32 || len(s) != 2 || s[0] < 1 || s[1] < 1 {
		return nil, fmt.Errorf("ops: %s: logits are %v %v, want float32 [K, NC]", name, logits.Dtype(), s)
	}
	op := &lossOp{kind: lossCE, shape: s.Clone()}
	if err := op.selectCE(labels); err != nil {
		return nil, err
	}
	op.key = op.contentKey()
	return G.ApplyOp(op, logits)
}

// IgnoreLabel is the label of a CrossEntropyLoss row left out of the loss.
const IgnoreLabel = -1

// selectCE sets the labels of a cross-entropy op and its normaliser, the
// number of rows not ignored.
func (op *lossOp) selectCE(labels []int) error {
	const name = "CrossEntropyLoss"
	if len(labels) != op.shape[0] {
		return fmt.Errorf("ops: %s: %d labels for logits %v", name, len(labels), op.shape)
	}
	n := 0
	for k, l := range labels {
		if l >= op.shape[1] {
			return fmt.Errorf("ops: %s: label %d of row %d out of [0, %d)", name, l, k, op.shape[1])
		}
		if l >= 0 {
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("ops: %s: every row is ignored (the mean is undefined)", name)
	}
	op.idx, op.target, op.norm = append(op.idx[:0], labels...), op.target[:0], float32(n)
	return nil
}

// Reselect points a loss node built by BCEWithLogitsLoss, SmoothL1Loss or
// CrossEntropyLoss at another selection of the same input, without changing
// the graph (one graph then serves every training step). The arguments are
// those of the node's builder: idx and targets (BCE: the labels; cross
// entropy: idx are the row labels, targets nil), and norm for SmoothL1Loss
// (the other two are means: their normaliser follows from the selection).
// beta is kept. It returns an error, and leaves the node unchanged, if loss
// is not such a node or the selection fails the builder's checks.
func Reselect(loss *G.Node, idx []int, targets []float32, norm float32) error {
	op, ok := loss.Op().(*lossOp)
	if !ok {
		return fmt.Errorf("ops: Reselect: node %v is not a loss of this package", loss.Name())
	}
	next := *op
	next.idx, next.target = nil, nil
	switch op.kind {
	case lossCE:
		if len(targets) != 0 {
			return fmt.Errorf("ops: Reselect: %d targets for a cross-entropy loss, want none", len(targets))
		}
		if err := next.selectCE(idx); err != nil {
			return err
		}
	default:
		if err := checkSelection(op.kind.String()+"Loss", op.shape, idx, len(targets)); err != nil {
			return err
		}
		next.idx, next.target = idx, targets
		if op.kind == lossBCE {
			if len(idx) == 0 {
				return fmt.Errorf("ops: BCEWithLogitsLoss: no elements selected (the mean is undefined)")
			}
			norm = float32(len(idx))
		} else if !(norm > 0) {
			return fmt.Errorf("ops: SmoothL1Loss: norm %v, want > 0", norm)
		}
		next.norm = norm
	}
	op.idx = append(op.idx[:0], next.idx...)
	op.target = append(op.target[:0], next.target...)
	op.norm = next.norm
	return nil
}

func checkLossInput(name string, x *G.Node, idx []int, nTargets int) error {
	if x == nil {
		return fmt.Errorf("ops: %s: input is nil", name)
	}
	if x.Dtype() != tensor.Float32 {
		return fmt.Errorf("ops: %s: input has dtype %v, want float32", name, x.Dtype())
	}
	return checkSelection(name, x.Shape(), idx, nTargets)
}

// checkSelection returns an error if idx and the targets differ in length
// or an offset is outside an input of the given shape.
func checkSelection(name string, shape tensor.Shape, idx []int, nTargets int) error {
	if len(idx) != nTargets {
		return fmt.Errorf("ops: %s: %d offsets but %d targets", name, len(idx), nTargets)
	}
	size := shape.TotalSize()
	for k, i := range idx {
		if i < 0 || i >= size {
			return fmt.Errorf("ops: %s: offset %d (entry %d) out of range for input %v", name, i, k, shape)
		}
	}
	return nil
}

type lossKind int

const (
	lossBCE lossKind = iota
	lossSmoothL1
	lossCE
)

func (k lossKind) String() string {
	return [...]string{"BCEWithLogits", "SmoothL1", "CrossEntropy"}[k]
}

// lossOp is a scalar loss of one float32 input. For lossBCE and
// lossSmoothL1, idx are flat offsets and target their targets; for lossCE,
// idx are the row labels, a negative label (IgnoreLabel) leaving its row out
// of the sum and the gradient. norm divides the sum.
type lossOp struct {
	nn.HostOp
	kind   lossKind
	shape  tensor.Shape
	idx    []int
	target []float32
	beta   float32
	norm   float32
	key    uint64 // hash of idx and target: ops with other selections differ
}

// contentKey hashes the selection so that gorgonia never merges two loss
// nodes of the same input with different targets.
func (op *lossOp) contentKey() uint64 {
	h := fnv.New64a()
	var b [8]byte
	for _, i := range op.idx {
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		h.Write(b[:])
	}
	for _, v := range op.target {
		binary.LittleEndian.PutUint32(b[:4], math.Float32bits(v))
		h.Write(b[:4])
	}
	return h.Sum64()
}

func (op *lossOp) Arity() int { return 1 }
func (op *lossOp) Type() hm.Type {
	return hm.NewFnType(G.TensorType{Dims: len(op.shape), Of: hm.TypeVariable('a')}, hm.TypeVariable('a'))
}
func (op *lossOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.ScalarShape(), nil }
func (op *lossOp) Do(in ...G.Value) (G.Value, error)              { return op.UsePreallocDo(nil, in...) }
func (op *lossOp) UsePreallocDo(_ G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("ops: %v: %d inputs, want 1", op.kind, len(in))
	}
	x, err := tensorData(op.kind.String(), "input", in[0], op.shape)
	if err != nil {
		return nil, err
	}
	return G.NewF32(float32(op.forward(x))), nil
}

// forward returns the loss of input data x.
func (op *lossOp) forward(x []float32) float64 {
	var sum float64
	switch op.kind {
	case lossBCE:
		for k, i := range op.idx {
			z, y := float64(x[i]), float64(op.target[k])
			sum += max(z, 0) - z*y + math.Log1p(math.Exp(-math.Abs(z)))
		}
	case lossSmoothL1:
		beta := float64(op.beta)
		for k, i := range op.idx {
			d := math.Abs(float64(x[i]) - float64(op.target[k]))
			if d < beta {
				sum += 0.5 * d * d / beta
			} else {
				sum += d - 0.5*beta
			}
		}
	case lossCE:
		nc := op.shape[1]
		for k, l := range op.idx {
			if l < 0 {
				continue
			}
			row := x[k*nc : (k+1)*nc]
			sum += lossLogSumExp(row) - float64(row[l])
		}
	}
	return sum / float64(op.norm)
}

// backward writes gy * d(loss)/dx to dx (the input's size; zeroed first).
func (op *lossOp) backward(dx, x []float32, gy float64) {
	clear(dx)
	s := gy / float64(op.norm)
	switch op.kind {
	case lossBCE:
		for k, i := range op.idx {
			z := float64(x[i])
			dx[i] += float32((1/(1+math.Exp(-z)) - float64(op.target[k])) * s)
		}
	case lossSmoothL1:
		beta := float64(op.beta)
		for k, i := range op.idx {
			d := float64(x[i]) - float64(op.target[k])
			var g float64
			switch {
			case d < -beta || (beta == 0 && d < 0):
				g = -1
			case d > beta || (beta == 0 && d > 0):
				g = 1
			case beta > 0:
				g = d / beta
			}
			dx[i] += float32(g * s)
		}
	case lossCE:
		nc := op.shape[1]
		for k, l := range op.idx {
			if l < 0 {
				continue
			}
			row := x[k*nc : (k+1)*nc]
			lse := lossLogSumExp(row)
			out := dx[k*nc : (k+1)*nc]
			for c, v := range row {
				p := math.Exp(float64(v) - lse)
				if c == l {
					p--
				}
				out[c] = float32(p * s)
			}
		}
	}
}

func lossLogSumExp(row []float32) float64 {
	m := math.Inf(-1)
	for _, v := range row {
		m = max(m, float64(v))
	}
	var s float64
	for _, v := range row {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

func (op *lossOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *lossOp) Hashcode() uint32      { return hashOf(op) }
func (op *lossOp) String() string {
	return fmt.Sprintf("%vLoss{%v n=%d beta=%v norm=%v key=%x}", op.kind, op.shape, len(op.idx), op.beta, op.norm, op.key)
}
func (op *lossOp) DiffWRT(int) []bool { return []bool{true} }
func (op *lossOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("ops: %v gradient: %d inputs, want 1", op.kind, len(in))
	}
	dx, err := G.ApplyOp((*lossGradOp)(op), in[0], grad)
	if err != nil {
		return nil, fmt.Errorf("ops: %v gradient: %w", op.kind, err)
	}
	return G.Nodes{dx}, nil
}

// lossGradOp: (x, gy scalar) -> d(loss)/dx * gy, the shape of x.
type lossGradOp lossOp

func (op *lossGradOp) Arity() int { return 2 }
func (op *lossGradOp) Type() hm.Type {
	t := G.TensorType{Dims: len(op.shape), Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, hm.TypeVariable('a'), t)
}
func (op *lossGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }
func (op *lossGradOp) Do(in ...G.Value) (G.Value, error)              { return op.UsePreallocDo(nil, in...) }
func (op *lossGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	name := op.kind.String() + " gradient"
	if len(in) != 2 {
		return nil, fmt.Errorf("ops: %s: %d inputs, want 2", name, len(in))
	}
	x, err := tensorData(name, "input", in[0], op.shape)
	if err != nil {
		return nil, err
	}
	gy, err := Scalar(in[1])
	if err != nil {
		return nil, fmt.Errorf("ops: %s: %w", name, err)
	}
	t, dx := outTensor(prealloc, op.shape)
	(*lossOp)(op).backward(dx, x, float64(gy))
	return t, nil
}
func (op *lossGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *lossGradOp) Hashcode() uint32      { return hashOf(op) }
func (op *lossGradOp) String() string        { return "Grad" + (*lossOp)(op).String() }
func (op *lossGradOp) DiffWRT(n int) []bool  { return make([]bool, n) }
func (op *lossGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, errors.New("ops: loss gradient: second derivative not implemented")
}
