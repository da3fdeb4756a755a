// Package weights reads and writes model parameters: the native safetensors format
// and torchvision checkpoints (.pth files written by torch.save).
//
// # Naming scheme
//
// A checkpoint is a flat map from parameter name to tensor. Names are torchvision's
// state_dict names, so a torchvision checkpoint and a native one hold the same keys:
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
package weights
