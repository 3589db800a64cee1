package downstream

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
)

// permessage-deflate (RFC 7692), negotiated only with clients that offer it
// and only without context takeover either way: each message is a
// deflate stream of its own, so one compressed frame fits every client
// (frameSet compresses a stream message once for all of them) and no
// connection keeps a compressor or a 32 KiB window between messages.
// Replies, pings and close frames go uncompressed, which RFC 7692 allows
// message by message.

// deflateParams is what the server accepts: server_no_context_takeover and
// client_no_context_takeover, whatever the offer asked (RFC 7692 §7.1.1.1
// and §7.1.1.2 let a server add both). An offer that limits the server's
// window (server_max_window_bits) is declined, since compress/flate always
// uses a 32 KiB window.
var deflateParams = wsflate.Parameters{
	ServerNoContextTakeover: true,
	ClientNoContextTakeover: true,
}

// deflateOffer returns the permessage-deflate negotiation state for one
// handshake, or nil when compression is disabled.
func (s *Server) deflateOffer() *wsflate.Extension {
	if s.cfg.DisableCompression {
		return nil
	}
	return &wsflate.Extension{Parameters: deflateParams}
}

// negotiator returns the upgrader's Negotiate hook for ext; nil (no
// extension accepted) when ext is nil.
func negotiator(ext *wsflate.Extension) func(httphead.Option) (httphead.Option, error) {
	if ext == nil {
		return nil
	}
	return ext.Negotiate
}

// useDeflate sets c up for permessage-deflate if ext accepted it during
// the handshake. It runs before c is shared with other goroutines.
func (c *conn) useDeflate(ext *wsflate.Extension) {
	if ext == nil {
		return
	}
	if _, ok := ext.Accepted(); !ok {
		return
	}
	c.deflate = true
}

// errRsv is the protocol error for RSV2 or RSV3, which no extension the
// server negotiates defines.
var errRsv = ws.ProtocolError("reserved bits RSV2 and RSV3 must be 0")

// errBadDeflate reports a compressed message that does not inflate.
var errBadDeflate = errors.New("downstream: invalid compressed data")

// inflate returns the decompressed form of p, a whole message the client
// sent compressed (RSV1, permessage-deflate). Decompression stops one byte
// past the connection's message size limit, so a small message that
// inflates to gigabytes (a decompression bomb) costs no more than a large
// one and is refused with ErrMessageTooLarge (1009).
func (c *conn) inflate(p []byte) ([]byte, error) {
	limit := c.maxMessage()
	in := inflaters.Get().(*inflater)
	defer inflaters.Put(in)
	in.src.Reset(p)
	in.r.Reset(&in.src)
	var out bytes.Buffer
	n, err := out.ReadFrom(io.LimitReader(in.r, limit+1))
	in.src.Reset(nil)
	switch {
	case err != nil:
		// Not %w: a truncated stream's io.ErrUnexpectedEOF would read as
		// the client hanging up.
		return nil, fmt.Errorf("%w: %v", errBadDeflate, err)
	case n > limit:
		return nil, wsutil.ErrMessageTooLarge
	}
	return out.Bytes(), nil
}

// inflater decompresses client messages. The read tasks borrow them from
// inflaters only while a compressed message is being decompressed: client
// commands are rare, and a flate reader holds about 40 KB.
type inflater struct {
	src bytes.Reader // the compressed message; a ByteReader, so flate adds no buffer
	r   *wsflate.Reader
}

var inflaters = sync.Pool{New: func() any {
	in := new(inflater)
	in.r = wsflate.NewReader(&in.src, func(r io.Reader) wsflate.Decompressor {
		return &flateReader{flate.NewReader(r)}
	})
	return in
}}

// flateReader gives a flate reader the Reset(io.Reader) method that
// wsflate.Reader looks for, so it is reused rather than rebuilt.
type flateReader struct{ io.ReadCloser }

func (f *flateReader) Reset(r io.Reader) { f.ReadCloser.(flate.Resetter).Reset(r, nil) }

// deflateTextFrame returns a final text frame with RSV1 set whose payload is
// the permessage-deflate compression of the concatenated parts (the
// trailing 0x00 0x00 0xff 0xff removed, RFC 7692 §7.2.1), or nil if
// compression failed. Like compileFrame's, the result is shared read-only.
func deflateTextFrame(parts ...[]byte) []byte {
	d := deflaters.get()
	defer deflaters.put(d)
	// One Write of one copy: parts passed to the compressor's Write (an
	// interface method) would escape, and with them the caller's buffers.
	d.in = d.in[:0]
	for _, p := range parts {
		d.in = append(d.in, p...)
	}
	d.buf.Reset()
	d.w.Reset(&d.buf)
	d.w.Write(d.in)
	if d.w.Flush() != nil {
		return nil
	}
	h := ws.Header{Fin: true, Rsv: ws.Rsv(true, false, false), OpCode: ws.OpText, Length: int64(d.buf.Len())}
	f := appendHeader(make([]byte, 0, ws.HeaderSize(h)+d.buf.Len()), h)
	return append(f, d.buf.Bytes()...)
}

// appendHeader appends the header of an unmasked (server) frame to b. It
// is ws.WriteHeader without the io.Writer, through which the header
// buffer would escape to the heap.
func appendHeader(b []byte, h ws.Header) []byte {
	b0 := h.Rsv<<4 | byte(h.OpCode)
	if h.Fin {
		b0 |= 0x80
	}
	switch {
	case h.Length < 126:
		return append(b, b0, byte(h.Length))
	case h.Length <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, b0, 126), uint16(h.Length))
	}
	return binary.BigEndian.AppendUint64(append(b, b0, 127), uint64(h.Length))
}

// deflater compresses stream messages at flate.BestSpeed: market data is
// small, repetitive JSON, and the cost is paid once per message whatever
// the number of subscribers.
type deflater struct {
	in  []byte       // the payload to compress; reused
	buf bytes.Buffer // the compressed payload; reused
	w   *wsflate.Writer
}

// deflaterSet lends deflaters. A flate.Writer holds about 1.2 MB, so they
// live as long as the process rather than in a sync.Pool, which would drop
// them at every GC; and there are at most as many as CPUs: a message that
// finds every deflater busy waits for one, which takes microseconds since
// compressing one message does.
type deflaterSet struct {
	free chan *deflater // nil entries stand for deflaters not yet made
}

var deflaters = newDeflaterSet(runtime.GOMAXPROCS(0))

func newDeflaterSet(n int) *deflaterSet {
	s := &deflaterSet{free: make(chan *deflater, n)}
	for range n {
		s.free <- nil
	}
	return s
}

func (s *deflaterSet) get() *deflater {
	d := <-s.free
	if d == nil {
		d = new(deflater)
		d.w = wsflate.NewWriter(&d.buf, func(w io.Writer) wsflate.Compressor {
			fw, _ := flate.NewWriter(w, flate.BestSpeed) // a valid level: no error
			return fw
		})
	}
	return d
}

func (s *deflaterSet) put(d *deflater) { s.free <- d }
