package imageio

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"os"

	"gocv.io/x/gocv"

	"resdet/datasets/imageio/pillow"
)

// Image is an 8-bit RGB image, HWC, row-major: the value of channel c
// (0 R, 1 G, 2 B) of pixel (x, y) is Pix[(y*W+x)*3+c].
type Image struct {
	W, H int
	Pix  []uint8
}

// NewImage returns a black w x h image. It panics if w or h is not positive.
func NewImage(w, h int) *Image {
	if w <= 0 || h <= 0 {
		panic(fmt.Sprintf("imageio: NewImage(%d, %d): size must be positive", w, h))
	}
	return &Image{W: w, H: h, Pix: make([]uint8, w*h*3)}
}

// At returns the R, G, B values of pixel (x, y).
func (im *Image) At(x, y int) (r, g, b uint8) {
	i := (y*im.W + x) * 3
	return im.Pix[i], im.Pix[i+1], im.Pix[i+2]
}

// FlipX returns the image mirrored left to right.
func (im *Image) FlipX() *Image {
	out := &Image{W: im.W, H: im.H, Pix: make([]uint8, len(im.Pix))}
	for y := range im.H {
		row := im.Pix[y*im.W*3 : (y+1)*im.W*3]
		dst := out.Pix[y*im.W*3 : (y+1)*im.W*3]
		for x := range im.W {
			copy(dst[(im.W-1-x)*3:(im.W-x)*3], row[x*3:x*3+3])
		}
	}
	return out
}

// Format is an image file format this package reads and writes.
type Format string

const (
	JPEG Format = "jpeg"
	PNG  Format = "png"
)

// sniff returns the format of encoded image data from its magic bytes.
func sniff(data []byte) (Format, bool) {
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		return JPEG, true
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return PNG, true
	}
	return "", false
}

// errDecode is wrapped by every decoding failure.
var errDecode = errors.New("not a decodable JPEG or PNG image")

// Read reads a JPEG or PNG file into an RGB image. Grey images are expanded
// to three channels, alpha is dropped, 16-bit PNGs are reduced to 8 bits,
// EXIF orientation is ignored (pixels as stored, as torchvision's and
// PIL's plain decoding give them). Errors name the file; a truncated file
// is an error wrapping ErrTruncated.
func Read(path string) (*Image, error) {
	return readWith(path, Decode)
}

// ReadOriented is Read with the EXIF orientation applied, as Detectron2's
// read_image does (see DecodeOriented).
func ReadOriented(path string) (*Image, error) {
	return readWith(path, DecodeOriented)
}

func readWith(path string, decode func([]byte) (*Image, error)) (*Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("imageio: read image: %w", err)
	}
	im, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("imageio: %s: %w", path, err)
	}
	return im, nil
}

// Decode decodes JPEG or PNG data into an RGB image (see Read). The
// container is checked first: a JPEG must reach its end-of-image marker and
// a PNG its IEND chunk with every chunk's CRC correct.
func Decode(data []byte) (*Image, error) {
	f, ok := sniff(data)
	if !ok {
		if len(data) == 0 {
			return nil, fmt.Errorf("%w (empty file)", errDecode)
		}
		return nil, fmt.Errorf("%w (unknown signature % x)", errDecode, data[:min(len(data), 8)])
	}
	if err := checkComplete(f, data); err != nil {
		return nil, err
	}
	bgr, err := gocv.IMDecode(data, gocv.IMReadColor|gocv.IMReadIgnoreOrientation)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errDecode, err)
	}
	defer bgr.Close()
	if bgr.Empty() {
		if f == PNG {
			if err := explainPNG(data); err != nil {
				return nil, err
			}
		}
		return nil, fmt.Errorf("%w (OpenCV could not decode it)", errDecode)
	}
	rgb := gocv.NewMat()
	defer rgb.Close()
	gocv.CvtColor(bgr, &rgb, gocv.ColorBGRToRGB)
	return imageFromMat(rgb)
}

// DecodeOriented decodes as Decode, then turns the image as its EXIF
// Orientation tag says (values 2 to 8; pillow.Orientation tells where the
// tag is looked for), so that the result equals Pillow's
// ImageOps.exif_transpose of the decoded image: Detectron2's read_image
// (detection_utils.py, _apply_exif_orientation). With orientations 5 to 8
// width and height swap. Missing or unreadable EXIF leaves the image as
// stored, as Pillow does.
//
// OpenCV 4.6's imdecode and imread apply the orientation themselves unless
// told not to (IMREAD_IGNORE_ORIENTATION), but only from a JPEG's APP1 or a
// PNG's eXIf chunk, not from the XMP and ImageMagick raw-profile forms
// Pillow also reads; so this function decodes as stored, reads the tag as
// Pillow does and transposes in Go. OpenCV's JPEG pixels equal Pillow's
// (both use Debian's libjpeg-turbo, libjpeg.so.62), and so do its PNG
// pixels for 8-bit RGB, RGBA, grey, grey+alpha, palette (with or without
// transparency) and 16-bit RGB. Two formats differ from Pillow's
// convert("RGB"): 16-bit grey PNGs (Pillow clips each value to 255,
// OpenCV keeps the high byte) and CMYK JPEGs (rounding, by 1).
func DecodeOriented(data []byte) (*Image, error) {
	im, err := Decode(data)
	if err != nil {
		return nil, err
	}
	o := pillow.Orientation(data)
	if o < 2 || o > 8 {
		return im, nil
	}
	pix, w, h := pillow.Transpose(im.Pix, im.W, im.H, 3, o)
	return &Image{W: w, H: h, Pix: pix}, nil
}

// imageFromMat copies a continuous 8-bit 3-channel Mat into an Image.
func imageFromMat(m gocv.Mat) (*Image, error) {
	if m.Type() != gocv.MatTypeCV8UC3 {
		return nil, fmt.Errorf("imageio: unexpected Mat type %v", m.Type())
	}
	pix, err := m.DataPtrUint8()
	if err != nil {
		return nil, err
	}
	im := &Image{W: m.Cols(), H: m.Rows(), Pix: make([]uint8, m.Cols()*m.Rows()*3)}
	copy(im.Pix, pix)
	return im, nil
}

// ToRGBA returns the image as a standard library *image.RGBA (opaque).
func (im *Image) ToRGBA() *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, im.W, im.H))
	for i := range im.W * im.H {
		copy(out.Pix[i*4:i*4+3], im.Pix[i*3:i*3+3])
		out.Pix[i*4+3] = 255
	}
	return out
}
