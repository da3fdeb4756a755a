package detection

import (
	"fmt"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/box"
)

// This file holds the copies between tensors (flat []float32 in NCHW or
// row-major layouts) and per-box Go values.

// FlattenRPN reorders one image's RPN head outputs into anchor order (the
// order of AnchorGenerator.Anchors: cell-major over y then x, anchor-minor),
// as torchvision's concat_box_prediction_layers. objectness is [A, Hi, Wi]
// (logits), deltas is [A*4, Hi, Wi] with the 4 deltas of anchor a in
// channels 4a..4a+3. It returns L = Hi*Wi*A logits and deltas. It panics if
// the lengths do not match a, h, w.
func FlattenRPN(objectness, deltas []float32, a, h, w int) ([]float32, []box.Delta) {
	hw := h * w
	if len(objectness) != a*hw || len(deltas) != 4*a*hw {
		panic(fmt.Sprintf("detection.FlattenRPN: %d logits and %d deltas for A=%d, H=%d, W=%d",
			len(objectness), len(deltas), a, h, w))
	}
	logits := make([]float32, a*hw)
	ds := make([]box.Delta, a*hw)
	for p := 0; p < hw; p++ {
		for k := 0; k < a; k++ {
			i := p*a + k
			logits[i] = objectness[k*hw+p]
			for j := 0; j < 4; j++ {
				ds[i][j] = deltas[(4*k+j)*hw+p]
			}
		}
	}
	return logits, ds
}

// RoIRows appends to dst (which may be nil) rows RoI rows (batchIndex, x1,
// y1, x2, y2) of one image: boxes, repeated cyclically when rows exceeds
// their number (the padding rows of a fixed-size graph, which the losses and
// post-processing leave out), or zero boxes when there are none. Rows of
// several images are concatenated to form a batch's RoI tensor.
func RoIRows(dst []float32, boxes []box.Box, batchIndex, rows int) []float32 {
	for j := range rows {
		var b box.Box
		if len(boxes) > 0 {
			b = boxes[j%len(boxes)]
		}
		dst = append(dst, float32(batchIndex), b.X1, b.Y1, b.X2, b.Y2)
	}
	return dst
}

// nodeData returns the float32 data of v, the input arg of the host op
// named op, which must have the given shape.
func nodeData(op, arg string, v G.Value, shape []int) ([]float32, error) {
	t, ok := v.(tensor.Tensor)
	if !ok || t.Dtype() != tensor.Float32 || !t.Shape().Eq(tensor.Shape(shape)) {
		return nil, fmt.Errorf("detection: %s: %s is %v, want float32 %v", op, arg, v, shape)
	}
	if d, ok := t.(*tensor.Dense); ok && d.RequiresIterator() {
		t = d.Materialize()
	}
	data, ok := t.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("detection: %s: %s holds %T, want []float32", op, arg, t.Data())
	}
	return data, nil
}

// values returns a node's float32 data after a run.
func values(n *G.Node) []float32 { return n.Value().Data().([]float32) }

// RoITensor wraps RoI rows from RoIRows as a [K, 5] float32 tensor (sharing
// rows). It panics if len(rows) is not a multiple of 5.
func RoITensor(rows []float32) *tensor.Dense {
	if len(rows)%5 != 0 {
		panic(fmt.Sprintf("detection.RoITensor: %d values, not a multiple of 5", len(rows)))
	}
	return tensor.New(tensor.WithShape(len(rows)/5, 5), tensor.WithBacking(rows))
}

func tensorType(dims int) hm.Type { return G.TensorType{Dims: dims, Of: hm.TypeVariable('a')} }

func hashOf(s fmt.Stringer) uint32 {
	h := fnv.New32a()
	fmt.Fprint(h, s.String())
	return h.Sum32()
}
