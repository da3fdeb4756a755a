package detection

import (
	"errors"
	"strings"
	"testing"

	"resdet/internal/testutil"
	"resdet/nn"
)

// TestPrecisionOption builds detectors with each Options.Precision: the
// choice New records, the bf16 flags of the heads and whether they keep
// their weights converted (inference) or not (training), and the errors
// (bf16 on a CPU without it, an unknown value).
func TestPrecisionOption(t *testing.T) {
	bf16OK := nn.BF16Error() == nil
	autoBF16 := bf16OK && nn.AMXSupported()
	trainOK := nn.CPU().AVX512BF16 || nn.AMXSupported() // ResolveTraining: no emulated bf16
	tests := []struct {
		name     string
		arch     string
		o        Options
		wantBF16 bool
		wantErr  string // "" if New must succeed (bf16 asked: only where the CPU has it)
	}{
		{name: "default", arch: "r18-c4"},
		{name: "fp32", arch: "r18-c4", o: Options{Precision: nn.PrecisionFP32}},
		{name: "auto", arch: "r18-c4", o: Options{Precision: nn.PrecisionAuto}, wantBF16: autoBF16},
		{name: "bf16 C4", arch: "r18-c4", o: Options{Precision: nn.PrecisionBF16}, wantBF16: true},
		{name: "bf16 DC5", arch: "r50-dc5", o: Options{Precision: nn.PrecisionBF16}, wantBF16: true},
		{name: "bf16 FPN v2", arch: ArchTVR50FPNV2, o: Options{Precision: nn.PrecisionBF16}, wantBF16: true},
		{name: "bf16 training", arch: "r18-c4", o: Options{Precision: nn.PrecisionBF16, Train: true}, wantBF16: true},
		{name: "bf16 training DC5", arch: "r50-dc5", o: Options{Precision: nn.PrecisionBF16, Train: true}, wantBF16: true},
		{name: "auto training", arch: "r18-c4", o: Options{Precision: nn.PrecisionAuto, Train: true}},
		{name: "unknown", arch: "r18-c4", o: Options{Precision: "fp16"}, wantErr: `precision "fp16"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig(tc.arch, []string{"a", "b"})
			if ArchDC5(tc.arch) {
				cfg.FCDim, cfg.ResNet.Res5Dilation = 64, 2
			}
			m, err := New(cfg, tc.o)
			if tc.wantErr == "" && tc.wantBF16 && (!bf16OK || (tc.o.Train && !trainOK)) {
				if err == nil || !errors.Is(err, nn.ErrBF16Unsupported) {
					t.Fatalf("bf16 on a CPU without it: error %v, want ErrBF16Unsupported", err)
				}
				testutil.BF16(t, nn.BF16Error()) // the rest needs bf16
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Precision.BF16 != tc.wantBF16 || m.Precision.Reason == "" {
				t.Errorf("Precision %+v, want bf16 %v with a reason", m.Precision, tc.wantBF16)
			}
			heads := map[string][2]bool{"RPN head": {m.RPN.Head.BF16, m.RPN.Head.varW}}
			switch h := m.RoIHeads.BoxHead.(type) {
			case *FCHead:
				heads["FCHead"] = [2]bool{h.BF16, h.varW}
			case *TwoMLPHead:
				heads["TwoMLPHead"] = [2]bool{h.BF16, h.varW}
			case *ConvFCHead:
				heads["ConvFCHead"] = [2]bool{h.BF16, h.varW}
			}
			for name, on := range heads {
				if on[0] != tc.wantBF16 || on[1] != tc.o.Train {
					t.Errorf("%s: BF16 %v, weights varying %v; want %v, %v", name, on[0], on[1], tc.wantBF16, tc.o.Train)
				}
			}
			if m.Backbone.Config.BF16 != tc.wantBF16 {
				t.Errorf("backbone: BF16 %v, want %v", m.Backbone.Config.BF16, tc.wantBF16)
			}
			// The C4 res5 head (frozen BN: the blocked layout, a bf16
			// chain in bf16) takes RoIAlign's output in its layout; DC5's
			// FC head takes float32 NCHW.
			if p, ok := m.RoIHeads.Pooler.(*SingleLevelPooler); ok {
				c4 := !ArchDC5(tc.arch)
				if p.Blocked != c4 || p.BF16 != (c4 && tc.wantBF16) {
					t.Errorf("RoI pooler: blocked %v, bf16 %v; want %v, %v", p.Blocked, p.BF16, c4, c4 && tc.wantBF16)
				}
				if h, ok := m.RoIHeads.BoxHead.(*Res5Head); ok != c4 || ok && h.Input.Blocked != p.Blocked {
					t.Errorf("box head %T (blocked input %v), pooler blocked %v", m.RoIHeads.BoxHead, ok && h.Input.Blocked, p.Blocked)
				}
			}
		})
	}
}

// TestPredictBF16 runs the small C4 detector in fp32 and bf16 on the same
// weights: bf16 changes the scores by about bf16 rounding, not more, and
// keeps the detections.
func TestPredictBF16(t *testing.T) {
	testutil.BF16(t, nn.BF16Error())
	m32 := newSmall(t, 3)
	defer m32.Close()
	m16, err := New(smallConfig(), Options{Precision: nn.PrecisionBF16})
	if err != nil {
		t.Fatal(err)
	}
	defer m16.Close()
	if err := m16.Load(m32.State()); err != nil {
		t.Fatal(err)
	}
	img := randImage(4, 96, 64)
	d32, err := m32.Predict(img)
	if err != nil {
		t.Fatal(err)
	}
	d16, err := m16.Predict(img)
	if err != nil {
		t.Fatal(err)
	}
	if d32.Len() == 0 {
		t.Fatal("no fp32 detections to compare")
	}
	var worst float32
	n := 0
	for i := range d32.Len() {
		for j := range d16.Len() {
			if d16.Labels[j] == d32.Labels[i] && d16.Boxes[j].IoU(d32.Boxes[i]) > 0.9 {
				n++
				worst = max(worst, abs32(d16.Scores[j]-d32.Scores[i]))
				break
			}
		}
	}
	t.Logf("%d fp32 / %d bf16 detections, %d matched (IoU > 0.9, same class), worst score difference %.3g", d32.Len(), d16.Len(), n, worst)
	if n < d32.Len()*9/10 || worst > 0.05 || worst == 0 {
		t.Errorf("%d of %d matched, worst score difference %g: want >= 90 %% and in (0, 0.05]", n, d32.Len(), worst)
	}
	// The bf16 weights are converted once and kept until Close.
	if b := nn.ConstWeightBytes(); b == 0 {
		t.Errorf("no converted bf16 weights kept after Predict")
	}
	m16.Close()
	if b := nn.ConstWeightBytes(); b != 0 {
		t.Errorf("%d bytes of converted weights kept after Close, want 0", b)
	}
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}
