package imageio

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// ErrTruncated is wrapped by the error of an image file that ends early:
// a JPEG without its end-of-image marker, a PNG without its IEND chunk or
// cut inside a chunk. OpenCV would decode such a file partially (the
// missing rows grey), so Decode checks the file's structure first.
var ErrTruncated = errors.New("truncated image")

// checkComplete returns an error wrapping ErrTruncated when data, a JPEG or
// PNG file, ends before its last marker or chunk, or one wrapping errDecode
// when a PNG chunk fails its CRC. It reads the container only: the
// compressed data is left to the decoder.
func checkComplete(f Format, data []byte) error {
	switch f {
	case JPEG:
		return checkJPEG(data)
	case PNG:
		return checkPNG(data)
	}
	return nil
}

// truncated wraps ErrTruncated with a reason.
func truncated(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", errDecode, ErrTruncated, fmt.Sprintf(format, args...))
}

// checkJPEG walks the markers of a JPEG from SOI to EOI, skipping segments
// by their lengths and scanning entropy-coded data for the next marker, as a
// decoder does. Bytes after EOI are allowed (decoders ignore them).
func checkJPEG(data []byte) error {
	i := 2 // after SOI
	for {
		// Decoders skip stray bytes before a marker (libjpeg warns); so do we.
		for i < len(data) && data[i] != 0xFF {
			i++
		}
		for i+1 < len(data) && data[i+1] == 0xFF { // fill bytes
			i++
		}
		if i+1 >= len(data) {
			return truncated("JPEG: the file ends at byte %d without the end-of-image marker", len(data))
		}
		m := data[i+1]
		switch {
		case m == 0xD9:
			return nil
		case m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7): // no length field
			i += 2
			continue
		}
		if i+4 > len(data) {
			return truncated("JPEG: the file ends at byte %d inside the length of marker 0x%02X", len(data), m)
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if n < 2 || i+2+n > len(data) {
			return truncated("JPEG: the file ends at byte %d inside segment 0x%02X (of %d bytes at byte %d)", len(data), m, n, i)
		}
		i += 2 + n
		if m != 0xDA { // not start of scan
			continue
		}
		// Entropy-coded data: runs to the first 0xFF that is not followed by
		// 0x00 (a stuffed byte) or a restart marker.
		for ; ; i++ {
			if i+1 >= len(data) {
				return truncated("JPEG: the entropy-coded data of the scan ends at byte %d, before the end-of-image marker (premature end of data)", len(data))
			}
			if data[i] == 0xFF {
				if b := data[i+1]; b != 0x00 && b != 0xFF && (b < 0xD0 || b > 0xD7) {
					break
				}
			}
		}
	}
}

// checkPNG walks the chunks of a PNG up to IEND, checking each one's CRC.
// Bytes after IEND are allowed.
func checkPNG(data []byte) error {
	i := 8 // after the signature
	for {
		if i == len(data) {
			return truncated("PNG: the file ends at byte %d without an IEND chunk", len(data))
		}
		if i+8 > len(data) {
			return truncated("PNG: the file ends at byte %d inside a chunk header", len(data))
		}
		n := int64(binary.BigEndian.Uint32(data[i:]))
		typ := data[i+4 : i+8]
		if n > int64(len(data)-i-12) {
			return truncated("PNG: the file ends at byte %d inside chunk %q (%d data bytes at byte %d)", len(data), typ, n, i)
		}
		body := data[i+4 : i+8+int(n)]
		if got, want := crc32.ChecksumIEEE(body), binary.BigEndian.Uint32(data[i+8+int(n):]); got != want {
			return fmt.Errorf("%w: PNG: chunk %q at byte %d has a bad CRC (0x%08x, computed 0x%08x)", errDecode, typ, i, want, got)
		}
		i += 12 + int(n)
		if string(typ) == "IEND" {
			return nil
		}
	}
}

// explainPNG looks for the reason a structurally complete PNG failed to
// decode: image data (the inflated IDAT stream) shorter than IHDR's size
// asks for, or a corrupt zlib stream. It returns nil when it finds none.
// It runs only after the decoder failed, so its cost does not matter.
func explainPNG(data []byte) error {
	var ihdr, idat []byte
	for i := 8; i+12 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[i:]))
		if n > len(data)-i-12 {
			break
		}
		switch string(data[i+4 : i+8]) {
		case "IHDR":
			ihdr = data[i+8 : i+8+n]
		case "IDAT":
			idat = append(idat, data[i+8:i+8+n]...)
		}
		i += 12 + n
	}
	if len(ihdr) != 13 {
		return nil
	}
	w, h := int64(binary.BigEndian.Uint32(ihdr)), int64(binary.BigEndian.Uint32(ihdr[4:]))
	channels := map[byte]int64{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ihdr[9]]
	bits := channels * int64(ihdr[8])
	if w == 0 || h == 0 || bits == 0 || w > 1<<24 || h > 1<<24 {
		return nil
	}
	want := int64(0)
	passes := [][4]int64{{0, 0, 1, 1}}
	if ihdr[12] == 1 { // Adam7
		passes = [][4]int64{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}}
	}
	for _, p := range passes {
		pw, ph := (w-p[0]+p[2]-1)/p[2], (h-p[1]+p[3]-1)/p[3]
		if pw > 0 && ph > 0 {
			want += ph * (1 + (pw*bits+7)/8)
		}
	}
	r, err := zlib.NewReader(bytes.NewReader(idat))
	if err != nil {
		return fmt.Errorf("%w: PNG: the image data is not a zlib stream: %v", errDecode, err)
	}
	got, err := io.Copy(io.Discard, io.LimitReader(r, want))
	switch {
	case got < want:
		return truncated("PNG: the IDAT chunks hold %d of the %d bytes of image data", got, want)
	case err != nil:
		return fmt.Errorf("%w: PNG: corrupt image data: %v", errDecode, err)
	}
	return nil
}
