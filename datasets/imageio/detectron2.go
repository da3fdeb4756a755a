package imageio

import (
	"fmt"

	"resdet/box"
	"resdet/datasets/imageio/pillow"
)

// Preprocess names a detector's input pipeline: how Transform decodes,
// sizes and resamples an image. The zero value is Torchvision.
type Preprocess string

const (
	// Torchvision is GeneralizedRCNNTransform's pipeline (torchvision
	// 0.14): EXIF orientation ignored, normalise to float32, then bilinear
	// resize of the float image (ResizeSize, Resize).
	Torchvision Preprocess = "torchvision"
	// Detectron2 is Detectron2's DefaultPredictor / DatasetMapper pipeline:
	// EXIF orientation applied (ReadOriented), ResizeShortestEdge sizes
	// (ShortestEdgeSize), Pillow's BILINEAR resize of the 8-bit image
	// (pillow.ResizeBilinear), then normalise.
	Detectron2 Preprocess = "detectron2"
)

// ParsePreprocess returns the Preprocess named s ("torchvision",
// "detectron2"; "" is Torchvision), or an error naming s.
func ParsePreprocess(s string) (Preprocess, error) {
	switch p := Preprocess(s); p {
	case "", Torchvision:
		return Torchvision, nil
	case Detectron2:
		return p, nil
	}
	return "", fmt.Errorf("imageio: unknown preprocessing %q (want %q or %q)", s, Torchvision, Detectron2)
}

// Detectron2Norm returns Detectron2's default normalisation
// (MODEL.PIXEL_MEAN / PIXEL_STD of its COCO models): BGR, pixels 0..255,
// mean [103.530, 116.280, 123.675] (B, G, R) subtracted, std 1.
func Detectron2Norm() Normalization {
	return Normalization{
		BGR:   true,
		Range: 1,
		Mean:  [3]float32{103.530, 116.280, 123.675},
		Std:   [3]float32{1, 1, 1},
	}
}

// Detectron2Transform returns Detectron2's test-time input transform for
// its COCO models: ResizeShortestEdge(800, 1333) with Pillow's bilinear
// filter, BGR 0..255 minus Detectron2Norm's mean, images read with their
// EXIF orientation applied.
func Detectron2Transform() Transform {
	return Transform{Preprocess: Detectron2, MinSize: 800, MaxSize: 1333, Norm: Detectron2Norm()}
}

// ShortestEdgeSize returns the size Detectron2's ResizeShortestEdge gives a
// w x h image with short_edge_length shortSize and max_size maxSize
// (detectron2/data/transforms/augmentation_impl.py, get_output_shape),
// computed in float64 as Python does:
//
//	s = shortSize / min(w, h)
//	(newH, newW) = (shortSize, s*w) if h < w else (s*h, shortSize)
//	if max(newH, newW) > maxSize: f = maxSize / max(newH, newW); newH, newW = newH*f, newW*f
//	newW, newH = int(newW + 0.5), int(newH + 0.5)
//
// Unlike torchvision's floor (ResizeSize), the sides are rounded: 512x600
// becomes 800x938 here and 800x937 there. scale is the factor applied
// before rounding (s, times f when the cap applies). It panics if an
// argument is not positive.
func ShortestEdgeSize(w, h, shortSize, maxSize int) (scale float64, newW, newH int) {
	if w <= 0 || h <= 0 || shortSize <= 0 || maxSize <= 0 {
		panic(fmt.Sprintf("imageio: ShortestEdgeSize(%d, %d, %d, %d): arguments must be positive", w, h, shortSize, maxSize))
	}
	size := float64(shortSize)
	scale = size / float64(min(w, h))
	var nh, nw float64
	if h < w {
		nh, nw = size, float64(scale*float64(w))
	} else {
		nh, nw = float64(scale*float64(h)), size
	}
	if m := max(nh, nw); m > float64(maxSize) {
		f := float64(maxSize) / m
		nh, nw = float64(nh*f), float64(nw*f)
		scale = float64(scale * f)
	}
	return scale, int(nw + 0.5), int(nh + 0.5)
}

// applyDetectron2 is Transform.Apply for the Detectron2 pipeline: resize
// the 8-bit image with Pillow's filter, flip (Detectron2 augments in that
// order: ResizeShortestEdge, then RandomFlip), normalise; boxes move as
// detectron2Boxes says.
func (tr Transform) applyDetectron2(im *Image, boxes []box.Box, flip bool) (Sample, error) {
	scale, w, h := ShortestEdgeSize(im.W, im.H, tr.MinSize, tr.MaxSize)
	resized := im
	if w != im.W || h != im.H {
		resized = &Image{W: w, H: h, Pix: pillow.ResizeBilinear(im.Pix, im.W, im.H, 3, w, h)}
	}
	if flip {
		resized = resized.FlipX()
	}
	return Sample{
		Image:   tr.Norm.Apply(resized),
		Boxes:   detectron2Boxes(boxes, im.W, im.H, w, h, flip),
		OrigW:   im.W,
		OrigH:   im.H,
		Scale:   float32(scale),
		Flipped: flip,
	}, nil
}

// detectron2Boxes scales boxes from a w x h image to newW x newH and
// mirrors them in the new width when flip is set, as Detectron2's
// ResizeTransform and HFlipTransform do on annotation boxes: in float64
// (x * (newW / w), then newW - x), rounded to float32 at the end.
func detectron2Boxes(boxes []box.Box, w, h, newW, newH int, flip bool) []box.Box {
	sx, sy := float64(newW)/float64(w), float64(newH)/float64(h)
	out := make([]box.Box, len(boxes))
	for i, b := range boxes {
		x1, x2 := float64(b.X1)*sx, float64(b.X2)*sx
		if flip {
			x1, x2 = float64(newW)-x2, float64(newW)-x1
		}
		out[i] = box.Box{X1: float32(x1), Y1: float32(float64(b.Y1) * sy), X2: float32(x2), Y2: float32(float64(b.Y2) * sy)}
	}
	return out
}
