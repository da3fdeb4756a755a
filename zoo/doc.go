// Package zoo is the registry of published pretrained weights resdet knows
// (Detectron2's COCO and VOC Faster R-CNN models, its MSRA ImageNet
// ResNets, torchvision's COCO Faster R-CNN R50-FPN v1 and v2) and the local
// cache they are downloaded into.
//
// # Names
//
// Every model has a short name: "<publisher>-<architecture>[-<schedule>]
// [-<dataset>]", the dataset left out for COCO:
//
//	d2-r50-c4-1x ... d2-x101-32x8d-fpn-3x   Detectron2 COCO-Detection/faster_rcnn_*
//	d2-r50-c4-voc                           Detectron2 PascalVOC-Detection/faster_rcnn_R_50_C4
//	d2-r50-imagenet, d2-r101-imagenet       Detectron2 ImageNetPretrained/MSRA/R-{50,101}.pkl
//	tv-r50-fpn, tv-r50-fpn-v2               torchvision fasterrcnn_resnet50_fpn{,_v2} COCO_V1
//
// DefaultName (d2-r101-c4-3x, Detectron2's faster_rcnn_R_101_C4_3x, 41.1
// box AP) is the model used when none is named.
//
// # Checksums
//
// torchvision's file names end in the first 8 hex digits of the file's
// SHA-256 (torch.hub's convention: torch/hub.py:69 HASH_REGEX, checked at
// :630 when load_state_dict_from_url is called with check_hash=True;
// torchvision 0.14 itself does not pass it, torchvision/models/_api.py:66).
// Model.Checksum holds that prefix and Cache.Fetch enforces it.
//
// Detectron2's files are named model_final_XXXXXX.pkl. Its MODEL_ZOO.md:26
// says the six hex digits are the file's md5 prefix, "to check downloaded
// file integrity", while detectron2/model_zoo/model_zoo.py:19 describes them
// as "model_final_{commit}" and no Detectron2 code checks them. It cannot be
// confirmed here, so it is not treated as a checksum: Model.NameMD5 keeps the
// digits and Cache.Fetch only reports (FetchResult.Warning) when the md5 of a
// fresh download does not start with them. Detectron2 publishes no file
// sizes or other digests, torchvision none in 0.14: Model.Size is 0 (unknown)
// for every entry, and the size the server announces is enforced instead.
//
// # Cache
//
// Files are kept as DIR/<name>/<publisher's file name>, DIR being, in order:
// the folder given to NewCache, $RESDET_CACHE, $XDG_CACHE_HOME/resdet/models,
// ~/.cache/resdet/models. A file put there by hand is used as is.
//
// $RESDET_MODEL_BASE_URL (or Cache.BaseURL) replaces the publishers'
// prefixes (https://dl.fbaipublicfiles.com/detectron2/ and
// https://download.pytorch.org/models/): model m is then fetched from
// BASE/m.Path, e.g. BASE/COCO-Detection/faster_rcnn_R_101_C4_3x/138204752/model_final_298dad.pkl,
// for a mirror or a test server.
package zoo
