// Package testutil holds what resdet's tests share: finding Debian's
// /usr/bin/python3 with torch and torchvision for the parity tests (Python),
// running the Python scripts in testdata/ that compute reference values
// (RunScript, ScriptJSON, Regenerate; ScriptDir for fixtures too large to
// commit, generated once per test binary), locating the fixtures in ../shared
// beside the clone (SharedDir), reading the base64 fixtures written by
// the torch scripts of box, ops and detection (LoadFixture, their one
// reader), comparing float32 tensors (MaxRelErr, ExpectClose) and scalars
// (ExpectScalarRel), and the resource figures
// benchmarks report (CPUSeconds, PeakRSSMB, ReportRun).
//
// Missing optional tools skip the tests that need them, with a message
// saying what is missing, unless the matching environment variable asks for
// a failure instead: RESDET_REQUIRE_TORCH=1 (Python with torch and
// torchvision), RESDET_REQUIRE_SHARED=1 (the ../shared folder) or
// RESDET_REQUIRE_BF16=1 (a CPU where oneDNN runs bf16: BF16).
//
// It is imported only by _test.go files and imports only the standard
// library.
//
// Its Python counterpart, resdet_fixtures.py in this folder, holds what the
// torch scripts in */testdata share (safetensors and raw float32 writers,
// the detector references' synthetic images and batch-norm calibration);
// the scripts import it by adding this folder to sys.path.
package testutil
