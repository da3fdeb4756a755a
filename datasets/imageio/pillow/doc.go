// Package pillow reproduces, in plain Go and bit for bit, the parts of
// Pillow 9.4 (PIL) that Detectron2's image pipeline depends on: the
// BILINEAR resize of 8-bit images (Image.resize) and the EXIF orientation
// that Image.getexif reports and Image.transpose applies.
//
// Images are 8-bit, interleaved, row-major: the value of channel c of pixel
// (x, y) of a w x h image with ch channels is pix[(y*w+x)*ch+c]. Coordinates
// are integer pixel indices from the top-left corner.
//
// # Resampling
//
// ResizeBilinear follows Pillow's src/libImaging/Resample.c (precompute_coeffs,
// normalize_coeffs_8bpc, ImagingResampleInner):
//
//   - per axis, scale = in/out and filterscale = max(scale, 1), so shrinking
//     widens the triangle filter (antialiasing); support = filterscale;
//   - output pixel i takes inputs [xmin, xmax) with center = (i+0.5)*scale,
//     xmin = max(0, int(center-support+0.5)), xmax = min(in, int(center+support+0.5)),
//     weight of input j: tri((j-center+0.5)/filterscale), tri(t) = max(0, 1-|t|),
//     normalised by their sum, all in float64 as Pillow does;
//   - weights become int32 with 22 fractional bits, rounded half away from zero;
//   - the horizontal pass runs first, over the input rows the vertical pass
//     reads, into an 8-bit intermediate; then the vertical pass. Each output
//     is clamp((2^21 + sum(p*k)) >> 22, 0, 255);
//   - an axis whose size does not change is not resampled.
//
// # Orientation
//
// Orientation reads the EXIF Orientation tag (0x0112) of a JPEG (first APP1
// "Exif" segment before the scan) or a PNG (eXIf chunk, "Raw profile type
// exif" text chunk, and the XMP packet's tiff:Orientation when the EXIF has
// no such tag), as Pillow's getexif does. Transpose applies it as
// ImageOps.exif_transpose and Detectron2's read_image do.
package pillow
