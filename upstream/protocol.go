package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/gobwas/ws"
)

// This file holds the Binance wire formats: the only frames the gateway
// ever sends upstream (composed here from typed values, never from bytes
// received from anywhere) and the parsing of what the exchange sends.

// method is a live-subscription method. Only the constants below exist, so
// no caller can make the writer send any other method.
type method uint8

const (
	methodSubscribe method = iota + 1
	methodUnsubscribe
)

func (m method) String() string {
	if m == methodUnsubscribe {
		return "UNSUBSCRIBE"
	}
	return "SUBSCRIBE"
}

// request is the JSON of a live-subscription request. Params are names of
// streams that passed ParseStream and the symbol check.
type request struct {
	Method string   `json:"method"`
	Params []string `json:"params"`
	ID     int64    `json:"id"`
}

// outFrame is one frame for the writer to send. Exactly one of its forms is
// set: a request, a pong carrying a copy of a ping's payload, or a close.
type outFrame struct {
	req       *request
	pong      []byte // payload of the pong (possibly empty) when isPong
	isPong    bool
	closeCode ws.StatusCode // non-zero: a close frame with this code
}

// compile serializes f as one masked client frame.
func (f outFrame) compile() ([]byte, error) {
	var fr ws.Frame
	switch {
	case f.req != nil:
		p, err := json.Marshal(f.req)
		if err != nil {
			return nil, fmt.Errorf("marshal %s request: %w", f.req.Method, err)
		}
		fr = ws.NewTextFrame(p)
	case f.isPong:
		fr = ws.NewPongFrame(bytes.Clone(f.pong))
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

// replyError is the error object of a failed request.
type replyError struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
}

// envelope is any JSON message Binance sends on a combined connection: a
// data event {"stream":…,"data":…}, a reply {"result":…,"id":…} or an error
// {"error":{…},"id":…} (the id may be missing).
type envelope struct {
	Stream string          `json:"stream"`
	Data   json.RawMessage `json:"data"`
	ID     json.RawMessage `json:"id"`
	Error  *replyError     `json:"error"`
}

// inbound is a parsed message. For events, data is a fresh copy of the
// exact bytes of the "data" value: the only copy made of them.
type inbound struct {
	stream  []byte // event: the stream name (aliases the read buffer)
	data    []byte // event: the payload, owned by the caller
	isReply bool
	id      int64
	idOK    bool // the reply carried an integer id
	err     *replyError
}

const (
	eventPrefix = `{"stream":"`
	dataInfix   = `","data":`
)

// parseInbound parses one text message from the exchange. It does not
// retain p: stream aliases it and must be used before p is reused, data is
// copied.
func parseInbound(p []byte) (inbound, error) {
	// Fast path for the shape Binance always uses for events. The data value
	// must be exactly one valid JSON value, so anything else (another key,
	// escapes in the stream name) falls through to the full decoder.
	if rest, ok := bytes.CutPrefix(p, []byte(eventPrefix)); ok {
		if i := bytes.IndexByte(rest, '"'); i > 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			if d, ok := bytes.CutPrefix(rest[i:], []byte(dataInfix)); ok {
				d = bytes.TrimRight(d, " \t\r\n")
				if d, ok := bytes.CutSuffix(d, []byte("}")); ok {
					d = bytes.TrimSpace(d)
					if len(d) > 0 && json.Valid(d) {
						return inbound{stream: rest[:i], data: bytes.Clone(d)}, nil
					}
				}
			}
		}
	}
	var env envelope
	if err := json.Unmarshal(p, &env); err != nil {
		return inbound{}, fmt.Errorf("decode message: %w", err)
	}
	if env.Stream != "" {
		if len(env.Data) == 0 {
			return inbound{}, fmt.Errorf("decode message: event of %q without data", env.Stream)
		}
		// env.Data is already a copy made by the decoder.
		return inbound{stream: []byte(env.Stream), data: env.Data}, nil
	}
	in := inbound{isReply: true, err: env.Error}
	if len(env.ID) > 0 {
		if id, err := strconv.ParseInt(string(env.ID), 10, 64); err == nil {
			in.id, in.idOK = id, true
		}
	}
	if !in.idOK && in.err == nil {
		return inbound{}, fmt.Errorf("decode message: neither event nor reply")
	}
	return in, nil
}
