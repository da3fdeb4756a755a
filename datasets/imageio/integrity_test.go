package imageio

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pngChunk returns one encoded PNG chunk with its CRC.
func pngChunk(typ string, body []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	out = append(out, typ...)
	out = append(out, body...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(append([]byte(typ), body...)))
}

// shortIDAT returns a well-formed PNG (chunks and CRCs correct, IEND
// present) of a 64x64 RGB image whose IDAT holds only the first half of the
// zlib stream.
func shortIDAT(t *testing.T) []byte {
	t.Helper()
	raw := make([]byte, 0, 64*(1+64*3))
	for y := range 64 {
		raw = append(raw, 0) // filter type none
		for x := range 64 * 3 {
			raw = append(raw, byte(x*7+y*13))
		}
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(raw)
	zw.Close()
	ihdr := binary.BigEndian.AppendUint32(nil, 64)
	ihdr = binary.BigEndian.AppendUint32(ihdr, 64)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8 bits, RGB, deflate, no filter method, no interlace
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, pngChunk("IHDR", ihdr)...)
	out = append(out, pngChunk("IDAT", z.Bytes()[:z.Len()/2])...)
	return append(out, pngChunk("IEND", nil)...)
}

func TestTruncatedAndBrokenFiles(t *testing.T) {
	var jpg, pngData bytes.Buffer
	if err := jpeg.Encode(&jpg, pattern(320, 240).ToRGBA(), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(&pngData, pattern(160, 120).ToRGBA()); err != nil {
		t.Fatal(err)
	}
	j, p := jpg.Bytes(), pngData.Bytes()
	sos := bytes.Index(j, []byte{0xFF, 0xDA})
	if sos < 0 || !bytes.HasSuffix(j, []byte{0xFF, 0xD9}) || !bytes.HasSuffix(p, pngChunk("IEND", nil)) {
		t.Fatal("the encoders wrote unexpected files")
	}
	badCRC := bytes.Clone(p)
	idat := bytes.Index(badCRC, []byte("IDAT"))
	badCRC[idat+10] ^= 0x55
	cat := func(a, b []byte) []byte { return append(bytes.Clone(a), b...) }
	tests := []struct {
		name      string
		file      string
		data      []byte
		truncated bool   // must wrap ErrTruncated
		reason    string // must appear in the error; "" for any decode error
		ok        bool   // must decode
	}{
		{name: "jpeg half", file: "half.jpg", data: j[:len(j)/2], truncated: true, reason: "entropy-coded data"},
		{name: "jpeg without EOI", file: "noeoi.jpg", data: j[:len(j)-2], truncated: true, reason: "end-of-image"},
		{name: "jpeg cut in EOI", file: "cuteoi.jpg", data: j[:len(j)-1], truncated: true, reason: "end-of-image"},
		{name: "jpeg cut in scan header", file: "sos.jpg", data: j[:sos+5], truncated: true, reason: "inside segment 0xDA"},
		{name: "jpeg cut in a table", file: "dqt.jpg", data: j[:30], truncated: true, reason: "inside segment"},
		{name: "jpeg SOI only", file: "soi.jpg", data: j[:3], truncated: true, reason: "end-of-image"},
		{name: "jpeg with bytes after EOI", file: "trailer.jpg", data: cat(j, []byte("camera trailer")), ok: true},
		{name: "png without IEND", file: "noiend.png", data: p[:len(p)-12], truncated: true, reason: "without an IEND chunk"},
		{name: "png cut in IEND", file: "cutiend.png", data: p[:len(p)-1], truncated: true, reason: `inside chunk "IEND"`},
		{name: "png cut in IDAT", file: "half.png", data: p[:len(p)/2], truncated: true, reason: `inside chunk "IDAT"`},
		{name: "png header only", file: "ihdr.png", data: p[:33], truncated: true, reason: "without an IEND chunk"},
		{name: "png bad CRC", file: "crc.png", data: badCRC, reason: `chunk "IDAT" at byte`},
		{name: "png short IDAT", file: "short.png", data: shortIDAT(t), truncated: true, reason: "IDAT chunks hold"},
		{name: "png with bytes after IEND", file: "trailer.png", data: cat(p, []byte("junk")), ok: true},
		{name: "empty jpg", file: "empty.jpg", data: nil, reason: "empty file"},
		{name: "text named jpg", file: "notes.jpg", data: []byte("this is a text file\n"), reason: "unknown signature"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			if err := os.WriteFile(path, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, read := range []func(string) (*Image, error){Read, ReadOriented} {
				im, err := read(path)
				if tt.ok {
					if err != nil {
						t.Fatalf("error %v, want an image", err)
					}
					continue
				}
				if err == nil {
					t.Fatalf("got a %dx%d image, want an error", im.W, im.H)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				if !errors.Is(err, errDecode) {
					t.Errorf("error %q does not wrap the decode error", err)
				}
				if got := errors.Is(err, ErrTruncated); got != tt.truncated {
					t.Errorf("errors.Is(err, ErrTruncated) = %v, want %v (error %q)", got, tt.truncated, err)
				}
				if !strings.Contains(err.Error(), tt.reason) {
					t.Errorf("error %q does not give the reason %q", err, tt.reason)
				}
			}
		})
	}
}

// TestTruncatedFixture cuts the 61 kB fixture JPEG after 5,000 bytes, which
// OpenCV alone decodes into a mostly grey 512x600 image.
func TestTruncatedFixture(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(detectron2Fixtures(t), "grace_hopper.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "grace_hopper_5000.jpg")
	if err := os.WriteFile(path, data[:5000], 0o644); err != nil {
		t.Fatal(err)
	}
	im, err := Read(path)
	if err == nil {
		t.Fatalf("got a %dx%d image, want an error", im.W, im.H)
	}
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q: want ErrTruncated naming the file", err)
	}
}
