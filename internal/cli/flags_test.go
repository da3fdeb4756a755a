package cli

import "testing"

func TestSizeSet(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr bool
	}{
		{in: "320x240", want: Size{320, 240}},
		{in: "64X48", want: Size{64, 48}},
		{in: " 10 x 20 ", want: Size{10, 20}},
		{in: "320", wantErr: true},
		{in: "0x240", wantErr: true},
		{in: "-3x4", wantErr: true},
		{in: "axb", wantErr: true},
		{in: "3x4x5", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s := Size{1, 1}
			err := s.Set(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Set(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && s != tt.want {
				t.Errorf("Set(%q) = %v, want %v", tt.in, s, tt.want)
			}
			if err == nil && s.String() != (&tt.want).String() {
				t.Errorf("String() = %q", s.String())
			}
		})
	}
}
