package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/gobwas/ws"
)

// This file holds the frames the gateway ever sends upstream (composed here
// from typed values, never from bytes received from anywhere) and the
// Binance wire formats, which spot and USD-M futures share: the
// live-subscription requests and the combined-stream envelope.

// method is a live-subscription method. Only the constants below exist, so
// no caller can make the writer send any other method.
type method uint8

const (
	methodSubscribe method = iota + 1
	methodUnsubscribe
)

// String returns the method's name on the wire.
func (m method) String() string {
	if m == methodUnsubscribe {
		return "UNSUBSCRIBE"
	}
	return "SUBSCRIBE"
}

// request is a live-subscription request. Params are names of streams that
// passed the dialect's grammar and the symbol check.
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

// compile serializes f as one masked client frame; enc encodes requests in
// the exchange's dialect.
func (f outFrame) compile(enc func(*request) ([]byte, error)) ([]byte, error) {
	var fr ws.Frame
	switch {
	case f.req != nil:
		p, err := enc(f.req)
		if err != nil {
			return nil, fmt.Errorf("encode %s request: %w", f.req.Method, err)
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

// encodeBinanceRequest encodes r as Binance's JSON request.
func encodeBinanceRequest(r *request) ([]byte, error) { return json.Marshal(r) }

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

// inbound is a parsed message. For events, stream and data alias the
// message on the fast path: both are valid only until the read buffer is
// reused.
type inbound struct {
	stream  []byte // event: the stream name
	data    []byte // event: the payload
	isReply bool
	id      int64
	idOK    bool // the reply carried an integer id
	err     *replyError
}

var (
	eventPrefix = []byte(`{"stream":"`)
	dataInfix   = []byte(`","data":`)
)

// parseBinanceInbound parses one text message from the exchange without
// copying or allocating on the fast path, which recognizes the exact shape
// Binance uses for events, {"stream":"<name>","data":<value>}, by scanning
// bytes. The payload is NOT validated as JSON there (that would cost more
// than everything else on the hot path): it must be an object or array
// whose brackets balance (strings skipped) and be followed only by the
// envelope's closing brace; the WebSocket reader has checked UTF-8.
// Anything else (other keys, escapes in the stream name, replies) goes
// through encoding/json.
func parseBinanceInbound(p []byte) (inbound, error) {
	if rest, ok := bytes.CutPrefix(p, eventPrefix); ok {
		if i := bytes.IndexByte(rest, '"'); i > 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			if d, ok := bytes.CutPrefix(rest[i:], dataInfix); ok {
				s := skipSpace(d, 0)
				if s < len(d) && (d[s] == '{' || d[s] == '[') {
					if e := skipValue(d, s); e > 0 {
						if tail := trimJSONSpace(d[e:]); len(tail) == 1 && tail[0] == '}' {
							return inbound{stream: rest[:i], data: d[s:e]}, nil
						}
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

// trimJSONSpace trims JSON whitespace from both ends of b.
func trimJSONSpace(b []byte) []byte {
	for len(b) > 0 && isJSONSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isJSONSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
