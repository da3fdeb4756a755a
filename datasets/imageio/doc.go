// Package imageio reads images through gocv (OpenCV, cgo) and turns them into
// the float32 tensors a detector eats, with their boxes moved along. It is
// the only package of resdet that links OpenCV.
//
// # Pipelines
//
// Transform.Preprocess selects one of two pipelines (Preprocess):
//
// Torchvision (the zero value) follows torchvision's detection references
// and GeneralizedRCNNTransform (torchvision 0.14), in the same order:
//
//  1. Read / Decode: JPEG or PNG file -> Image, 8-bit RGB, HWC. OpenCV
//     decodes to BGR; the channels are swapped once, here. EXIF orientation
//     is ignored (IMREAD_IGNORE_ORIENTATION), as PIL's plain decoding does,
//     so pixels stay where the VOC/COCO annotations expect them.
//  2. Image.FlipX and FlipBoxes: optional horizontal flip (training
//     augmentation), box x -> W - x.
//  3. Normalization.Apply: Image -> Tensor [3, H, W] float32, CHW,
//     out = (pixel/Range - Mean[c]) / Std[c]. ImageNet() is torchvision's
//     default (RGB, [0,1], mean [0.485,0.456,0.406], std [0.229,0.224,0.225]);
//     Caffe() is the BGR mean-subtraction preset of the original Faster
//     R-CNN (BGR, 0..255, mean [102.9801,115.9465,122.7717], std 1).
//  4. Resize: bilinear, to the size ResizeSize gives (see it for the
//     scale rule); ResizeBoxes scales the boxes by the same ratios.
//
// Detectron2 follows Detectron2's DefaultPredictor and DatasetMapper
// (read_image, ResizeShortestEdge, RandomFlip, the model's normalizer):
//
//  1. ReadOriented / DecodeOriented: as Read, then the EXIF Orientation
//     applied as Pillow does (package pillow), so width and height swap for
//     orientations 5 to 8.
//  2. ShortestEdgeSize (rounded sides, Python doubles) and
//     pillow.ResizeBilinear on the 8-bit image: Pillow 9.4's antialiased
//     BILINEAR resize, bit for bit.
//  3. Optional horizontal flip; boxes scaled and mirrored in float64.
//  4. Normalization.Apply with Detectron2Norm(): BGR, 0..255, mean
//     [103.530, 116.280, 123.675] subtracted, std 1.
//
// Detectron2Transform() is that pipeline with Detectron2's COCO test sizes
// (800, 1333). Then, in both:
//
//  5. Batch: tensors of different sizes -> one [N, 3, H, W] buffer, each
//     image at the top-left, zero padding, H and W rounded up to a stride.
//
// Transform.Apply runs steps 2-4; Transform.Load runs 1-4 from a file;
// Transform.LoadFunc runs 1-4 on the records of a datasets.Dataset inside a
// datasets.Loader, with a seeded random flip, and returns Examples (sample,
// labels, difficult flags, record).
//
// # Broken files
//
// Decode checks the container before OpenCV decodes it, since OpenCV turns
// a cut file into an image with grey rows: a JPEG must reach its
// end-of-image marker (segments skipped by length, entropy-coded data
// scanned for markers) and a PNG its IEND chunk, every chunk's CRC
// matching. A truncated file gives an error wrapping ErrTruncated that says
// where the file ends; a PNG whose IDAT holds too little image data is
// reported the same way. Empty files and files of another kind (text named
// .jpg, GIF) fail too. Bytes after EOI or IEND are accepted. Every error
// names the file.
//
// # Resampling
//
// Resize (Torchvision) uses OpenCV's cv::resize with INTER_LINEAR on
// float32 planes: the source coordinate of output pixel x is
// (x+0.5)*in/out - 0.5 (half-pixel
// centres, "align_corners=False"), clamped at the borders, with no
// antialiasing filter when shrinking. That is the sampling rule of
// torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
// antialias=False) with a recomputed scale factor, which torchvision uses, so
// results agree with torch to float32 rounding (see TestTorchvisionParity),
// although parity is not a promise of this package. Resizing is done after
// normalisation, on float32 data, as torchvision does; resizing the 8-bit
// image first would round every pixel to an integer. The Detectron2
// pipeline does exactly that rounding, as Detectron2 does, with Pillow's
// filter (antialiased when shrinking; see package pillow).
//
// # Resources
//
// Every gocv.Mat is created and closed (defer m.Close()) inside the function
// that needs it: no Mat crosses the API, so callers cannot leak one.
// TestNoMemoryGrowth checks the process RSS over hundreds of cycles; with
// `go test -tags matprofile` TestMatProfile also checks gocv's count of live
// Mats is back to zero.
package imageio
