package pillow

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math"
	"regexp"
	"strings"
)

// orientationTag is the EXIF (TIFF) tag number of Orientation.
const orientationTag = 0x0112

// Orientation returns the EXIF Orientation of a JPEG or PNG file's bytes as
// Pillow 9.4's Image.getexif()[0x0112] gives it: 1 (as stored) to 8, or 0
// when the file has no such tag or Pillow could not read it (no EXIF,
// malformed EXIF, a non-numeric value). Any other stored number is
// returned as is; Transpose leaves the image unchanged for it, as
// Detectron2 and ImageOps.exif_transpose do.
//
// Where Pillow looks:
//   - JPEG: the first APP1 segment starting with "Exif\0" among the markers
//     before the first scan;
//   - PNG: the eXIf chunk, else a "Raw profile type exif" text chunk (hex,
//     as ImageMagick writes it); then, when that EXIF has no Orientation, the
//     tiff:Orientation of an "XML:com.adobe.xmp" text chunk (XMP).
//
// Only the first IFD (IFD0) is read, as getexif does. A malformed file yields
// 0: Orientation never fails, since the decoder reports broken images.
func Orientation(data []byte) int {
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8}):
		return tiffOrientation(jpegExif(data))
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return pngOrientation(data)
	}
	return 0
}

// jpegExif returns the payload of the first "Exif\0" APP1 segment before
// the first SOS marker, or nil.
func jpegExif(data []byte) []byte {
	i := 2
	for i+4 <= len(data) {
		if data[i] != 0xFF {
			return nil
		}
		m := data[i+1]
		switch {
		case m == 0xFF: // fill byte
			i++
			continue
		case m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7): // no length
			i += 2
			continue
		case m == 0xD9 || m == 0xDA: // end of image, start of scan
			return nil
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if n < 2 || i+2+n > len(data) {
			return nil
		}
		seg := data[i+4 : i+2+n]
		if m == 0xE1 && bytes.HasPrefix(seg, []byte("Exif\x00")) {
			return seg
		}
		i += 2 + n
	}
	return nil
}

// xmpOrientation is the pattern Pillow searches XMP packets with.
var xmpOrientation = regexp.MustCompile(`tiff:Orientation(="|>)([0-9])`)

// pngOrientation reads the orientation of a PNG from its eXIf chunk, its
// "Raw profile type exif" text, or its XMP packet (see Orientation).
func pngOrientation(data []byte) int {
	var exif []byte
	var rawProfile, xmp string
	haveExif, haveRaw, haveXMP := false, false, false
	for i := 8; i+12 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[i:]))
		typ := string(data[i+4 : i+8])
		if n < 0 || n > len(data)-i-12 {
			break
		}
		body := data[i+8 : i+8+n]
		i += 12 + n
		switch typ {
		case "eXIf":
			if !haveExif {
				exif, haveExif = append([]byte("Exif\x00\x00"), body...), true
			}
		case "tEXt", "zTXt", "iTXt":
			key, text, ok := pngText(typ, body)
			switch {
			case !ok:
			case key == "Raw profile type exif" && !haveRaw:
				rawProfile, haveRaw = text, true
			case key == "XML:com.adobe.xmp" && !haveXMP:
				xmp, haveXMP = text, true
			}
		case "IEND":
			i = len(data)
		}
	}
	if !haveExif && haveRaw {
		lines := strings.Split(rawProfile, "\n")
		if len(lines) > 3 {
			b, err := hex.DecodeString(strings.Join(strings.Fields(strings.Join(lines[3:], "")), ""))
			if err == nil {
				exif, haveExif = b, true
			}
		}
	}
	if haveExif {
		if o, found := tiffTag(exif); found {
			return o
		}
	}
	if haveXMP {
		if m := xmpOrientation.FindStringSubmatch(xmp); m != nil {
			return int(m[2][0] - '0')
		}
	}
	return 0
}

// pngText returns the keyword and text of a tEXt, zTXt or iTXt chunk.
func pngText(typ string, body []byte) (key, text string, ok bool) {
	k, rest, found := bytes.Cut(body, []byte{0})
	if !found {
		return "", "", false
	}
	switch typ {
	case "tEXt":
		return string(k), string(rest), true
	case "zTXt":
		if len(rest) < 1 || rest[0] != 0 {
			return "", "", false
		}
		b, err := inflate(rest[1:])
		return string(k), string(b), err == nil
	default: // iTXt: compression flag, method, language\0, translated keyword\0, text
		if len(rest) < 2 {
			return "", "", false
		}
		compressed, method := rest[0], rest[1]
		_, rest, found = bytes.Cut(rest[2:], []byte{0})
		if !found {
			return "", "", false
		}
		_, rest, found = bytes.Cut(rest, []byte{0})
		if !found {
			return "", "", false
		}
		if compressed == 0 {
			return string(k), string(rest), true
		}
		if method != 0 {
			return "", "", false
		}
		b, err := inflate(rest)
		return string(k), string(b), err == nil
	}
}

// inflate decompresses a zlib stream of at most 16 MiB.
func inflate(b []byte) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, 16<<20))
}

// tiffOrientation returns the Orientation tag of EXIF data (with or without
// the "Exif\0\0" prefix), 0 when absent or unreadable.
func tiffOrientation(exif []byte) int {
	o, _ := tiffTag(exif)
	return o
}

// tiffTag reads the Orientation entry of IFD0 of EXIF data as Pillow's
// Exif.load and ImageFileDirectory_v2 do. found tells whether the IFD has
// the tag (Pillow then skips XMP); o is its value when it is a number
// equal to an integer, else 0. Data Pillow would fail on give (0, false).
func tiffTag(exif []byte) (o int, found bool) {
	if len(exif) == 0 {
		return 0, false
	}
	if bytes.HasPrefix(exif, []byte("Exif\x00\x00")) {
		exif = exif[6:]
	}
	if len(exif) < 8 {
		return 0, false
	}
	var bo binary.ByteOrder
	switch string(exif[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0, false
	}
	if bo.Uint16(exif[2:]) != 42 {
		return 0, false
	}
	off := int64(bo.Uint32(exif[4:]))
	if off+2 > int64(len(exif)) {
		return 0, false
	}
	count := int64(bo.Uint16(exif[off:]))
	entries := exif[off+2:]
	// Pillow keeps the entries read before the directory or a value runs
	// past the end of the data, and skips entries of an unknown type or
	// with no value.
	for e := range min(count, int64(len(entries))/12) {
		ent := entries[e*12 : e*12+12]
		if bo.Uint16(ent) != orientationTag {
			continue
		}
		typ, n := bo.Uint16(ent[2:]), int64(bo.Uint32(ent[4:]))
		unit := map[uint16]int64{1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}[typ]
		if unit == 0 || n == 0 {
			continue
		}
		size := unit * n
		val := ent[8:12]
		if size > 4 {
			p := int64(bo.Uint32(ent[8:]))
			if p+size > int64(len(exif)) {
				break
			}
			val = exif[p : p+size]
		}
		o, found = tiffNumber(bo, typ, val), true
	}
	return o, found
}

// tiffNumber returns the first value of a TIFF field when it is a number
// equal to an integer (Pillow's dict lookup matches 6, 6.0 and 6/1 alike),
// else 0.
func tiffNumber(bo binary.ByteOrder, typ uint16, v []byte) int {
	switch typ {
	case 1: // BYTE
		return int(v[0])
	case 6: // SBYTE
		return int(int8(v[0]))
	case 3: // SHORT
		return int(bo.Uint16(v))
	case 8: // SSHORT
		return int(int16(bo.Uint16(v)))
	case 4, 13: // LONG, IFD
		return int(bo.Uint32(v))
	case 9: // SLONG
		return int(int32(bo.Uint32(v)))
	case 16: // LONG8
		return int(min(bo.Uint64(v), 1<<31))
	case 5, 10: // RATIONAL, SRATIONAL
		num, den := int64(bo.Uint32(v)), int64(bo.Uint32(v[4:]))
		if typ == 10 {
			num, den = int64(int32(num)), int64(int32(den))
		}
		if den != 0 && num%den == 0 {
			return int(num / den)
		}
	case 11: // FLOAT
		f := float64(math.Float32frombits(bo.Uint32(v)))
		if f == float64(int(f)) && f > -1e9 && f < 1e9 {
			return int(f)
		}
	case 12: // DOUBLE
		f := math.Float64frombits(bo.Uint64(v))
		if f == float64(int(f)) && f > -1e9 && f < 1e9 {
			return int(f)
		}
	}
	return 0
}
