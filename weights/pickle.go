package weights

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"unicode/utf8"
)

// This file is a restricted unpickler: the subset of pickle protocols 2-5 that
// Detectron2 and Caffe2 weight files use (dicts, lists, tuples, strings, numbers and
// numpy arrays). It executes nothing: the only classes it resolves are listed in
// pickleGlobals, and each is interpreted by Go code below. Every length read from the
// input is checked against the bytes left before anything is allocated; each opcode
// consumes input, so the objects built are bounded by the input size.

// Pickle opcodes (the names of Python's pickle module).
const (
	opMark           = '('
	opStop           = '.'
	opPop            = '0'
	opPopMark        = '1'
	opDup            = '2'
	opBinFloat       = 'G'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opBinInt2        = 'M'
	opNone           = 'N'
	opReduce         = 'R'
	opBinString      = 'T'
	opShortBinString = 'U'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opDict           = 'd'
	opEmptyDict      = '}'
	opAppends        = 'e'
	opBinGet         = 'h'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinBytes       = 'B'
	opShortBinBytes  = 'C'
	opProto          = 0x80
	opNewObj         = 0x81
	opTuple1         = 0x85
	opTuple2         = 0x86
	opTuple3         = 0x87
	opNewTrue        = 0x88
	opNewFalse       = 0x89
	opLong1          = 0x8a
	opLong4          = 0x8b
	opShortBinUni    = 0x8c
	opBinUnicode8    = 0x8d
	opBinBytes8      = 0x8e
	opNewObjEx       = 0x92
	opStackGlobal    = 0x93
	opMemoize        = 0x94
	opFrame          = 0x95
	opByteArray8     = 0x96
	opNextBuffer     = 0x97
	opReadonlyBuffer = 0x98
)

// Values on the unpickler's stack: nil (None), bool, int64, *big.Int (integers beyond
// int64), float64, string (str), pyBytes (bytes or bytearray), *py2Str (a Python 2
// str), pyTuple, *pyList, *pyDict, pyCallable (an allowed class or function),
// *npDtype and *npArray.
type (
	pyBytes []byte
	pyTuple []any
	pyList  struct{ items []any }
	pyDict  struct{ items []pyItem }
	pyItem  struct{ key, value any }
	// py2Str is a Python 2 str (SHORT_BINSTRING, BINSTRING): raw bytes, read as
	// latin-1 text where a str is expected (pickle.load(f, encoding="latin1")).
	py2Str struct {
		raw  []byte
		text string
	}
)

// pyCallable is a class or function a weight file may name.
type pyCallable int

const (
	callReconstruct pyCallable = iota + 1 // numpy.core.multiarray._reconstruct
	callNdarray                           // numpy.ndarray
	callDtype                             // numpy.dtype
	callFrombuffer                        // numpy.core.numeric._frombuffer
	callEncode                            // _codecs.encode
	callOrderedDict                       // collections.OrderedDict
	callBytes                             // builtins.bytes
)

// pickleGlobals lists the only module.name pairs GLOBAL and STACK_GLOBAL accept.
// numpy 2 renamed numpy.core to numpy._core; Python 2 calls builtins __builtin__.
var pickleGlobals = map[string]pyCallable{
	"numpy.core.multiarray._reconstruct":  callReconstruct,
	"numpy._core.multiarray._reconstruct": callReconstruct,
	"numpy.ndarray":                       callNdarray,
	"numpy.dtype":                         callDtype,
	"numpy.core.numeric._frombuffer":      callFrombuffer,
	"numpy._core.numeric._frombuffer":     callFrombuffer,
	"_codecs.encode":                      callEncode,
	"collections.OrderedDict":             callOrderedDict,
	"builtins.bytes":                      callBytes,
	"__builtin__.bytes":                   callBytes,
}

func (c pyCallable) String() string {
	switch c {
	case callReconstruct:
		return "numpy.core.multiarray._reconstruct"
	case callNdarray:
		return "numpy.ndarray"
	case callDtype:
		return "numpy.dtype"
	case callFrombuffer:
		return "numpy.core.numeric._frombuffer"
	case callEncode:
		return "_codecs.encode"
	case callOrderedDict:
		return "collections.OrderedDict"
	case callBytes:
		return "builtins.bytes"
	}
	return "unknown callable"
}

// npDtype is a numpy dtype: kind 'f' (float), 'i' (signed int), 'u' (unsigned int),
// 'b' (bool), 'O' (object) or another numpy kind (rejected on use); size in bytes;
// order '<' little-endian, '>' big-endian, '|' not applicable, '=' native (taken as
// little-endian).
type npDtype struct {
	kind  byte
	size  int
	order byte
	str   string // the string numpy.dtype was called with, e.g. "f4"
}

// name returns numpy's name for d, e.g. "<f4".
func (d *npDtype) name() string {
	if d.order == '=' {
		return d.str
	}
	return string(d.order) + d.str
}

// npArray is a numpy array: shape, dtype, memory order and the raw bytes (C order
// unless fortran). objects is set when the state held a list (an object array).
type npArray struct {
	shape   pyTuple
	dtype   *npDtype
	fortran bool
	data    []byte
	built   bool
	objects bool
}

// pickleError is an unpickling error at an input offset.
type pickleError struct {
	off int
	msg string
}

func (e *pickleError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.msg) }

var errTruncated = errors.New("truncated")

// maxKeyBytes bounds the length of a str or bytes used as a dict key.
const maxKeyBytes = 4096

type unpickler struct {
	data  []byte
	pos   int
	op    int // offset of the opcode being run
	stack []any
	marks []int
	memo  map[uint64]any
	// encodeBudget is the number of bytes _codecs.encode may still produce; each call
	// copies its argument, which a memo reference could otherwise repeat at no cost.
	encodeBudget int
	// shortFrame is set when a FRAME claims more bytes than are left.
	shortFrame bool
}

// unpickle runs the pickle program in data and returns the object it builds. On error
// it also returns the dict key whose entry was being read, when known.
func unpickle(data []byte) (obj any, key string, err error) {
	if len(data) < 2 || data[0] != opProto {
		return nil, "", fmt.Errorf("not a pickle of protocol 2-5 (%s)", describeMagic(data))
	}
	if data[1] < 2 || data[1] > 5 {
		return nil, "", fmt.Errorf("pickle protocol %d is not supported (2-5 are)", data[1])
	}
	u := &unpickler{data: data, memo: map[uint64]any{}, encodeBudget: len(data)}
	obj, err = u.run()
	if err != nil {
		if errors.Is(err, errTruncated) {
			err = &pickleError{off: u.op, msg: fmt.Sprintf("file truncated: %d bytes", len(data))}
		}
		return nil, u.currentKey(), err
	}
	return obj, "", nil
}

// describeMagic names what the first bytes of a non-pickle file look like.
func describeMagic(b []byte) string {
	switch {
	case len(b) == 0:
		return "empty file"
	case len(b) >= 4 && string(b[:4]) == "PK\x03\x04":
		return "a zip file; torch.save writes those: use LoadTorch"
	case len(b) >= 2 && b[0] == opProto:
		return "truncated header"
	}
	n := min(len(b), 4)
	return fmt.Sprintf("starts with % x", b[:n])
}

func (u *unpickler) fail(format string, args ...any) error {
	return &pickleError{off: u.op, msg: fmt.Sprintf(format, args...)}
}

func (u *unpickler) read(n uint64) ([]byte, error) {
	if n > uint64(len(u.data)-u.pos) {
		return nil, errTruncated
	}
	b := u.data[u.pos : u.pos+int(n)]
	u.pos += int(n)
	return b, nil
}

func (u *unpickler) readByte() (byte, error) {
	b, err := u.read(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (u *unpickler) readU16() (uint64, error) {
	b, err := u.read(2)
	if err != nil {
		return 0, err
	}
	return uint64(binary.LittleEndian.Uint16(b)), nil
}

func (u *unpickler) readU32() (uint64, error) {
	b, err := u.read(4)
	if err != nil {
		return 0, err
	}
	return uint64(binary.LittleEndian.Uint32(b)), nil
}

func (u *unpickler) readU64() (uint64, error) {
	b, err := u.read(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// readLine reads up to a newline (GLOBAL's module and name).
func (u *unpickler) readLine() (string, error) {
	for i := u.pos; i < len(u.data) && i-u.pos <= 256; i++ {
		if u.data[i] == '\n' {
			s := string(u.data[u.pos:i])
			u.pos = i + 1
			return s, nil
		}
	}
	if len(u.data)-u.pos > 256 {
		return "", u.fail("GLOBAL name longer than 256 bytes")
	}
	return "", errTruncated
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) pop() (any, error) {
	if len(u.stack) == 0 || (len(u.marks) > 0 && len(u.stack) <= u.marks[len(u.marks)-1]) {
		return nil, u.fail("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) == 0 || (len(u.marks) > 0 && len(u.stack) <= u.marks[len(u.marks)-1]) {
		return nil, u.fail("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark removes and returns the items above the topmost mark.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, u.fail("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := u.stack[m:len(u.stack):len(u.stack)]
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) popN(n int) ([]any, error) {
	base := 0
	if len(u.marks) > 0 {
		base = u.marks[len(u.marks)-1]
	}
	if len(u.stack)-base < n {
		return nil, u.fail("stack underflow")
	}
	items := append([]any(nil), u.stack[len(u.stack)-n:]...)
	u.stack = u.stack[:len(u.stack)-n]
	return items, nil
}

func (u *unpickler) pushString(b []byte) error {
	if !utf8.Valid(b) {
		return u.fail("str is not valid UTF-8")
	}
	u.push(string(b))
	return nil
}

func (u *unpickler) run() (any, error) {
	for {
		u.op = u.pos
		op, err := u.readByte()
		if err != nil {
			return nil, err
		}
		switch op {
		case opProto:
			v, err := u.readByte()
			if err != nil {
				return nil, err
			}
			if v > 5 {
				return nil, u.fail("pickle protocol %d is not supported", v)
			}
		case opFrame:
			// A frame only groups the opcodes that follow. One reaching past the end
			// is reported at STOP if nothing inside it was cut first, so that a cut
			// array is named.
			n, err := u.readU64()
			if err != nil {
				return nil, err
			}
			if n > uint64(len(u.data)-u.pos) {
				u.shortFrame = true
			}
		case opStop:
			if u.shortFrame {
				return nil, errTruncated
			}
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			return v, nil
		case opMark:
			u.marks = append(u.marks, len(u.stack))
		case opPop:
			if _, err := u.pop(); err != nil {
				return nil, err
			}
		case opPopMark:
			if _, err := u.popMark(); err != nil {
				return nil, err
			}
		case opDup:
			v, err := u.top()
			if err != nil {
				return nil, err
			}
			u.push(v)
		case opNone:
			u.push(nil)
		case opNewTrue:
			u.push(true)
		case opNewFalse:
			u.push(false)
		case opBinInt:
			b, err := u.read(4)
			if err != nil {
				return nil, err
			}
			u.push(int64(int32(binary.LittleEndian.Uint32(b))))
		case opBinInt1:
			v, err := u.readByte()
			if err != nil {
				return nil, err
			}
			u.push(int64(v))
		case opBinInt2:
			v, err := u.readU16()
			if err != nil {
				return nil, err
			}
			u.push(int64(v))
		case opLong1, opLong4:
			b, err := u.readCounted(op, opLong1, opLong4)
			if err != nil {
				return nil, err
			}
			u.push(decodeLong(b))
		case opBinFloat:
			b, err := u.read(8)
			if err != nil {
				return nil, err
			}
			u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
		case opShortBinUni, opBinUnicode, opBinUnicode8:
			b, err := u.readCounted(op, opShortBinUni, opBinUnicode)
			if err != nil {
				return nil, err
			}
			if err := u.pushString(b); err != nil {
				return nil, err
			}
		case opShortBinBytes, opBinBytes, opBinBytes8, opByteArray8:
			b, err := u.readCounted(op, opShortBinBytes, opBinBytes)
			if err != nil {
				return nil, err
			}
			u.push(pyBytes(b))
		case opShortBinString, opBinString:
			b, err := u.readCounted(op, opShortBinString, opBinString)
			if err != nil {
				return nil, err
			}
			u.push(&py2Str{raw: b, text: latin1(b)})
		case opEmptyTuple:
			u.push(pyTuple{})
		case opTuple1, opTuple2, opTuple3:
			items, err := u.popN(int(op-opTuple1) + 1)
			if err != nil {
				return nil, err
			}
			u.push(pyTuple(items))
		case opTuple:
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			u.push(pyTuple(append([]any(nil), items...)))
		case opEmptyList:
			u.push(&pyList{})
		case opList:
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			u.push(&pyList{items: append([]any(nil), items...)})
		case opAppend, opAppends:
			var items []any
			if op == opAppend {
				v, err := u.pop()
				if err != nil {
					return nil, err
				}
				items = []any{v}
			} else if items, err = u.popMark(); err != nil {
				return nil, err
			}
			t, err := u.top()
			if err != nil {
				return nil, err
			}
			l, ok := t.(*pyList)
			if !ok {
				return nil, u.fail("APPEND to a %s", typeName(t))
			}
			l.items = append(l.items, items...)
		case opEmptyDict:
			u.push(&pyDict{})
		case opDict:
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			d := &pyDict{}
			if err := u.setItems(d, items); err != nil {
				return nil, err
			}
			u.push(d)
		case opSetItem, opSetItems:
			var items []any
			if op == opSetItem {
				if items, err = u.popN(2); err != nil {
					return nil, err
				}
			} else if items, err = u.popMark(); err != nil {
				return nil, err
			}
			t, err := u.top()
			if err != nil {
				return nil, err
			}
			d, ok := t.(*pyDict)
			if !ok {
				return nil, u.fail("SETITEM on a %s", typeName(t))
			}
			if err := u.setItems(d, items); err != nil {
				return nil, err
			}
		case opBinPut, opLongBinPut:
			idx, err := u.readLen(op, opBinPut, opLongBinPut)
			if err != nil {
				return nil, err
			}
			v, err := u.top()
			if err != nil {
				return nil, err
			}
			u.memo[idx] = v
		case opMemoize:
			v, err := u.top()
			if err != nil {
				return nil, err
			}
			u.memo[uint64(len(u.memo))] = v
		case opBinGet, opLongBinGet:
			idx, err := u.readLen(op, opBinGet, opLongBinGet)
			if err != nil {
				return nil, err
			}
			v, ok := u.memo[idx]
			if !ok {
				return nil, u.fail("memo entry %d is not defined", idx)
			}
			u.push(v)
		case opGlobal:
			module, err := u.readLine()
			if err != nil {
				return nil, err
			}
			name, err := u.readLine()
			if err != nil {
				return nil, err
			}
			if err := u.pushGlobal(module, name); err != nil {
				return nil, err
			}
		case opStackGlobal:
			items, err := u.popN(2)
			if err != nil {
				return nil, err
			}
			module, ok1 := items[0].(string)
			name, ok2 := items[1].(string)
			if !ok1 || !ok2 {
				return nil, u.fail("STACK_GLOBAL on a %s and a %s", typeName(items[0]), typeName(items[1]))
			}
			if err := u.pushGlobal(module, name); err != nil {
				return nil, err
			}
		case opReduce:
			items, err := u.popN(2)
			if err != nil {
				return nil, err
			}
			v, err := u.reduce(items[0], items[1])
			if err != nil {
				return nil, err
			}
			u.push(v)
		case opBuild:
			state, err := u.pop()
			if err != nil {
				return nil, err
			}
			obj, err := u.top()
			if err != nil {
				return nil, err
			}
			if err := u.build(obj, state); err != nil {
				return nil, err
			}
		case opNextBuffer, opReadonlyBuffer:
			return nil, u.fail("out-of-band buffers (pickle protocol 5 with buffer_callback) are not supported")
		case opNewObj, opNewObjEx:
			return nil, u.fail("opcode NEWOBJ (object construction) is not allowed in a weight file")
		default:
			return nil, u.fail("opcode 0x%02x is not supported in a weight file", op)
		}
	}
}

// readLen reads the unsigned little-endian length (or memo index) field of
// op: 1 byte when op is short, 4 when it is normal, 8 otherwise (the
// protocol-4 forms). BINSTRING's 4-byte length is signed and must not be
// negative.
func (u *unpickler) readLen(op, short, normal byte) (uint64, error) {
	switch op {
	case short:
		b, err := u.readByte()
		return uint64(b), err
	case normal:
		if op == opBinString {
			b, err := u.read(4)
			if err != nil {
				return 0, err
			}
			n := int32(binary.LittleEndian.Uint32(b))
			if n < 0 {
				return 0, u.fail("negative BINSTRING length %d", n)
			}
			return uint64(n), nil
		}
		return u.readU32()
	}
	return u.readU64()
}

// readCounted reads the length field of op (readLen) and then that many
// bytes.
func (u *unpickler) readCounted(op, short, normal byte) ([]byte, error) {
	n, err := u.readLen(op, short, normal)
	if err != nil {
		return nil, err
	}
	return u.read(n)
}

// decodeLong decodes a little-endian two's-complement integer (LONG1, LONG4).
func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		shift := 64 - 8*uint(len(b))
		return int64(v<<shift) >> shift
	}
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	v := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return v
}

func latin1(b []byte) string {
	ascii := true
	for _, c := range b {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return string(b)
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

func (u *unpickler) pushGlobal(module, name string) error {
	c, ok := pickleGlobals[module+"."+name]
	if !ok {
		return u.fail("class %s.%s is not allowed in a weight file", module, name)
	}
	u.push(c)
	return nil
}

func (u *unpickler) setItems(d *pyDict, items []any) error {
	if len(items)%2 != 0 {
		return u.fail("SETITEMS with an odd number of items (%d)", len(items))
	}
	for i := 0; i < len(items); i += 2 {
		d.items = append(d.items, pyItem{key: items[i], value: items[i+1]})
	}
	return nil
}

// reduce calls an allowed callable: REDUCE pops the callable and its argument tuple.
func (u *unpickler) reduce(f, a any) (any, error) {
	c, ok := f.(pyCallable)
	if !ok {
		return nil, u.fail("REDUCE calls a %s", typeName(f))
	}
	args, ok := a.(pyTuple)
	if !ok {
		return nil, u.fail("%s called with a %s, want an argument tuple", c, typeName(a))
	}
	switch c {
	case callReconstruct:
		// _reconstruct(ndarray, (0,), b"b"): an empty array that BUILD fills in.
		if len(args) != 3 || args[0] != callNdarray {
			return nil, u.fail("%s called with %d arguments, want (numpy.ndarray, shape, dtype)", c, len(args))
		}
		return &npArray{}, nil
	case callDtype:
		// dtype("f4", align, copy); BUILD sets the byte order.
		if len(args) < 1 {
			return nil, u.fail("numpy.dtype called without arguments")
		}
		s, ok := pyString(args[0])
		if !ok {
			return nil, u.fail("numpy.dtype called with a %s, want a str", typeName(args[0]))
		}
		return parseDtype(s), nil
	case callFrombuffer:
		// _frombuffer(buffer, dtype, shape, order) (numpy >= 1.16, pickle protocol 5).
		if len(args) != 4 {
			return nil, u.fail("%s called with %d arguments, want 4", c, len(args))
		}
		buf, ok := pyBytesLike(args[0])
		dt, ok2 := args[1].(*npDtype)
		shape, ok3 := args[2].(pyTuple)
		order, ok4 := pyString(args[3])
		if !ok || !ok2 || !ok3 || !ok4 || (order != "C" && order != "F") {
			return nil, u.fail("%s called with (%s, %s, %s, %s), want (bytes, dtype, shape, 'C' or 'F')",
				c, typeName(args[0]), typeName(args[1]), typeName(args[2]), typeName(args[3]))
		}
		return &npArray{shape: shape, dtype: dt, fortran: order == "F", data: buf, built: true}, nil
	case callEncode:
		// _codecs.encode(str, "latin1"): how protocol 2 stores bytes from Python 3.
		if len(args) != 2 {
			return nil, u.fail("%s called with %d arguments, want 2", c, len(args))
		}
		s, ok := args[0].(string)
		enc, ok2 := pyString(args[1])
		if !ok || !ok2 || (enc != "latin1" && enc != "latin-1") {
			return nil, u.fail("%s called with (%s, %s), want (str, 'latin1')", c, typeName(args[0]), typeName(args[1]))
		}
		if len(s) > u.encodeBudget {
			return nil, u.fail("%s produces more bytes than the file holds", c)
		}
		u.encodeBudget -= len(s)
		b := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 0xff {
				return nil, u.fail("%s: character U+%04X is not latin-1", c, r)
			}
			b = append(b, byte(r))
		}
		return pyBytes(b), nil
	case callOrderedDict:
		if len(args) != 0 {
			return nil, u.fail("%s called with %d arguments, want none", c, len(args))
		}
		return &pyDict{}, nil
	case callBytes:
		if len(args) != 0 {
			return nil, u.fail("%s called with %d arguments, want none", c, len(args))
		}
		return pyBytes{}, nil
	}
	return nil, u.fail("%s cannot be called", c)
}

// build runs BUILD: obj.__setstate__(state).
func (u *unpickler) build(obj, state any) error {
	switch o := obj.(type) {
	case *npDtype:
		// (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
		t, ok := state.(pyTuple)
		if !ok || len(t) < 5 {
			return u.fail("numpy.dtype state is a %s, want a tuple of 8 or 9 items", typeName(state))
		}
		order, ok := pyString(t[1])
		if !ok || len(order) != 1 || (order[0] != '<' && order[0] != '>' && order[0] != '|' && order[0] != '=') {
			return u.fail("numpy.dtype byte order is not '<', '>', '|' or '='")
		}
		if t[2] != nil || t[3] != nil || t[4] != nil {
			return u.fail("structured or sub-array numpy dtypes are not supported")
		}
		o.order = order[0]
		return nil
	case *npArray:
		// (version, shape, dtype, is_fortran, rawdata) or, older, without version.
		t, ok := state.(pyTuple)
		if !ok || (len(t) != 5 && len(t) != 4) {
			return u.fail("numpy.ndarray state is a %s, want a tuple of 5 items", typeName(state))
		}
		if len(t) == 5 {
			t = t[1:]
		}
		shape, ok := t[0].(pyTuple)
		if !ok {
			return u.fail("numpy.ndarray shape is a %s, want a tuple", typeName(t[0]))
		}
		dt, ok := t[1].(*npDtype)
		if !ok {
			return u.fail("numpy.ndarray dtype is a %s, want a numpy.dtype", typeName(t[1]))
		}
		fortran, ok := pyBool(t[2])
		if !ok {
			return u.fail("numpy.ndarray is_fortran is a %s, want a bool", typeName(t[2]))
		}
		o.shape, o.dtype, o.fortran, o.built = shape, dt, fortran, true
		switch d := t[3].(type) {
		case *pyList:
			o.objects = true
		default:
			b, ok := pyBytesLike(d)
			if !ok {
				return u.fail("numpy.ndarray data is a %s, want bytes", typeName(t[3]))
			}
			o.data = b
		}
		return nil
	case *pyDict:
		if state == nil {
			return nil
		}
	}
	return u.fail("BUILD on a %s with a %s is not supported", typeName(obj), typeName(state))
}

// parseDtype parses numpy's dtype string as pickled ("f4", "<f4", "i8", "b1", "O8").
func parseDtype(s string) *npDtype {
	d := &npDtype{order: '=', str: s}
	if len(s) > 0 && (s[0] == '<' || s[0] == '>' || s[0] == '|' || s[0] == '=') {
		d.order, s = s[0], s[1:]
		d.str = s
	}
	if len(s) < 2 {
		return d
	}
	d.kind = s[0]
	n := 0
	for _, c := range s[1:] {
		if c < '0' || c > '9' || n > 1<<20 {
			d.kind = 0
			return d
		}
		n = n*10 + int(c-'0')
	}
	d.size = n
	return d
}

func pyString(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case *py2Str:
		return s.text, true
	}
	return "", false
}

func pyBytesLike(v any) ([]byte, bool) {
	switch b := v.(type) {
	case pyBytes:
		return b, true
	case *py2Str:
		return b.raw, true
	}
	return nil, false
}

func pyBool(v any) (bool, bool) {
	switch b := v.(type) {
	case bool:
		return b, true
	case int64:
		return b != 0, b == 0 || b == 1
	}
	return false, false
}

// typeName names a value's Python type for error messages (never its contents, which
// may be huge or cyclic).
func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string, *py2Str:
		return "str"
	case pyBytes:
		return "bytes"
	case pyTuple:
		return "tuple"
	case *pyList:
		return "list"
	case *pyDict:
		return "dict"
	case pyCallable:
		return x.String()
	case *npDtype:
		return "numpy.dtype"
	case *npArray:
		return "numpy.ndarray"
	}
	return fmt.Sprintf("%T", v)
}

// currentKey returns the dict key whose value was being read when unpickling
// stopped, or the last complete key before it: the innermost dict being filled
// (a dict directly below a MARK) has its key/value pairs above that mark.
func (u *unpickler) currentKey() string {
	for i := len(u.marks) - 1; i >= 0; i-- {
		m := u.marks[i]
		if m == 0 || m > len(u.stack) {
			continue
		}
		if _, ok := u.stack[m-1].(*pyDict); !ok {
			continue
		}
		last := ""
		for j := m; j < len(u.stack); j += 2 {
			k, ok := pyString(u.stack[j])
			if !ok {
				break
			}
			if j+1 >= len(u.stack) || !complete(u.stack[j+1]) {
				return fmt.Sprintf("%q", k)
			}
			last = k
		}
		if last != "" {
			return fmt.Sprintf("after %q", last)
		}
	}
	return ""
}

// complete reports whether v is a finished dict value (not an array or call under
// construction).
func complete(v any) bool {
	switch x := v.(type) {
	case *npArray:
		return x.built
	case pyCallable, *npDtype:
		return false
	}
	return true
}
