package zoo

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"resdet/download"
)

// Format is the container and naming scheme of a weight file.
type Format string

// The weight file formats of the registry (see ../shared/PRETRAINED.md 2.6).
const (
	// FormatDetectron2 is a pickle of {"model": {name: ndarray}, "__author__": ...}
	// with Detectron2's parameter names.
	FormatDetectron2 Format = "detectron2-pkl"
	// FormatCaffe2 is a flat pickle {caffe2_name: ndarray} (Detectron2's
	// ImageNet ResNets).
	FormatCaffe2 Format = "caffe2-pkl"
	// FormatTorchvision is a torch.save'd state_dict with torchvision's names.
	FormatTorchvision Format = "torchvision-pth"
)

// Construction says whose model code the weights were trained with; the same
// architecture name differs in details between them (stride on the 1x1 or
// 3x3 conv, anchors, RoIAlign, input normalisation: ../shared/PRETRAINED.md).
type Construction string

// The constructions of the registry.
const (
	Detectron2  Construction = "detectron2"
	Torchvision Construction = "torchvision"
)

// Dataset is what the weights were trained on.
type Dataset string

// The datasets of the registry.
const (
	COCO     Dataset = "coco"     // COCO train2017, evaluated on val2017
	VOC      Dataset = "voc"      // VOC 2007+2012 trainval, evaluated on VOC 2007 test
	ImageNet Dataset = "imagenet" // ImageNet-1k classification (backbone initialisation)
)

// Model is one published weight file.
type Model struct {
	Name  string // short name, e.g. "d2-r101-c4-3x"
	Title string // the publisher's name, e.g. "COCO-Detection/faster_rcnn_R_101_C4_3x"
	// Base is the publisher's URL prefix and Path the rest of the URL:
	// URL() = Base + Path. A mirror (Cache.BaseURL) serves Path.
	Base, Path string
	Format     Format
	// Arch is the detection.Config.Arch of a detector (r50-c4, r50-dc5,
	// r50-fpn, r101-c4, x101-fpn for ResNeXt-101 32x8d, tv-r50-fpn, ...) or
	// the ResNet of a backbone (r50, r101).
	Arch         string
	Construction Construction
	Dataset      Dataset
	// Metric names AP: "box AP" (COCO AP@[.5:.95], percent) or "AP50" (VOC
	// 2007 11-point AP at IoU 0.5, percent); "" for ImageNet backbones.
	Metric string
	AP     float64
	// Size is the file size in bytes; 0 when the publisher does not give it.
	Size int64
	// Checksum is the publisher's digest prefix, enforced on download; zero
	// when there is none.
	Checksum download.Digest
	// NameMD5 is the hex suffix of a Detectron2 model_final_XXXXXX.pkl,
	// documented (MODEL_ZOO.md:26) but not verified by Detectron2 as an md5
	// prefix; see the package documentation.
	NameMD5 string
	// Source cites where the URL and numbers come from.
	Source string
}

// URL returns the publisher's URL of the file.
func (m Model) URL() string { return m.Base + m.Path }

// FileName returns the publisher's file name.
func (m Model) FileName() string { return path.Base(m.Path) }

// Publishers' URL prefixes.
const (
	// detectron2/model_zoo/model_zoo.py:17 (S3_PREFIX); MODEL_ZOO.md links
	// the same files.
	d2Base = "https://dl.fbaipublicfiles.com/detectron2/"
	// torchvision/models/detection/faster_rcnn.py:380,399 (0.14.1).
	tvBase = "https://download.pytorch.org/models/"
)

// DefaultName is the model used when none is named: Detectron2's
// faster_rcnn_R_101_C4_3x.
const DefaultName = "d2-r101-c4-3x"

// d2 builds a Detectron2 COCO-Detection or PascalVOC-Detection entry. The URL
// is S3_PREFIX + config name + "/" + "<model id>/model_final_<suffix>.pkl"
// (model_zoo.py:99-107).
func d2(name, config, id, suffix, arch string, ds Dataset, metric string, ap float64, source string) Model {
	return Model{
		Name: name, Title: config, Base: d2Base,
		Path:   config + "/" + id + "/model_final_" + suffix + ".pkl",
		Format: FormatDetectron2, Arch: arch, Construction: Detectron2,
		Dataset: ds, Metric: metric, AP: ap, NameMD5: suffix, Source: source,
	}
}

// Models returns every registered model, in the order `detect models` lists
// them. The slice is the caller's.
//
// Sources (Detectron2 at commit 02b5c4e2, torchvision 0.14.1 as installed by
// Debian's python3-torchvision): the Detectron2 model ids and file suffixes
// are detectron2/model_zoo/model_zoo.py:22-31 (COCO) and :79 (VOC), the same
// as the links of MODEL_ZOO.md; the AP of each is in the MODEL_ZOO.md line
// given in its Source.
func Models() []Model {
	const mz = "detectron2 model_zoo/model_zoo.py:"
	return []Model{
		d2("d2-r50-c4-1x", "COCO-Detection/faster_rcnn_R_50_C4_1x", "137257644", "721ade", "r50-c4", COCO, "box AP", 35.7, mz+"22, MODEL_ZOO.md:107"),
		d2("d2-r50-dc5-1x", "COCO-Detection/faster_rcnn_R_50_DC5_1x", "137847829", "51d356", "r50-dc5", COCO, "box AP", 37.3, mz+"23, MODEL_ZOO.md:117"),
		d2("d2-r50-fpn-1x", "COCO-Detection/faster_rcnn_R_50_FPN_1x", "137257794", "b275ba", "r50-fpn", COCO, "box AP", 37.9, mz+"24, MODEL_ZOO.md:127"),
		d2("d2-r50-c4-3x", "COCO-Detection/faster_rcnn_R_50_C4_3x", "137849393", "f97cb7", "r50-c4", COCO, "box AP", 38.4, mz+"25, MODEL_ZOO.md:137"),
		d2("d2-r50-dc5-3x", "COCO-Detection/faster_rcnn_R_50_DC5_3x", "137849425", "68d202", "r50-dc5", COCO, "box AP", 39.0, mz+"26, MODEL_ZOO.md:147"),
		d2("d2-r50-fpn-3x", "COCO-Detection/faster_rcnn_R_50_FPN_3x", "137849458", "280758", "r50-fpn", COCO, "box AP", 40.2, mz+"27, MODEL_ZOO.md:157"),
		d2("d2-r101-c4-3x", "COCO-Detection/faster_rcnn_R_101_C4_3x", "138204752", "298dad", "r101-c4", COCO, "box AP", 41.1, mz+"28, MODEL_ZOO.md:167"),
		d2("d2-r101-dc5-3x", "COCO-Detection/faster_rcnn_R_101_DC5_3x", "138204841", "3e0943", "r101-dc5", COCO, "box AP", 40.6, mz+"29, MODEL_ZOO.md:177"),
		d2("d2-r101-fpn-3x", "COCO-Detection/faster_rcnn_R_101_FPN_3x", "137851257", "f6e8b1", "r101-fpn", COCO, "box AP", 42.0, mz+"30, MODEL_ZOO.md:187"),
		d2("d2-x101-32x8d-fpn-3x", "COCO-Detection/faster_rcnn_X_101_32x8d_FPN_3x", "139173657", "68b088", "x101-fpn", COCO, "box AP", 43.0, mz+"31, MODEL_ZOO.md:197"),
		// VOC 2007+2012 trainval, VOC 2007 test, 11-point AP50 (MODEL_ZOO.md:776;
		// box AP 51.9 at :812, AP50 80.3 at :813).
		d2("d2-r50-c4-voc", "PascalVOC-Detection/faster_rcnn_R_50_C4", "142202221", "b1acc2", "r50-c4", VOC, "AP50", 80.3, mz+"79, MODEL_ZOO.md:813"),
		{
			Name: "d2-r50-imagenet", Title: "ImageNetPretrained/MSRA/R-50", Base: d2Base, Path: "ImageNetPretrained/MSRA/R-50.pkl",
			Format: FormatCaffe2, Arch: "r50", Construction: Detectron2, Dataset: ImageNet,
			Source: "detectron2 MODEL_ZOO.md:54; configs/COCO-Detection/faster_rcnn_R_50_C4_1x.yaml:3",
		},
		{
			Name: "d2-r101-imagenet", Title: "ImageNetPretrained/MSRA/R-101", Base: d2Base, Path: "ImageNetPretrained/MSRA/R-101.pkl",
			Format: FormatCaffe2, Arch: "r101", Construction: Detectron2, Dataset: ImageNet,
			Source: "detectron2 MODEL_ZOO.md:55; configs/COCO-Detection/faster_rcnn_R_101_C4_3x.yaml:3",
		},
		{
			Name: "tv-r50-fpn", Title: "fasterrcnn_resnet50_fpn COCO_V1", Base: tvBase, Path: "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
			Format: FormatTorchvision, Arch: "tv-r50-fpn", Construction: Torchvision, Dataset: COCO, Metric: "box AP", AP: 37.0,
			Checksum: download.Digest{Algo: download.SHA256, Prefix: "258fb6c6"},
			Source:   "torchvision/models/detection/faster_rcnn.py:380 (URL), :388 (box_map)",
		},
		{
			Name: "tv-r50-fpn-v2", Title: "fasterrcnn_resnet50_fpn_v2 COCO_V1", Base: tvBase, Path: "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
			Format: FormatTorchvision, Arch: "tv-r50-fpn-v2", Construction: Torchvision, Dataset: COCO, Metric: "box AP", AP: 46.7,
			Checksum: download.Digest{Algo: download.SHA256, Prefix: "dd69338a"},
			Source:   "torchvision/models/detection/faster_rcnn.py:399 (URL), :407 (box_map)",
		},
	}
}

// Lookup returns the model called name; the error lists the known names.
func Lookup(name string) (Model, error) {
	ms := Models()
	i := slices.IndexFunc(ms, func(m Model) bool { return m.Name == name })
	if i < 0 {
		names := make([]string, len(ms))
		for j, m := range ms {
			names[j] = m.Name
		}
		return Model{}, fmt.Errorf("zoo: unknown model %q; known: %s", name, strings.Join(names, ", "))
	}
	return ms[i], nil
}

// Default returns the model called DefaultName.
func Default() Model {
	m, err := Lookup(DefaultName)
	if err != nil {
		panic(err) // the registry always holds DefaultName (TestRegistry)
	}
	return m
}
