package detection

import (
	"fmt"
	"hash"
	"math/rand"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/box"
	"resdet/nn"
)

// batch is what one run of a forward graph reads and writes on the host:
// the images' sizes and, when training, their ground truth (set before the
// run), then the proposals (set by the RPN's proposal op) and the sampled
// RoI counts (set by the RoI heads' sampling op). Its fixed part (n,
// padded, training, key) is that of the graph.
type batch struct {
	key      string // the graph's input shape and mode, in its host ops' hashes
	training bool
	n        int
	padded   Size

	imgs   []Size
	gts    [][]box.Box
	labels [][]int
	opts   TargetOptions
	rng    *rand.Rand

	proposals [][]box.Box
	scores    [][]float32
	fg        int // foreground RoIs sampled in the last run
	rois      int // RoIs sampled in the last run (padding rows excluded)
}

func newBatch(key string, n int, padded Size, training bool) *batch {
	return &batch{key: key, training: training, n: n, padded: padded,
		proposals: make([][]box.Box, n), scores: make([][]float32, n)}
}

// batchOp is what the host ops between the parts share: they read and
// write a batch, output rows RoI rows per image ([N*rows, 5]), are unique
// to their graph's input shape, mode and row count, and pass no gradient (Faster R-CNN does
// not backpropagate through proposals or sampled RoIs).
type batchOp struct {
	nn.HostOp
	name string
	b    *batch
	rows int
}

func (op *batchOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.b.n * op.rows, 5}, nil
}
func (op *batchOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *batchOp) Hashcode() uint32      { return hashOf(op) }
func (op *batchOp) String() string        { return fmt.Sprintf("%s{%s rows=%d}", op.name, op.b.key, op.rows) }
func (op *batchOp) DiffWRT(n int) []bool  { return make([]bool, n) }
func (op *batchOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("detection: %s is not differentiable", op.name)
}
