package imageio

import (
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"

	"resdet/box"
)

// Tensor is a float32 image in CHW layout, shape [C, H, W]: the value of
// channel c at pixel (x, y) is Data[(c*H+y)*W+x].
type Tensor struct {
	C, H, W int
	Data    []float32
}

// At returns channel c of pixel (x, y).
func (t Tensor) At(c, x, y int) float32 { return t.Data[(c*t.H+y)*t.W+x] }

// Normalization maps 8-bit pixels to float32 network input:
// out[c] = (pixel[c]/Range - Mean[c]) / Std[c], computed in float32 in that
// order (torchvision's ToTensor then Normalize). Mean and Std are indexed by
// output channel, so for BGR output Mean[0] is the blue mean.
type Normalization struct {
	BGR   bool       // output channel order: false RGB (torchvision), true BGR (Caffe)
	Range float32    // divisor applied first: 255 maps to [0,1], 1 keeps 0..255
	Mean  [3]float32 // per output channel, in units after dividing by Range
	Std   [3]float32 // per output channel; 1 for mean subtraction only
}

// ImageNet returns torchvision's normalisation: RGB, pixels on [0,1], mean
// [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225].
func ImageNet() Normalization {
	return Normalization{
		Range: 255,
		Mean:  [3]float32{0.485, 0.456, 0.406},
		Std:   [3]float32{0.229, 0.224, 0.225},
	}
}

// Caffe returns the preset of the original (Caffe) Faster R-CNN and of
// Detectron's Caffe2 models: BGR, pixels 0..255, mean subtracted
// [102.9801, 115.9465, 122.7717] (B, G, R), no division.
func Caffe() Normalization {
	return Normalization{
		BGR:   true,
		Range: 1,
		Mean:  [3]float32{102.9801, 115.9465, 122.7717},
		Std:   [3]float32{1, 1, 1},
	}
}

// Apply converts an image to a [3, H, W] tensor. It panics if Range or a Std
// is zero (a programmer error: presets are never zero).
func (n Normalization) Apply(im *Image) Tensor {
	if n.Range == 0 || n.Std[0] == 0 || n.Std[1] == 0 || n.Std[2] == 0 {
		panic(fmt.Sprintf("imageio: Normalization with zero Range or Std: %+v", n))
	}
	t := Tensor{C: 3, H: im.H, W: im.W, Data: make([]float32, 3*im.H*im.W)}
	plane := im.H * im.W
	for oc := range 3 {
		ic := oc // input channel (RGB) feeding output channel oc
		if n.BGR {
			ic = 2 - oc
		}
		out := t.Data[oc*plane : (oc+1)*plane]
		r, m, s := n.Range, n.Mean[oc], n.Std[oc]
		for i := range out {
			out[i] = (float32(im.Pix[i*3+ic])/r - m) / s
		}
	}
	return t
}

// ResizeSize returns the size an image of w x h pixels is resized to so that
// its shorter side becomes minSize without its longer side exceeding maxSize,
// with torchvision's rule (GeneralizedRCNNTransform, torchvision 0.14):
//
//	scale = min(minSize * (1/short), maxSize * (1/long))  // each op in float32
//	newW  = floor(float64(w) * float64(scale)), newH likewise
//
// torch evaluates the Python expression min_size / tensor as
// reciprocal(tensor) * min_size in float32, which is not always the correctly
// rounded quotient: 600/23 gives 26.086958 there and 26.086956 in plain
// float32 division, and 23 * scale then floors to 600 instead of 599. The
// steps are kept so that sizes match torchvision exactly.
//
// The floor means the shorter side may come out one pixel below minSize
// (e.g. 333 x 500 -> 599 x 900 for 600/1000). It panics if any argument is
// not positive.
func ResizeSize(w, h, minSize, maxSize int) (scale float32, newW, newH int) {
	if w <= 0 || h <= 0 || minSize <= 0 || maxSize <= 0 {
		panic(fmt.Sprintf("imageio: ResizeSize(%d, %d, %d, %d): arguments must be positive", w, h, minSize, maxSize))
	}
	short, long := float32(min(w, h)), float32(max(w, h))
	invShort, invLong := 1/short, 1/long
	scale = min(float32(minSize)*invShort, float32(maxSize)*invLong)
	newW = int(math.Floor(float64(w) * float64(scale)))
	newH = int(math.Floor(float64(h) * float64(scale)))
	return scale, max(newW, 1), max(newH, 1)
}

// ResizeBoxes returns boxes scaled from a w x h image to a newW x newH one,
// x by float32(newW)/float32(w) and y by float32(newH)/float32(h), as
// torchvision's resize_boxes does (the ratios of the actual sizes, not the
// scale factor, so boxes follow the floor in ResizeSize).
func ResizeBoxes(boxes []box.Box, w, h, newW, newH int) []box.Box {
	sx, sy := float32(newW)/float32(w), float32(newH)/float32(h)
	out := make([]box.Box, len(boxes))
	for i, b := range boxes {
		out[i] = b.Scale(sx, sy)
	}
	return out
}

// FlipBoxes returns boxes mirrored in an image of width w, to go with
// Image.FlipX.
func FlipBoxes(boxes []box.Box, w int) []box.Box {
	out := make([]box.Box, len(boxes))
	for i, b := range boxes {
		out[i] = b.FlipX(float32(w))
	}
	return out
}

// Resize resamples every channel of t to newW x newH with OpenCV's bilinear
// interpolation (see the package documentation for the exact rule). It
// returns t itself when the size does not change, and panics if newW or newH
// is not positive.
func Resize(t Tensor, newW, newH int) (Tensor, error) {
	if newW <= 0 || newH <= 0 {
		panic(fmt.Sprintf("imageio: Resize to %dx%d", newW, newH))
	}
	if newW == t.W && newH == t.H {
		return t, nil
	}
	out := Tensor{C: t.C, H: newH, W: newW, Data: make([]float32, t.C*newH*newW)}
	src := gocv.NewMatWithSize(t.H, t.W, gocv.MatTypeCV32FC1)
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	in, err := src.DataPtrFloat32()
	if err != nil {
		return Tensor{}, fmt.Errorf("imageio: resize: %w", err)
	}
	for c := range t.C {
		copy(in, t.Data[c*t.H*t.W:(c+1)*t.H*t.W])
		gocv.Resize(src, &dst, image.Pt(newW, newH), 0, 0, gocv.InterpolationLinear)
		res, err := dst.DataPtrFloat32()
		if err != nil {
			return Tensor{}, fmt.Errorf("imageio: resize: %w", err)
		}
		if len(res) != newW*newH {
			return Tensor{}, fmt.Errorf("imageio: resize: OpenCV returned %d values, want %d", len(res), newW*newH)
		}
		copy(out.Data[c*newH*newW:], res)
	}
	return out, nil
}

// Transform is the per-image input transform of the detector: optional
// flip, normalisation, resize, in the order and with the rules its
// Preprocess names. The zero value is not valid; start from
// DefaultTransform or Detectron2Transform.
type Transform struct {
	// Preprocess selects the pipeline; "" is Torchvision.
	Preprocess Preprocess
	MinSize    int // target length of the shorter side (torchvision min_size, Detectron2 short_edge_length), > 0
	MaxSize    int // cap on the longer side (max_size), > 0
	Norm       Normalization
}

// DefaultTransform returns the Faster R-CNN paper's sizes (shorter side 600,
// longer side at most 1000; torchvision's fasterrcnn_resnet50_fpn uses
// 800/1333) with torchvision's ImageNet normalisation.
func DefaultTransform() Transform {
	return Transform{MinSize: 600, MaxSize: 1000, Norm: ImageNet()}
}

// Sample is a transformed image with its boxes.
type Sample struct {
	Image        Tensor    // [3, H, W], normalised and resized
	Boxes        []box.Box // in Image's pixel coordinates (flipped and scaled)
	OrigW, OrigH int       // size of the image before resizing (after EXIF orientation for Detectron2)
	Scale        float32   // the scale ResizeSize (Torchvision) or ShortestEdgeSize (Detectron2) chose
	Flipped      bool
}

// Apply flips (when flip is set), normalises and resizes im, moving boxes
// (in im's pixel coordinates) along. It does not change im or boxes.
//
// Torchvision: flip, normalise to float32, resize the float image to
// ResizeSize's size with Resize. Detectron2: resize the 8-bit image to
// ShortestEdgeSize's size with pillow.ResizeBilinear, flip, normalise. In
// both, Sample.Image is [3, newH, newW] and Sample.OrigW/OrigH is im's size.
// An unknown Preprocess is an error.
func (tr Transform) Apply(im *Image, boxes []box.Box, flip bool) (Sample, error) {
	switch tr.Preprocess {
	case "", Torchvision:
	case Detectron2:
		return tr.applyDetectron2(im, boxes, flip)
	default:
		return Sample{}, fmt.Errorf("imageio: unknown preprocessing %q", tr.Preprocess)
	}
	if flip {
		im = im.FlipX()
		boxes = FlipBoxes(boxes, im.W)
	}
	scale, w, h := ResizeSize(im.W, im.H, tr.MinSize, tr.MaxSize)
	t, err := Resize(tr.Norm.Apply(im), w, h)
	if err != nil {
		return Sample{}, err
	}
	return Sample{
		Image:   t,
		Boxes:   ResizeBoxes(boxes, im.W, im.H, w, h),
		OrigW:   im.W,
		OrigH:   im.H,
		Scale:   scale,
		Flipped: flip,
	}, nil
}

// Load reads the image file at path (Read; ReadOriented for Detectron2)
// and applies the transform (see Apply). Errors name the file.
func (tr Transform) Load(path string, boxes []box.Box, flip bool) (Sample, error) {
	im, err := tr.Read(path)
	if err != nil {
		return Sample{}, err
	}
	s, err := tr.Apply(im, boxes, flip)
	if err != nil {
		return Sample{}, fmt.Errorf("imageio: %s: %w", path, err)
	}
	return s, nil
}

// Read reads an image file as the transform's pipeline does: Read for
// Torchvision (EXIF orientation ignored), ReadOriented for Detectron2.
func (tr Transform) Read(path string) (*Image, error) {
	if tr.Preprocess == Detectron2 {
		return ReadOriented(path)
	}
	return Read(path)
}

// Batched is a batch of images in one buffer, shape [N, C, H, W]: value
// (n, c, y, x) is Data[((n*C+c)*H+y)*W+x].
type Batched struct {
	N, C, H, W int
	Data       []float32
	// Sizes[n] is the unpadded size of image n: X = width, Y = height.
	Sizes []image.Point
}

// Batch copies tensors into one [N, C, H, W] buffer, as torchvision's
// batch_images: H and W are the largest heights and widths rounded up to a
// multiple of stride, each image sits at the top-left, the rest is 0. It
// returns an error if the tensors are empty or differ in channels, and
// panics if stride is not positive.
func Batch(ts []Tensor, stride int) (Batched, error) {
	if stride <= 0 {
		panic(fmt.Sprintf("imageio: Batch stride %d", stride))
	}
	if len(ts) == 0 {
		return Batched{}, fmt.Errorf("imageio: batch: no images")
	}
	b := Batched{N: len(ts), C: ts[0].C, Sizes: make([]image.Point, len(ts))}
	for i, t := range ts {
		if t.C != b.C {
			return Batched{}, fmt.Errorf("imageio: batch: image %d has %d channels, image 0 has %d", i, t.C, b.C)
		}
		b.H, b.W = max(b.H, t.H), max(b.W, t.W)
		b.Sizes[i] = image.Pt(t.W, t.H)
	}
	b.H = (b.H + stride - 1) / stride * stride
	b.W = (b.W + stride - 1) / stride * stride
	b.Data = make([]float32, b.N*b.C*b.H*b.W)
	for n, t := range ts {
		for c := range t.C {
			for y := range t.H {
				dst := b.Data[((n*b.C+c)*b.H+y)*b.W:]
				copy(dst[:t.W], t.Data[(c*t.H+y)*t.W:(c*t.H+y+1)*t.W])
			}
		}
	}
	return b, nil
}
