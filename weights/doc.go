// Package weights reads and writes model parameters, as flat maps from name to
// float32 tensor (State). It reads the native safetensors format (and writes it),
// torchvision checkpoints (.pth files written by torch.save) and Detectron2 / Caffe2
// .pkl weight files; it writes nothing else. It is the file-format layer: plain Go
// that imports only the standard library and github.com/nlpodyssey/gopickle (for
// .pth), no gorgonia and no cgo, and no other package of this module.
//
// # Naming scheme
//
// A checkpoint is a flat map from parameter name to tensor. Names are torchvision's
// state_dict names, so a torchvision checkpoint and a native one hold the same keys
// (Detectron2 and Caffe2 files keep their own names; see the last section):
//
//	conv1.weight                 stem convolution, [64, 3, 7, 7]
//	bn1.weight, bn1.bias         batch-norm gamma and beta, [64]
//	bn1.running_mean, bn1.running_var
//	layer1.0.conv1.weight        stage res2 (layer1), block 0, first convolution
//	layer2.0.downsample.0.weight projection shortcut convolution ([OutC, InC, 1, 1])
//	layer2.0.downsample.1.*      its batch norm
//	fc.weight, fc.bias           classifier, [classes, features] and [classes]
//
// layer1 .. layer4 are the paper's conv2_x .. conv5_x. Convolution weights use torch's
// layout [OutC, InC, KH, KW]; fully connected weights [Out, In]. Every tensor is stored
// row-major (C order). num_batches_tracked entries are read (as float32) but not used.
//
// # Safetensors
//
// The native format is safetensors (https://github.com/huggingface/safetensors): an
// 8-byte little-endian header length n, n bytes of JSON
// {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
// "__metadata__": {string: string}}, then the raw little-endian tensor bytes, offsets
// relative to the end of the header. Nothing in the file is executed. WriteSafetensors
// writes F32 only; ReadSafetensors also accepts F64, F16, BF16, I64 and I32 (converted
// to float32).
//
// # Torch checkpoints
//
// LoadTorch reads the zip format torch.save has written since torch 1.6 (a pickle
// data.pkl plus one raw storage per tensor) and the older non-zip format. The pickle is
// interpreted by github.com/nlpodyssey/gopickle, which executes nothing: only the classes
// needed for a state dict (OrderedDict, torch storages, torch._utils._rebuild_tensor_v2)
// are recognised; any other class in the file is an error. The top-level object must be
// a dict of tensors, or a dict holding one under "state_dict" or "model".
//
// # Detectron2 and Caffe2 .pkl files
//
// ReadDetectron2 reads the pickles of Detectron2's model zoo ({"model": {name: numpy
// array}, "__author__": str, optional "matching_heuristics": bool}, Detectron2 names
// such as backbone.res2.0.conv1.norm.weight) and the Caffe2 layout of Detectron (v1)
// and the MSRA ImageNet initialisations (a flat {blob: array}, or {"blobs": {blob:
// array}}; *_momentum blobs are dropped), telling them apart as Detectron2 does. The
// pickle is read by a small unpickler of this package (protocols 2-5, in-band data)
// that executes nothing: it accepts the opcodes these files use and only the classes
// a numpy array needs (numpy's _reconstruct, ndarray, dtype and _frombuffer,
// _codecs.encode, bytes, collections.OrderedDict); any other class is an error naming
// it. Length fields are checked against the input before use, and the values decoded
// may not outnumber the bytes of the file. Arrays of float16, float32 and float64 (either
// byte order, C or Fortran order, any rank including 0-d) become row-major float32;
// integer arrays are accepted only for num_batches_tracked; object, complex, string
// and structured arrays are errors naming the tensor.
//
// Model-zoo files also hold tensors Detectron2 ignores (Detectron2Extra: pixel_mean,
// pixel_std, cell anchors). Caffe2 names become Detectron2 names with
// Caffe2ToDetectron2 (ConvertCaffe2 also reorders the class rows of Detectron v1
// detection heads), and AlignBySuffix matches a checkpoint's names to a model's as
// Detectron2's loader does: each model key takes the longest checkpoint key that is a
// "."-boundary suffix of it (res2.0.conv1.weight -> backbone.res2.0.conv1.weight, or
// backbone.bottom_up.res2.0.conv1.weight in an FPN), reporting the keys left unused.
// AlignCaffe2 does both. FillFrozenBNStats supplies what Detectron2's frozen batch
// norm assumes when a file has no running statistics: mean 0, variance 1.
package weights
