package box

import (
	"fmt"
	"math"
)

// Delta is a box regression target or prediction (dx, dy, dw, dh), already
// multiplied by the coder's weights: dx = wx*(gx-px)/pw, dw = ww*log(gw/pw)
// for a box g relative to a reference box p (centres gx, px; widths gw, pw).
type Delta [4]float32

// DefaultClampDelta is log(1000/16), the largest dw, dh (after division by
// the weights) that Decode passes to exp: torchvision's bbox_xform_clip.
var DefaultClampDelta = float32(math.Log(1000.0 / 16))

// BoxCoder encodes boxes as deltas relative to reference boxes and decodes
// them back, as torchvision's det_utils.BoxCoder. Widths are X2-X1 (no +1),
// centres X1 + 0.5*width, all arithmetic in float32 in torchvision's order.
type BoxCoder struct {
	// Weights (wx, wy, ww, wh) multiply the deltas on Encode and divide
	// them on Decode: (10, 10, 5, 5) for the box head, (1, 1, 1, 1) for
	// the RPN.
	Weights [4]float32
	// ClampDelta bounds dw and dh (after division by the weights) from
	// above before exp; DefaultClampDelta = log(1000/16).
	ClampDelta float32
}

// NewBoxCoder returns a coder with the given weights and DefaultClampDelta.
func NewBoxCoder(wx, wy, ww, wh float32) BoxCoder {
	return BoxCoder{Weights: [4]float32{wx, wy, ww, wh}, ClampDelta: DefaultClampDelta}
}

// EncodeOne returns the delta that moves the reference box ref onto gt.
// ref must have a positive width and height (else the result is Inf/NaN, as
// in torchvision).
func (c BoxCoder) EncodeOne(gt, ref Box) Delta {
	wx, wy, ww, wh := c.Weights[0], c.Weights[1], c.Weights[2], c.Weights[3]
	pw := ref.X2 - ref.X1
	ph := ref.Y2 - ref.Y1
	px := ref.X1 + float32(0.5)*pw
	py := ref.Y1 + float32(0.5)*ph
	gw := gt.X2 - gt.X1
	gh := gt.Y2 - gt.Y1
	gx := gt.X1 + float32(0.5)*gw
	gy := gt.Y1 + float32(0.5)*gh
	return Delta{
		float32(wx*(gx-px)) / pw,
		float32(wy*(gy-py)) / ph,
		ww * log32(gw/pw),
		wh * log32(gh/ph),
	}
}

// Encode returns, for each i, the delta of gt[i] relative to ref[i]
// (torchvision's encode(reference_boxes=gt, proposals=ref)). It panics if
// the lengths differ.
func (c BoxCoder) Encode(gt, ref []Box) []Delta {
	if len(gt) != len(ref) {
		panic(fmt.Sprintf("box.BoxCoder.Encode: %d gt boxes but %d reference boxes", len(gt), len(ref)))
	}
	out := make([]Delta, len(gt))
	for i := range gt {
		out[i] = c.EncodeOne(gt[i], ref[i])
	}
	return out
}

// DecodeOne applies the delta d to the reference box ref: the predicted
// centre is d.x/wx*width + centre, the predicted width
// exp(min(d.w/ww, ClampDelta))*width, and the box spans centre -/+ 0.5*width.
func (c BoxCoder) DecodeOne(d Delta, ref Box) Box {
	w := ref.X2 - ref.X1
	h := ref.Y2 - ref.Y1
	cx := ref.X1 + float32(0.5)*w
	cy := ref.Y1 + float32(0.5)*h
	dx := d[0] / c.Weights[0]
	dy := d[1] / c.Weights[1]
	dw := min(d[2]/c.Weights[2], c.ClampDelta)
	dh := min(d[3]/c.Weights[3], c.ClampDelta)
	pcx := float32(dx*w) + cx
	pcy := float32(dy*h) + cy
	pw := exp32(dw) * w
	ph := exp32(dh) * h
	hw := float32(0.5) * pw
	hh := float32(0.5) * ph
	return Box{pcx - hw, pcy - hh, pcx + hw, pcy + hh}
}

// Decode applies deltas[i] to ref[i]. It panics if the lengths differ.
func (c BoxCoder) Decode(deltas []Delta, ref []Box) []Box {
	if len(deltas) != len(ref) {
		panic(fmt.Sprintf("box.BoxCoder.Decode: %d deltas but %d reference boxes", len(deltas), len(ref)))
	}
	out := make([]Box, len(ref))
	for i := range ref {
		out[i] = c.DecodeOne(deltas[i], ref[i])
	}
	return out
}

func log32(x float32) float32 { return float32(math.Log(float64(x))) }
func exp32(x float32) float32 { return float32(math.Exp(float64(x))) }
