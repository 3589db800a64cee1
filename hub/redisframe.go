package hub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// The wire frame of a message, compact and binary (version 3):
//
//	version  1 byte, frameVersion
//	flags    1 byte, frameGap | frameConflate | frameErr | frameID | frameOrigin | frameTime | frameFinal
//	seq      the position, in decimal ASCII ("0" for a message without one)
//	':'
//	epoch    the position's epoch, 0 to maxEpochLen bytes of [0-9A-Za-z_-]
//	':'
//	origin   with frameOrigin: uvarint
//	id       with frameID: ID.Hi, ID.Sub, ID.Prev as uvarints
//	time     with frameTime: EventTime as a uvarint (positive times only)
//	stream   uvarint length, then the bytes
//	payload  the rest: Data, or the Err text when frameErr is set
//
// Everything from origin on is the frame's body, which Go encodes
// ([appendFrameBody]); the header before it is what the [Redis] hub's
// publish script prepends once it has numbered the message, which is why
// seq is decimal text there (Lua has no varint encoder, and string.format
// writes decimals) and the flags byte comes in whole from Go (the script
// only ORs frameGap into it).
//
// Version 2 is version 3 with seq as a uvarint and no epoch; decoders
// still read it, so that a node upgraded first takes the frames of the
// nodes not upgraded yet during a rolling upgrade (their messages come
// with the publisher's own Seq and an empty Epoch: unnumbered). A node
// that predates version 3 drops version 3 frames as malformed, so in a
// rolling upgrade a stream's subscribers on old nodes see nothing from
// upgraded publishers until they are upgraded too.
//
// A new layout gets a new version; decoders reject versions and flags they
// do not know. frameTime and frameFinal were added within version 2: a
// node that predates them drops the messages that carry them.
const (
	frameVersion   = 3
	frameVersionV2 = 2

	frameGap      = 1 << 0
	frameConflate = 1 << 1
	frameErr      = 1 << 2
	frameID       = 1 << 3
	frameOrigin   = 1 << 4
	frameTime     = 1 << 5
	frameFinal    = 1 << 6
	frameFlags    = frameGap | frameConflate | frameErr | frameID | frameOrigin | frameTime | frameFinal

	// frameSep ends the seq and the epoch of a version 3 frame.
	frameSep = ':'
	// maxEpochLen bounds an epoch's length in a frame; newEpoch makes 8.
	maxEpochLen = 64
	// maxSeqDigits is the most digits of a uint64.
	maxSeqDigits = 20
)

// errFrame is wrapped by every decoding error.
var errFrame = errors.New("malformed frame")

// frameFlagsOf returns the flags byte of m's frame.
func frameFlagsOf(m Message) byte {
	var flags byte
	if m.Gap {
		flags |= frameGap
	}
	if m.Conflate {
		flags |= frameConflate
	}
	if m.Final {
		flags |= frameFinal
	}
	if m.Err != "" {
		flags |= frameErr
	}
	if !m.ID.IsZero() {
		flags |= frameID
	}
	if m.Origin != 0 {
		flags |= frameOrigin
	}
	if m.EventTime > 0 {
		flags |= frameTime
	}
	return flags
}

// appendFrame appends the version 3 frame of m, with m.Seq and m.Epoch as
// its position, to b. A message with Err carries no Data, so Data is not
// encoded then. m.Epoch must be a valid epoch (see [validEpoch]).
func appendFrame(b []byte, m Message) []byte {
	b = append(b, frameVersion, frameFlagsOf(m))
	b = strconv.AppendUint(b, m.Seq, 10)
	b = append(b, frameSep)
	b = append(b, m.Epoch...)
	b = append(b, frameSep)
	return appendFrameBody(b, m)
}

// appendFrameBody appends the body of m's frame, everything after the
// epoch, to b.
func appendFrameBody(b []byte, m Message) []byte {
	flags := frameFlagsOf(m)
	if flags&frameOrigin != 0 {
		b = binary.AppendUvarint(b, m.Origin)
	}
	if flags&frameID != 0 {
		b = binary.AppendUvarint(b, uint64(m.ID.Hi))
		b = binary.AppendUvarint(b, uint64(m.ID.Sub))
		b = binary.AppendUvarint(b, uint64(m.ID.Prev))
	}
	if flags&frameTime != 0 {
		b = binary.AppendUvarint(b, uint64(m.EventTime))
	}
	b = binary.AppendUvarint(b, uint64(len(m.Stream)))
	b = append(b, m.Stream...)
	if m.Err != "" {
		return append(b, m.Err...)
	}
	return append(b, m.Data...)
}

// validEpoch reports whether e may be a frame's epoch: at most
// maxEpochLen bytes of [0-9A-Za-z_-], which go into a browser's JSON
// without escaping.
func validEpoch(e string) bool {
	if len(e) > maxEpochLen {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// decodeFrame decodes a frame without copying: Stream, Epoch, Err and
// Data all point into p. Data is p's memory seen as a []byte through
// unsafe, so it must never be written to; the [Message] contract already
// forbids that, and receivers copy what they keep during Receive.
// go-redis copies each payload off the socket into the string p, and that
// is the only copy a received message costs. A frame whose Data is not
// one JSON object or array in valid UTF-8 (empty Data included) is
// malformed. It reads versions 3 and 2 (see frameVersion).
func decodeFrame(p string) (Message, error) {
	var m Message
	if len(p) < 2 {
		return m, fmt.Errorf("%w: %d bytes", errFrame, len(p))
	}
	if p[0] != frameVersion && p[0] != frameVersionV2 {
		return m, fmt.Errorf("%w: version %d", errFrame, p[0])
	}
	flags := p[1]
	if flags&^frameFlags != 0 {
		return m, fmt.Errorf("%w: flags %#x", errFrame, flags)
	}
	var seq uint64
	i := 2
	if p[0] == frameVersionV2 {
		var n int
		seq, n = uvarint(p[2:])
		if n <= 0 {
			return m, fmt.Errorf("%w: seq", errFrame)
		}
		i += n
	} else {
		var ok bool
		if seq, i, ok = decimal(p, i); !ok || i >= len(p) || p[i] != frameSep {
			return m, fmt.Errorf("%w: seq", errFrame)
		}
		i++
		j := strings.IndexByte(p[i:], frameSep)
		if j < 0 || !validEpoch(p[i:i+j]) {
			return m, fmt.Errorf("%w: epoch", errFrame)
		}
		m.Epoch = p[i : i+j]
		i += j + 1
	}
	var n int
	if flags&frameOrigin != 0 {
		if m.Origin, n = uvarint(p[i:]); n <= 0 {
			return Message{}, fmt.Errorf("%w: origin", errFrame)
		}
		i += n
	}
	if flags&frameID != 0 {
		for _, v := range []*int64{&m.ID.Hi, &m.ID.Sub, &m.ID.Prev} {
			x, n := uvarint(p[i:])
			if n <= 0 || x > math.MaxInt64 {
				return Message{}, fmt.Errorf("%w: id", errFrame)
			}
			*v, i = int64(x), i+n
		}
	}
	if flags&frameTime != 0 {
		x, n := uvarint(p[i:])
		if n <= 0 || x == 0 || x > math.MaxInt64 {
			return Message{}, fmt.Errorf("%w: event time", errFrame)
		}
		m.EventTime, i = int64(x), i+n
	}
	l, n := uvarint(p[i:])
	if n <= 0 || l > uint64(len(p)-i-n) {
		return Message{}, fmt.Errorf("%w: stream length", errFrame)
	}
	i += n
	m.Stream = p[i : i+int(l)]
	payload := p[i+int(l):]
	m.Seq = seq
	m.Gap = flags&frameGap != 0
	m.Conflate = flags&frameConflate != 0
	m.Final = flags&frameFinal != 0
	if flags&frameErr != 0 {
		if payload == "" || !utf8.ValidString(payload) {
			return Message{}, fmt.Errorf("%w: error text empty or not UTF-8", errFrame)
		}
		m.Err = payload
		return m, nil
	}
	if err := checkData(payload); err != nil {
		return Message{}, fmt.Errorf("%w: data %w", errFrame, err)
	}
	m.Data = unsafe.Slice(unsafe.StringData(payload), len(payload))
	return m, nil
}

// decimal reads the unsigned decimal number that starts p at i (1 to
// maxSeqDigits digits that fit a uint64) and returns it with the index
// after it.
func decimal(p string, i int) (uint64, int, bool) {
	start := i
	var x uint64
	for i < len(p) && '0' <= p[i] && p[i] <= '9' {
		if i-start == maxSeqDigits {
			return 0, i, false
		}
		d := uint64(p[i] - '0')
		if x > (math.MaxUint64-d)/10 {
			return 0, i, false
		}
		x = x*10 + d
		i++
	}
	return x, i, i > start
}

// maxDataDepth is the deepest nesting checkData follows; exchange events
// nest three or four levels.
const maxDataDepth = 64

// checkData reports why d cannot go to browsers as the "data" of a JSON
// message: d must be valid UTF-8 and one JSON object or array, with
// nothing but whitespace around it, whose brackets balance and match
// ({…] does not) and whose strings end and hold no control characters.
// The tokens between the brackets are not checked: a browser that cannot
// parse one message parses the next, whereas a value that ends early
// could append keys to the message (a second "stream" naming another
// stream), and invalid UTF-8 fails the browser's whole connection. It is
// one pass over d, allocates nothing, and stops at maxDataDepth levels.
func checkData(d string) error {
	if !utf8.ValidString(d) {
		return errors.New("is not UTF-8")
	}
	i := skipSpace(d, 0)
	if i == len(d) || (d[i] != '{' && d[i] != '[') {
		return errors.New("is not a JSON object or array")
	}
	depth := 0
	var objects uint64 // bit k is set when level k+1 is an object
	for i < len(d) {
		// Most bytes are neither brackets nor quotes: skip them in a
		// tight loop.
		for i < len(d) && !structural[d[i]] {
			i++
		}
		if i == len(d) {
			break
		}
		switch c := d[i]; c {
		case '{', '[':
			if depth == maxDataDepth {
				return fmt.Errorf("nests deeper than %d levels", maxDataDepth)
			}
			if c == '{' {
				objects |= 1 << depth
			} else {
				objects &^= 1 << depth
			}
			depth++
		case '}', ']':
			depth--
			if isObject := (objects>>depth)&1 == 1; isObject != (c == '}') {
				return fmt.Errorf("closes with %q at byte %d what it did not open with", c, i)
			}
			if depth == 0 {
				if skipSpace(d, i+1) != len(d) {
					return fmt.Errorf("has more after its value, at byte %d", i+1)
				}
				return nil
			}
		case '"':
			for i++; ; i++ {
				for i < len(d) && !inString[d[i]] {
					i++
				}
				if i >= len(d) {
					return errors.New("ends inside a string")
				}
				if d[i] == '"' {
					break
				}
				if d[i] < 0x20 {
					return fmt.Errorf("has a control character in a string, at byte %d", i)
				}
				i++ // a backslash: skip the byte it escapes, a quote or backslash included
			}
		}
		i++
	}
	return errors.New("ends before its value closes")
}

// structural and inString mark the bytes checkData stops at: brackets
// and quotes outside strings; the closing quote, backslashes and control
// characters inside them.
var structural, inString = func() (s, in [256]bool) {
	for _, c := range "{}[]\"" {
		s[c] = true
	}
	for c := range 0x20 {
		in[c] = true
	}
	in['"'], in['\\'] = true, true
	return s, in
}()

// skipSpace returns the index of the first byte of d at or after i that
// is not JSON whitespace.
func skipSpace(d string, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	return i
}

// uvarint is binary.Uvarint for a string, so decoding converts nothing.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, -(i + 1) // overflow
			}
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, 0
}
