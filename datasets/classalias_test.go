package datasets

import "testing"

func TestSameClass(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{a: "dog", b: "dog", want: true},
		{a: " Dog", b: "dog ", want: true},
		{a: "aeroplane", b: "airplane", want: true},
		{a: "airplane", b: "aeroplane", want: true},
		{a: "tvmonitor", b: "tv", want: true},
		{a: "diningtable", b: "dining table", want: true},
		{a: "pottedplant", b: "potted plant", want: true},
		{a: "motorbike", b: "motorcycle", want: true},
		{a: "sofa", b: "couch", want: true},
		{a: "sofa", b: "chair", want: false},
		{a: "truck", b: "car", want: false},
		{a: "x", b: "", want: false},
		{a: "", b: "x", want: false},
	}
	for _, tc := range tests {
		if got := SameClass(tc.a, tc.b); got != tc.want {
			t.Errorf("SameClass(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestVOCClassesAreCOCOClasses: each of the 20 VOC classes names exactly one
// of the 80 COCO classes, and no two VOC classes the same one.
func TestVOCClassesAreCOCOClasses(t *testing.T) {
	taken := map[string]string{}
	for _, v := range VOCClasses() {
		var match []string
		for _, c := range COCOClasses() {
			if SameClass(v, c) {
				match = append(match, c)
			}
		}
		if len(match) != 1 {
			t.Errorf("VOC %q matches COCO %v, want exactly one", v, match)
			continue
		}
		if prev, ok := taken[match[0]]; ok {
			t.Errorf("VOC %q and %q both match COCO %q", prev, v, match[0])
		}
		taken[match[0]] = v
	}
	if len(VOCToCOCO()) != 6 {
		t.Errorf("%d aliases, want the 6 VOC names COCO spells differently", len(VOCToCOCO()))
	}
}
