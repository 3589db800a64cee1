package hub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// The wire frame of a message, compact and binary:
//
//	version  1 byte, frameVersion
//	flags    1 byte, frameGap | frameConflate | frameErr | frameID | frameOrigin | frameTime
//	seq      uvarint
//	origin   with frameOrigin: uvarint
//	id       with frameID: ID.Hi, ID.Sub, ID.Prev as uvarints
//	time     with frameTime: EventTime as a uvarint (positive times only)
//	stream   uvarint length, then the bytes
//	payload  the rest: Data, or the Err text when frameErr is set
//
// A new layout gets a new version; decoders reject versions and flags they
// do not know. frameTime was added within version 2: a node that predates
// it drops the messages that carry a time (as malformed), so in a cluster
// every node is upgraded before one that sets EventTime publishes.
const (
	frameVersion = 2

	frameGap      = 1 << 0
	frameConflate = 1 << 1
	frameErr      = 1 << 2
	frameID       = 1 << 3
	frameOrigin   = 1 << 4
	frameTime     = 1 << 5
	frameFlags    = frameGap | frameConflate | frameErr | frameID | frameOrigin | frameTime
)

// errFrame is wrapped by every decoding error.
var errFrame = errors.New("malformed frame")

// appendFrame appends the frame of m to b. A message with Err carries no
// Data, so Data is not encoded then.
func appendFrame(b []byte, m Message) []byte {
	var flags byte
	if m.Gap {
		flags |= frameGap
	}
	if m.Conflate {
		flags |= frameConflate
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
	b = append(b, frameVersion, flags)
	b = binary.AppendUvarint(b, m.Seq)
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

// decodeFrame decodes a frame without copying: Stream, Err and Data all
// point into p. Data is p's memory seen as a []byte through unsafe, so it
// must never be written to; the [Message] contract already forbids that,
// and receivers copy what they keep during Receive. go-redis copies each
// payload off the socket into the string p, and that is the only copy a
// received message costs. An empty payload gives nil Data.
func decodeFrame(p string) (Message, error) {
	var m Message
	if len(p) < 2 {
		return m, fmt.Errorf("%w: %d bytes", errFrame, len(p))
	}
	if p[0] != frameVersion {
		return m, fmt.Errorf("%w: version %d", errFrame, p[0])
	}
	flags := p[1]
	if flags&^frameFlags != 0 {
		return m, fmt.Errorf("%w: flags %#x", errFrame, flags)
	}
	seq, n := uvarint(p[2:])
	if n <= 0 {
		return m, fmt.Errorf("%w: seq", errFrame)
	}
	i := 2 + n
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
		return m, fmt.Errorf("%w: stream length", errFrame)
	}
	i += n
	m.Stream = p[i : i+int(l)]
	payload := p[i+int(l):]
	m.Seq = seq
	m.Gap = flags&frameGap != 0
	m.Conflate = flags&frameConflate != 0
	switch {
	case flags&frameErr != 0:
		if payload == "" {
			return Message{}, fmt.Errorf("%w: empty error", errFrame)
		}
		m.Err = payload
	case payload != "":
		m.Data = unsafe.Slice(unsafe.StringData(payload), len(payload))
	}
	return m, nil
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
