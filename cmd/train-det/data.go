package main

import (
	"fmt"
	"os"
	"path/filepath"

	"resdet/datasets"
	"resdet/datasets/synth"
	"resdet/format/classlist"
)

// dataSource names a data set on the command line: --data, --format,
// --images (COCO), --classes (VOC). ClassNames, when set, is the VOC class
// list itself (a run's or a checkpoint's) and Classes is not read.
type dataSource struct {
	Data, Format, Images, Classes string
	ClassNames                    []string
}

// vocRoot returns the VOC year folder of --data: the folder itself when it
// holds Annotations/, else its VOC2007 subfolder (a VOCdevkit or a
// synthetic dataset's root).
func vocRoot(data string) string {
	if st, err := os.Stat(filepath.Join(data, "Annotations")); err == nil && st.IsDir() {
		return data
	}
	return filepath.Join(data, "VOC2007")
}

// classList resolves --classes for VOC data: "" (the synthetic classes when
// the data has a synth.json next to the year folder, else VOC's 20), "voc",
// "synth", or a list as format/classlist reads it.
func classList(spec, data string) ([]string, error) {
	if spec == "" {
		for _, p := range []string{filepath.Join(data, "synth.json"), filepath.Join(filepath.Dir(vocRoot(data)), "synth.json")} {
			if _, err := os.Stat(p); err == nil {
				return synth.Classes(), nil
			}
		}
		return datasets.VOCClasses(), nil
	}
	names, err := classlist.Resolve(spec, map[string][]string{"voc": datasets.VOCClasses(), "synth": synth.Classes()})
	if err != nil {
		return nil, fmt.Errorf("--classes: %w", err)
	}
	return names, nil
}

// load reads one split. Training drops nothing here (difficult objects are
// left out by the training loop); skipBad drops bad annotations, listing
// them in Set.Skipped.
func (d dataSource) load(split string, skipBad bool) (*datasets.Set, error) {
	switch d.Format {
	case "voc":
		classes := d.ClassNames
		if classes == nil {
			var err error
			if classes, err = classList(d.Classes, d.Data); err != nil {
				return nil, err
			}
		}
		return datasets.ReadVOC(vocRoot(d.Data), split, datasets.VOCOptions{Classes: classes, KeepDifficult: true, CheckImages: true, SkipBad: skipBad})
	case "coco":
		ann, imgs := d.Data, d.Images
		if st, err := os.Stat(ann); err == nil && st.IsDir() {
			// A folder laid out as synth writes it (or COCO's
			// annotations/instances_<split>.json next to the images).
			ann = filepath.Join(d.Data, "annotations", "instances_"+split+".json")
			if imgs == "" {
				imgs = filepath.Join(d.Data, "VOC2007", "JPEGImages")
			}
		}
		if imgs == "" {
			imgs = filepath.Dir(ann)
		}
		return datasets.ReadCOCO(ann, imgs, datasets.COCOOptions{CheckImages: true, SkipBad: skipBad})
	}
	return nil, fmt.Errorf("--format %q: want voc or coco", d.Format)
}
