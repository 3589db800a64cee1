package downstream

import (
	"github.com/gobwas/ws"
)

// sliceWriter appends everything written to it; it lets ws.WriteHeader
// write into the start of a frame buffer we allocated ourselves.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// compileFrame returns one unmasked, final server frame of op whose payload
// is the concatenation of parts, as a single contiguous buffer: header and
// payload go out in one write and the same bytes can be shared by every
// subscriber. The result is never modified after it is returned.
func compileFrame(op ws.OpCode, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	h := ws.Header{Fin: true, OpCode: op, Length: int64(n)}
	w := sliceWriter{b: make([]byte, 0, ws.HeaderSize(h)+n)}
	var hb [ws.MaxHeaderSize]byte
	// Writing a valid header to sliceWriter cannot fail.
	_ = ws.WriteHeaderBuffer(&w, h, hb[:])
	for _, p := range parts {
		w.b = append(w.b, p...)
	}
	return w.b
}

// textFrame is compileFrame for a text message.
func textFrame(parts ...[]byte) []byte { return compileFrame(ws.OpText, parts...) }

// closeFrame returns a close frame carrying code and reason (truncated so the
// body fits the 125 bytes a control frame may carry).
func closeFrame(code ws.StatusCode, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	return compileFrame(ws.OpClose, ws.NewCloseFrameBody(code, reason))
}
