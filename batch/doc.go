// Package batch runs a detector over many images as an Apache Beam
// pipeline (the Go SDK), on any Beam runner: prism or direct in this
// process, Flink, Spark or Dataflow on a cluster.
//
// The pipeline: the input (a text file listing image paths, one a line,
// or a glob) is expanded through Beam's filesystems (local paths; gs:// and
// s3:// as registered here), reshuffled so that the images spread over the
// workers, and run through detectFn, a structural DoFn that borrows a
// detector from its worker process's pool (at most ModelsPerWorker, each
// loaded once; the first in the first StartBundle, not in Setup, so that
// prism can split the stage into parallel bundles while it loads: fns.go
// says why) and runs inference.DetectFile on each image: the code path of
// `detect`. Each image gives one line of
// PREFIX-detections-SSSSS-of-NNNNN.jsonl (the `detect --json` object,
// inference.Result) or one line of the dead-letter output
// PREFIX-errors-SSSSS-of-NNNNN.jsonl ({"image": PATH, "error": REASON}).
// The counts of both (images, detections, failures) are summed in the
// pipeline into PREFIX-summary.json, which Run reads back: Beam's metrics
// are best effort (prism loses counts when bundles finish at once).
// An image goes to shard fnv32a(path) mod NNNNN and each shard is sorted
// by path, so a rerun over the same input writes the same files. With a
// COCO ground truth, all results are gathered into
// PREFIX-coco-results.json (sorted by path) and evaluated by package eval
// into PREFIX-coco-eval.txt (the 12 lines eval-det prints).
//
// Beam requires the DoFn types to be registered before the pipeline is
// built or a worker starts: this package does so in its init function
// (the one exception to "register nothing in init()").
package batch
