package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"resdet/backbone"
	"resdet/datasets/imageio"
	"resdet/nn"
	"resdet/weights"
)

// ClassifyOptions are the inputs of `detect classify`.
type ClassifyOptions struct {
	Weights string   // .pth (torch.save state dict) or .safetensors
	Arch    string   // resnet18, resnet34, resnet50, resnet101 or resnet152
	Size    string   // "HxW": resize each image to exactly H x W; "" = resize 256 + centre crop 224
	H, W    int      // parsed from Size (0 when Size is empty)
	TopK    int      // classes per image, >= 1
	JSON    bool     // one JSON object per image and line
	Images  []string // image files (JPEG or PNG)
	Out     io.Writer
}

// Default ImageNet evaluation transform of torchvision: shorter side to 256, centre
// crop 224.
const (
	classifyResize = 256
	classifyCrop   = 224
)

func newCmdClassify(runF func(*ClassifyOptions) error) *cobra.Command {
	opts := &ClassifyOptions{}
	cmd := &cobra.Command{
		Use:   "classify --weights W.pth --arch resnet101 [--size HxW] [--topk 5] [--json] IMAGE...",
		Short: "Classify images with a ResNet and its fc layer (e.g. torchvision ImageNet weights)",
		Long: `Classify images with a ResNet classifier and print the top-k classes.

The weights are a torchvision state dict (.pth, as torch.save writes it) or a
safetensors file with the same names. The number of classes comes from fc.weight.
Each image is converted to RGB, scaled to [0,1] and normalised with torchvision's
ImageNet mean and std. Without --size the shorter side is resized to 256 and the
centre 224x224 is cropped (torchvision's ImageNet evaluation; resizing is OpenCV's
bilinear on the normalised image, without PIL's antialiasing, so logits differ
slightly from torchvision's PIL pipeline). With --size HxW each image is resized to
exactly H x W.

Output: per image, the top-k class ids with logit and softmax probability;
with --json one object per line: {"image": PATH, "topk": [{"class_id": N, "logit": X, "prob": P}, ...]}.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Images = args
			opts.Out = cmd.OutOrStdout()
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runClassify(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Weights, "weights", "", "weights file: torchvision .pth state dict or .safetensors (required)")
	f.StringVar(&opts.Arch, "arch", "", "network: resnet18, resnet34, resnet50, resnet101 or resnet152 (required)")
	f.StringVar(&opts.Size, "size", "", "resize every image to exactly HxW (default: shorter side 256, centre crop 224)")
	f.IntVar(&opts.TopK, "topk", 5, "number of classes to print per image")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object per image")
	_ = cmd.MarkFlagRequired("weights")
	_ = cmd.MarkFlagRequired("arch")
	return cmd
}

// classifyArchDepth maps --arch to the ResNet depth.
func classifyArchDepth(arch string) (int, error) {
	switch arch {
	case "resnet18":
		return 18, nil
	case "resnet34":
		return 34, nil
	case "resnet50":
		return 50, nil
	case "resnet101":
		return 101, nil
	case "resnet152":
		return 152, nil
	}
	return 0, fmt.Errorf("--arch %q: want resnet18, resnet34, resnet50, resnet101 or resnet152", arch)
}

func (o *ClassifyOptions) validate() error {
	if _, err := classifyArchDepth(o.Arch); err != nil {
		return err
	}
	if o.TopK < 1 {
		return fmt.Errorf("--topk %d: want at least 1", o.TopK)
	}
	o.H, o.W = 0, 0
	if o.Size != "" {
		hs, ws, ok := strings.Cut(o.Size, "x")
		h, err1 := strconv.Atoi(hs)
		w, err2 := strconv.Atoi(ws)
		if !ok || err1 != nil || err2 != nil || h < 1 || w < 1 {
			return fmt.Errorf("--size %q: want HxW with positive integers, e.g. 224x224", o.Size)
		}
		o.H, o.W = h, w
	}
	return nil
}

// classifyLoadState reads a .pth or .safetensors file (by content: safetensors files are
// not zip archives or pickles, so try torch first only for .pth/.pt names).
func classifyLoadState(path string) (weights.State, error) {
	if strings.HasSuffix(path, ".safetensors") {
		s, _, err := weights.ReadSafetensors(path)
		return s, err
	}
	return weights.LoadTorch(path)
}

// classifyResizeCrop returns the size the shorter side is resized to (torchvision's
// Resize(256): the longer side is int(256 * long / short)) and the top-left corner
// of the centre crop (torchvision's CenterCrop: int(round((size - crop) / 2)),
// rounding half to even as Python does).
func classifyResizeCrop(w, h, resize, crop int) (newW, newH, left, top int) {
	if w <= h {
		newW, newH = resize, int(float64(resize)*float64(h)/float64(w))
	} else {
		newW, newH = int(float64(resize)*float64(w)/float64(h)), resize
	}
	left = int(math.RoundToEven(float64(newW-crop) / 2))
	top = int(math.RoundToEven(float64(newH-crop) / 2))
	return newW, newH, left, top
}

// classifyInput reads an image and returns the network input [3, H, W] (CHW).
func classifyInput(path string, o *ClassifyOptions) (imageio.Tensor, error) {
	im, err := imageio.Read(path)
	if err != nil {
		return imageio.Tensor{}, err
	}
	t := imageio.ImageNet().Apply(im)
	if o.H > 0 {
		return imageio.Resize(t, o.W, o.H)
	}
	newW, newH, left, top := classifyResizeCrop(im.W, im.H, classifyResize, classifyCrop)
	if t, err = imageio.Resize(t, newW, newH); err != nil {
		return imageio.Tensor{}, err
	}
	out := imageio.Tensor{C: 3, H: classifyCrop, W: classifyCrop, Data: make([]float32, 3*classifyCrop*classifyCrop)}
	for c := 0; c < 3; c++ {
		for y := 0; y < classifyCrop; y++ {
			src := t.Data[(c*newH+top+y)*newW+left:]
			copy(out.Data[(c*classifyCrop+y)*classifyCrop:(c*classifyCrop+y+1)*classifyCrop], src[:classifyCrop])
		}
	}
	return out, nil
}

// classifyResult is one line of --json output.
type classifyResult struct {
	Image string           `json:"image"`
	TopK  []backbone.Class `json:"topk"`
}

func runClassify(o *ClassifyOptions) error {
	depth, err := classifyArchDepth(o.Arch)
	if err != nil {
		return err
	}
	st, err := classifyLoadState(o.Weights)
	if err != nil {
		return err
	}
	fc, ok := st["fc.weight"]
	if !ok || len(fc.Shape) != 2 {
		return fmt.Errorf("classify: %s: no classifier (fc.weight [classes, features])", o.Weights)
	}
	h, w := o.H, o.W
	if h == 0 {
		h, w = classifyCrop, classifyCrop
	}
	g := G.NewGraph()
	r, err := backbone.New(g, backbone.Config{Depth: depth, NumClasses: fc.Shape[0], Inference: true}, nil)
	if err != nil {
		return err
	}
	if err := r.Load(st); err != nil {
		return fmt.Errorf("classify: %s: %w", o.Weights, err)
	}
	xData := make([]float32, 3*h*w)
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 3, h, w), G.WithName("image"),
		G.WithValue(tensor.New(tensor.WithShape(1, 3, h, w), tensor.WithBacking(xData))))
	logits, err := r.Logits(x)
	if err != nil {
		return err
	}
	ex, err := nn.NewExecutor(g, logits)
	if err != nil {
		return err
	}
	defer ex.Close()
	enc := json.NewEncoder(o.Out)
	for _, path := range o.Images {
		in, err := classifyInput(path, o)
		if err != nil {
			return fmt.Errorf("classify: %w", err)
		}
		copy(xData, in.Data)
		if err := ex.Run(); err != nil {
			return fmt.Errorf("classify: %s: %w", path, err)
		}
		top := backbone.TopK(logits.Value().Data().([]float32), o.TopK)
		if o.JSON {
			if err := enc.Encode(classifyResult{Image: path, TopK: top}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(o.Out, "%s\n", path)
		for i, c := range top {
			fmt.Fprintf(o.Out, "  %d. class %4d  logit %9.4f  prob %.4f\n", i+1, c.ID, c.Logit, c.Prob)
		}
	}
	return nil
}
