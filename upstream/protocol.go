package upstream

import (
	"bytes"
	"fmt"

	"github.com/gobwas/ws"
)

// This file holds the frames the gateway ever sends upstream, composed
// here from typed values (never from bytes received from anywhere) and
// encoded by the dialect.

// request is a live-subscription request. Names passed the dialect's
// grammar and the symbol check.
type request struct {
	op    Op
	names []string
	id    int64
}

// outFrame is one frame for the writer to send. Exactly one of its forms is
// set: a request, a pong carrying a copy of a ping's payload, the
// dialect's heartbeat, or a close.
type outFrame struct {
	req       *request
	pong      []byte // payload of the pong (possibly empty) when isPong
	isPong    bool
	heartbeat []byte        // non-nil: the dialect's heartbeat text
	closeCode ws.StatusCode // non-zero: a close frame with this code
}

// compile serializes f as one masked client frame; d encodes requests.
func (f outFrame) compile(d Dialect) ([]byte, error) {
	var fr ws.Frame
	switch {
	case f.req != nil:
		p, err := d.Encode(f.req.op, f.req.names, f.req.id)
		if err != nil {
			return nil, fmt.Errorf("encode %s request: %w", f.req.op, err)
		}
		fr = ws.NewTextFrame(p)
	case f.isPong:
		fr = ws.NewPongFrame(bytes.Clone(f.pong))
	case f.heartbeat != nil:
		fr = ws.NewTextFrame(bytes.Clone(f.heartbeat))
	case f.closeCode != 0:
		fr = ws.NewCloseFrame(ws.NewCloseFrameBody(f.closeCode, ""))
	default:
		return nil, fmt.Errorf("compile: empty frame")
	}
	b, err := ws.CompileFrame(ws.MaskFrameInPlace(fr))
	if err != nil {
		return nil, fmt.Errorf("compile frame: %w", err)
	}
	return b, nil
}
