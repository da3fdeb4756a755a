// Package train trains Faster R-CNN detectors and evaluates them. It owns:
//
//   - the training loop, Run: a short loop that reads a batch, steps the
//     detection.Trainer and the optim.SGD, and calls hooks around it, as
//     Detectron2's engine/train_loop.py does (Hook, HookBase, State);
//   - the built-in hooks: progress for an Observer, the metrics log
//     (metrics.jsonl, Metrics), checkpoints (written atomically, the last
//     Config.Keep kept, model_final.safetensors at the end) and evaluation
//     during training;
//   - the run folder, RunDir: the one place that knows its layout
//     (run.json, metrics.jsonl, checkpoints/iter_N/, model_final.safetensors,
//     eval/, plots) and which file a --weights folder names (ResolveWeights);
//   - the resume policy: which Config fields may change when a run is
//     resumed (MayChangeOnResume, CheckResume, ResumeConfig), and exact
//     resumption (every random draw is a function of Config.Seed and the
//     iteration);
//   - data-parallel training over several processes (Options.Dist, see
//     Dist): sharded global batches, one fused all-reduce of the weighted
//     gradients per step, rank 0 the only writer;
//   - evaluation (Evaluate, EvalReport: VOC and COCO numbers through package
//     eval, precision-recall curves) and plots (PlotRun, DrawChart).
//
// The run configuration is Config, a plain struct saved as run.json;
// DefaultConfig and Config.Preset give the recipes, and ApplyInit fits one
// to the file its weights start from (Config.Init: an ImageNet ResNet or a
// detector to fine-tune; InitFile resolves a published model's name
// through package zoo's cache).
//
// Display is not train's: Run reports progress to an Observer (and
// Evaluate to a Progress), which the command line implements with
// internal/cli's progress bar. train imports the model and data packages
// below it (backbone, box, checkpoint, datasets, datasets/imageio,
// detection, eval, optim, weights, zoo) and nothing of the command line
// (internal/cli, cmd/).
//
// Boxes follow package box's convention: absolute pixel XYXY, continuous,
// width = X2-X1. Training images are [3, H, W] float32 (CHW), resized and
// normalised as Config.Model.Transform says; labels count from 1 (0 is the
// background) in detection.TrainImage and from 0 in datasets.
package train
