// Package backbone builds the ResNets of He et al. 2015 ("Deep Residual Learning for
// Image Recognition") as gorgonia graphs from the ops of package nn.
//
// Networks: ResNet-18/34 (BasicBlock) and ResNet-50/101/152 (Bottleneck) from one depth
// table, their plain counterparts (no shortcuts), and the CIFAR-10 networks of section
// 4.2 (6n+2 layers, 16/32/64 filters, option A shortcuts). Options are fields of Config.
//
// Tensors are float32 NCHW: x [N, C, H, W]. Convolution weights are [OutC, InC, KH, KW]
// (torch layout). Parameter names are torchvision's state_dict names (see package
// resdet/weights), so torchvision checkpoints load directly with (*ResNet).Load.
//
// Stages are named as torchvision does (layer1 .. layer4) and correspond to the paper's
// conv2_x .. conv5_x (Detectron's res2 .. res5). For detection the network splits in two
// (the paper's appendix): C4 runs conv1 .. conv4_x and returns the stride-16 feature map;
// Res5 is the conv5_x stage, applied to pooled RoI features. Each output reports its
// channels and stride as a ShapeSpec.
package backbone
