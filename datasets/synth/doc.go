// Package synth generates a synthetic object-detection dataset: images of
// coloured shapes on textured backgrounds, written as a real PASCAL VOC
// year folder and as COCO instances files, through the datasets writers. It
// is plain Go (image, image/jpeg; no cgo) and deterministic: the same Config
// and seed give byte-identical files.
//
// # Layout
//
// Generate(dir, ...) writes
//
//	dir/VOC2007/JPEGImages/000001.jpg ...          the images
//	dir/VOC2007/Annotations/000001.xml ...         one VOC annotation per image
//	dir/VOC2007/ImageSets/Main/{train,val,trainval,test}.txt
//	dir/annotations/instances_{train,val,trainval,test}.json   COCO, file_name
//	                                                relative to VOC2007/JPEGImages
//	dir/synth.json                                 the Config and seed used
//
// so datasets.ReadVOC(dir+"/VOC2007", split, VOCOptions{Classes: Classes(),
// KeepDifficult: true}) and datasets.ReadCOCO(dir+"/annotations/instances_"+
// split+".json", dir+"/VOC2007/JPEGImages", ...) read the same objects.
//
// # Content
//
// Each image has a background (gradient, stripes, checkerboard or smooth
// blotches) with pixel noise, and 1..MaxObjects objects of the classes in
// Classes(): circle and square (aspect 1), ellipse (aspect 1.5..2.5, lying or
// standing), triangle (pointing up or down), star and cross (aspect
// 0.6..1.7), in saturated colours chosen to differ from the background.
// Sizes are log-uniform from MinSize px to 90% of the shorter image side.
//
// Objects are painted in order, so later ones occlude earlier ones. A box is
// always the full extent of its object (the tight box of the pixels its
// shape covers inside the image, before occlusion), in the project
// convention (integer pixel edges). A new object is not placed when it would
// hide more than MaxOcclusion of an earlier object's pixels, so every
// annotated object stays mostly visible and every painted object is
// annotated.
//
// An object is difficult exactly when its longer box side is below MinSize:
// about TinyFraction of the objects are drawn that small on purpose (6 px to
// MinSize; their pixel boxes may come out a pixel smaller), and a few stars
// or crosses drawn just above MinSize end up there too. About
// TruncatedFraction extend past the image border: their box is clipped to
// the image and they are marked truncated (at least 40% of their pixels and
// a longer side of MinSize stay inside).
package synth
