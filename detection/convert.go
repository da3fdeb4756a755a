package detection

import (
	"fmt"

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

// RoIs returns the [len(boxes), 5] RoI rows (batchIndex, x1, y1, x2, y2) of
// one image's boxes, appended to dst (which may be nil). Rows of several
// images are concatenated to form a batch's RoI tensor.
func RoIs(dst []float32, boxes []box.Box, batchIndex int) []float32 {
	for _, b := range boxes {
		dst = append(dst, float32(batchIndex), b.X1, b.Y1, b.X2, b.Y2)
	}
	return dst
}

// RoITensor wraps RoI rows from RoIs as a [K, 5] float32 tensor (sharing
// rows). It panics if len(rows) is not a multiple of 5.
func RoITensor(rows []float32) *tensor.Dense {
	if len(rows)%5 != 0 {
		panic(fmt.Sprintf("detection.RoITensor: %d values, not a multiple of 5", len(rows)))
	}
	return tensor.New(tensor.WithShape(len(rows)/5, 5), tensor.WithBacking(rows))
}
