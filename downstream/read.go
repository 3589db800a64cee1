package downstream

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Reading a client never waits for its bytes. A read task takes what the
// socket holds at that moment (see conn.readNow), parses every whole frame
// in it, and keeps the rest, an incomplete frame, for the next readiness
// report. So a client that sends half a frame and then nothing costs its
// own few bytes and no worker: the deadline for the rest is enforced by
// Server.expireReads, not by a blocked read.

// rsv1 is RSV1 in ws.Header.Rsv: permessage-deflate's "compressed" bit.
const rsv1 = 0x4

// frameSink receives what a msgReader assembles, in the order the client
// sent it. A non-nil error stops the reader; errPeerClosed means the sink
// has closed the connection itself.
type frameSink interface {
	// control handles one control frame (ping, pong or close) with its
	// unmasked payload, at most 125 bytes.
	control(op ws.OpCode, payload []byte) error
	// message handles one whole data message: its opcode, whether it came
	// compressed (RSV1 on its first frame), and its unmasked payload as
	// sent. The payload is only valid during the call.
	message(op ws.OpCode, compressed bool, payload []byte) error
}

// msgReader assembles a client's frames (RFC 6455 §5) into messages from
// bytes as they arrive, however they are split across reads. It checks each
// header as soon as the header is whole, before its payload arrives, so
// nothing it keeps ever exceeds limit plus a header: a frame or message
// over limit fails at once (1009), as do every protocol error (1002).
type msgReader struct {
	limit   int64 // the size limit of a data message, and so of a frame
	deflate bool  // permessage-deflate negotiated: RSV1 marks a compressed message

	partial    []byte    // an incomplete frame, header first, still masked
	msg        []byte    // the unmasked payload so far of a fragmented message
	op         ws.OpCode // that message's opcode; 0 when none is in progress
	compressed bool      // that message's first frame had RSV1
	completed  bool      // a data message completed since the last clear
}

// pending reports whether the reader holds an incomplete frame or message.
func (r *msgReader) pending() bool { return len(r.partial) > 0 || r.op != 0 }

// feed consumes p, which the client sent after everything fed before, and
// hands every complete control frame and data message to s in order. It
// unmasks payloads in place, so p is modified. It returns the first error
// of the client (a protocol violation) or of s.
func (r *msgReader) feed(p []byte, s frameSink) error {
	buf := p
	if len(r.partial) > 0 {
		r.partial = append(r.partial, p...)
		buf = r.partial
	}
	for len(buf) > 0 {
		h, hlen, err := parseHeader(buf)
		if err != nil {
			return err
		}
		if hlen == 0 {
			break // the header is incomplete
		}
		if err := r.check(h); err != nil {
			return err
		}
		end := hlen + int(h.Length) // check bounded h.Length by limit
		if len(buf) < end {
			break
		}
		payload := buf[hlen:end]
		ws.Cipher(payload, h.Mask, 0)
		buf = buf[end:]
		if err := r.frame(h, payload, s); err != nil {
			return err
		}
	}
	// Keep the incomplete rest. When it is already in r.partial, this
	// moves it to the front (append copies as memmove does).
	r.partial = append(r.partial[:0], buf...)
	return nil
}

// check validates a frame header against RFC 6455 and the reader's state
// and limit.
func (r *msgReader) check(h ws.Header) error {
	state := ws.StateServerSide
	if r.deflate {
		state = state.Set(ws.StateExtended)
	}
	if r.op != 0 {
		state = state.Set(ws.StateFragmented)
	}
	if err := ws.CheckHeader(h, state); err != nil {
		return err
	}
	// With permessage-deflate, RSV1 may start a data message; nothing
	// defines RSV2 or RSV3, and RSV1 on anything else (RFC 7692 §6).
	switch {
	case h.Rsv&^rsv1 != 0:
		return errRsv
	case h.Rsv != 0 && (h.OpCode.IsControl() || h.OpCode == ws.OpContinuation):
		return ws.ErrProtocolNonZeroRsv
	}
	if h.OpCode.IsControl() {
		return nil // CheckHeader bounded it by 125 bytes
	}
	if h.Length > r.limit {
		return wsutil.ErrFrameTooLarge
	}
	if h.OpCode == ws.OpContinuation && int64(len(r.msg))+h.Length > r.limit {
		return wsutil.ErrMessageTooLarge
	}
	return nil
}

// frame handles one whole, checked, unmasked frame.
func (r *msgReader) frame(h ws.Header, payload []byte, s frameSink) error {
	switch {
	case h.OpCode.IsControl():
		return s.control(h.OpCode, payload)
	case h.OpCode != ws.OpContinuation && h.Fin:
		// A message in one frame, the usual case: no copy.
		r.completed = true
		return s.message(h.OpCode, h.Rsv&rsv1 != 0, payload)
	case h.OpCode != ws.OpContinuation:
		r.op, r.compressed = h.OpCode, h.Rsv&rsv1 != 0
		r.msg = append(r.msg[:0], payload...)
		return nil
	}
	r.msg = append(r.msg, payload...)
	if !h.Fin {
		return nil
	}
	op, msg := r.op, r.msg
	r.op, r.msg, r.completed = 0, r.msg[:0], true
	return s.message(op, r.compressed, msg)
}

// parseHeader parses the frame header at the start of b. It returns the
// header and its length in bytes, or a length of 0 when b holds only part
// of it. It rejects the length encodings RFC 6455 §5.2 forbids.
func parseHeader(b []byte) (ws.Header, int, error) {
	var h ws.Header
	if len(b) < 2 {
		return h, 0, nil
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, nil
		}
		h.Length, n = int64(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		if len(b) < 10 {
			return h, 0, nil
		}
		u := binary.BigEndian.Uint64(b[2:10])
		if u>>63 != 0 {
			return h, 0, ws.ErrHeaderLengthMSB
		}
		h.Length, n = int64(u), 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, nil
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// readState is a msgReader a connection holds only while it has an
// incomplete frame or message; an idle connection holds none. since is
// when the oldest incomplete part began (unix nanos): Server.expireReads
// closes the connection when that is ReadTimeout ago.
type readState struct {
	msgReader
	since atomic.Int64
}

// readStates recycles read states between read tasks.
var readStates = sync.Pool{New: func() any { return new(readState) }}

// maxKeptBuffer is the largest buffer a recycled read state keeps.
const maxKeptBuffer = readBufferSize

// release returns rs to readStates, without buffers grown past
// maxKeptBuffer by a large message.
func (rs *readState) release() {
	r := &rs.msgReader
	if cap(r.partial) > maxKeptBuffer {
		r.partial = nil
	}
	if cap(r.msg) > maxKeptBuffer {
		r.msg = nil
	}
	*r = msgReader{partial: r.partial[:0], msg: r.msg[:0]}
	rs.since.Store(0)
	readStates.Put(rs)
}

// readBuffers lends read tasks the buffer a socket is read into.
var readBuffers = sync.Pool{New: func() any { return new([readBufferSize]byte) }}

// partialSet holds the connections with an incomplete frame or message, for
// Server.expireReads: at most one entry per connection, and usually none.
type partialSet struct {
	mu    sync.Mutex
	conns map[*conn]struct{}
}

// trackPartial adds c to the connections with an incomplete read, or
// removes it.
func (s *Server) trackPartial(c *conn, pending bool) {
	p := &s.partials
	p.mu.Lock()
	defer p.mu.Unlock()
	if !pending {
		delete(p.conns, c)
		return
	}
	if c.state.Load() == stateClosed {
		return // finished meanwhile: nothing will remove it
	}
	if p.conns == nil {
		p.conns = make(map[*conn]struct{})
	}
	p.conns[c] = struct{}{}
}

// expireReads closes with 1008 every connection whose client started a
// message (or a frame) more than ReadTimeout ago and has not completed it,
// checking ReadTimeout/4 apart, until ctx ends. The read tasks never wait
// for a client's bytes; this is where a client that stops mid-frame meets
// its deadline.
func (s *Server) expireReads(ctx context.Context) {
	tick := time.NewTicker(max(s.cfg.ReadTimeout/4, 10*time.Millisecond))
	defer tick.Stop()
	var expired []*conn
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			cutoff := now.Add(-s.cfg.ReadTimeout).UnixNano()
			p := &s.partials
			p.mu.Lock()
			for c := range p.conns {
				rs := c.rs.Load()
				switch {
				case rs == nil || c.state.Load() != stateOpen:
					delete(p.conns, c)
				case rs.since.Load() <= cutoff:
					delete(p.conns, c)
					expired = append(expired, c)
				}
			}
			p.mu.Unlock()
			for _, c := range expired {
				c.closeWith(ws.StatusPolicyViolation, "message not completed in time")
			}
			clear(expired)
			expired = expired[:0]
		}
	}
}
