package downstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/marketgate/marketgate/hub"
)

// Native protocol error codes, sent as {"id":…,"error":{"code":…}}.
// The README documents each.
const (
	CodeBadRequest     = "bad_request"      // not a JSON object of the documented shape
	CodeUnknownOp      = "unknown_op"       // op is not subscribe, unsubscribe, list or ping
	CodeInvalidStream  = "invalid_stream"   // a stream key is malformed or unknown
	CodeTooManyStreams = "too_many_streams" // the connection would exceed its stream limit
	CodeUpstreamError  = "upstream_error"   // the exchange refused or dropped a subscribed stream, or the node cannot carry it
	CodeStreamLimit    = "stream_limit"     // the node, or the client's address, holds as many distinct streams as allowed
	CodeBusy           = "busy"             // the node, or the connection, has too many subscribes waiting for stream history
	CodeUnavailable    = "unavailable"      // the node cannot check the streams yet (it is starting); retry after a backoff
	// CodeForbidden (auth.go): the token, or the anonymous set, does not allow the streams.
)

// ErrUnavailable is what a [Source]'s Validate error wraps when the key
// cannot be checked yet, e.g. while an exchange's symbol list loads after
// a start: clients get [CodeUnavailable] and retry, not [CodeInvalidStream].
var ErrUnavailable = errors.New("not available yet, try again shortly")

// maxIDLen bounds the id a client may tag a command with; it is echoed back.
const maxIDLen = 64

// maxNamedStreams bounds the invalid streams an error reply names, so that
// a reply stays small whatever the command: with clip, a reply echoes at
// most about 1 KiB of what the client sent.
const maxNamedStreams = 8

// nativeProto speaks the gateway's own protocol at /ws.
type nativeProto struct{}

type nativeCommand struct {
	Op      string                  `json:"op"`
	ID      json.RawMessage         `json:"id"`
	Streams []string                `json:"streams"`
	Since   map[string]hub.Position `json:"since"`
	// Format is "" or "raw" (the exchange's events as they are) or
	// "normalized" (Config.Normalizer's form), for the streams of a
	// subscribe.
	Format string `json:"format"`
	// Token is the auth command's connection token (a JWT).
	Token string `json:"token"`
}

type nativeError struct {
	Code    string   `json:"code"`
	Msg     string   `json:"msg"`
	Streams []string `json:"streams,omitempty"`
}

type nativeReply struct {
	ID     json.RawMessage `json:"id"`
	Result any             `json:"result,omitempty"`
	Error  *nativeError    `json:"error,omitempty"`
}

type streamsResult struct {
	Streams []string `json:"streams"`
}

// setNormalized marks keys as taken in the normalized form (or not) from
// now on; a connection's commands run one at a time, so the copy and the
// swap do not race.
func (c *conn) setNormalized(keys []string, on bool) {
	cur := c.normalized.Load()
	if cur == nil && !on {
		return
	}
	next := make(map[string]bool)
	if cur != nil {
		maps.Copy(next, *cur)
	}
	for _, k := range keys {
		if on {
			next[k] = true
		} else {
			delete(next, k)
		}
	}
	if len(next) == 0 {
		c.normalized.Store(nil)
		return
	}
	c.normalized.Store(&next)
}

// clipKeys returns at most maxNamedStreams keys, each clipped.
func clipKeys(keys []string) []string {
	out := make([]string, 0, min(len(keys), maxNamedStreams))
	for _, k := range keys[:min(len(keys), maxNamedStreams)] {
		out = append(out, clip(k))
	}
	return out
}

func (nativeProto) handleText(c *conn, p []byte) {
	op, ok := handleNative(c, p)
	c.srv.metrics.command(op, ok)
}

func (nativeProto) form(*conn) int                         { return formNative }
func (nativeProto) maxMessage(cfg *Config) int64           { return cfg.MaxMessageSize }
func (nativeProto) streamFailed(key, reason string) []byte { return streamFailedNative(key, reason) }
func (nativeProto) name() string                           { return ProtocolNative }
func (nativeProto) streamForbidden(key string) []byte      { return streamForbiddenNative(key) }

// handleNative carries out one native command and returns its op's label
// and whether it succeeded, for the metrics.
func handleNative(c *conn, p []byte) (cmdOp, bool) {
	var cmd nativeCommand
	err := json.Unmarshal(p, &cmd)
	if c.awaitingAuth.Load() && (err != nil || cmd.Op != "auth") {
		c.srv.metrics.authResult("missing")
		c.closeWith(StatusUnauthorized, `authenticate first: send {"op":"auth","token":…} as the first command`)
		return nativeOp(cmd.Op), false
	}
	if err != nil {
		replyNative(c, nil, nil, &nativeError{Code: CodeBadRequest, Msg: "invalid JSON: " + err.Error()})
		return opOther, false
	}
	op := nativeOp(cmd.Op)
	if !validID(cmd.ID) {
		replyNative(c, nil, nil, &nativeError{Code: CodeBadRequest, Msg: "id must be a number, a string of at most 64 bytes, or null"})
		return op, false
	}
	switch cmd.Op {
	case "subscribe":
		if e := c.srv.checkSubscribe(c, cmd.Streams); e != nil {
			replyNative(c, cmd.ID, nil, e)
			return op, false
		}
		streams := dedupe(cmd.Streams)
		for k, p := range cmd.Since {
			if !slices.Contains(streams, k) || p.Epoch == "" {
				replyNative(c, cmd.ID, nil, &nativeError{Code: CodeBadRequest, Streams: []string{clip(k)},
					Msg: `every key of "since" must be one of "streams", with a non-empty "epoch" and a "seq"`})
				return op, false
			}
		}
		normalized := false
		switch cmd.Format {
		case "", "raw":
		case "normalized":
			var none []string
			for _, k := range streams {
				if n := c.srv.cfg.Normalizer; n == nil || !n.Normalizable(k) {
					none = append(none, k)
				}
			}
			if len(none) > 0 {
				replyNative(c, cmd.ID, nil, &nativeError{Code: CodeInvalidStream, Streams: clipKeys(none),
					Msg: "no normalized form for these streams (trades, tickers, candles and the gateway's books have one)"})
				return op, false
			}
			normalized = true
		default:
			replyNative(c, cmd.ID, nil, &nativeError{Code: CodeBadRequest, Msg: `"format" must be "raw" or "normalized"`})
			return op, false
		}
		c.setNormalized(streams, normalized)
		ok := c.subscribeNative(cmd.ID, streams, cmd.Since)
		if !ok {
			c.setNormalized(streams, false)
		}
		return op, ok
	case "unsubscribe":
		if len(cmd.Streams) == 0 {
			replyNative(c, cmd.ID, nil, &nativeError{Code: CodeBadRequest, Msg: "streams must be a non-empty list"})
			return op, false
		}
		streams := dedupe(cmd.Streams)
		c.srv.unsubscribe(c, streams)
		c.setNormalized(streams, false)
		replyNative(c, cmd.ID, streamsResult{streams}, nil)
	case "list":
		streams := c.subscribed()
		slices.Sort(streams)
		replyNative(c, cmd.ID, streamsResult{streams}, nil)
	case "ping":
		replyNative(c, cmd.ID, "pong", nil)
	case "auth":
		return op, c.startAuth(cmd.ID, cmd.Token)
	case "":
		replyNative(c, cmd.ID, nil, &nativeError{Code: CodeBadRequest, Msg: `missing "op"`})
		return op, false
	default:
		replyNative(c, cmd.ID, nil, &nativeError{Code: CodeUnknownOp, Msg: fmt.Sprintf("unknown op %q", clip(cmd.Op))})
		return op, false
	}
	return op, true
}

// checkSubscribe validates a subscribe command whole: every key must be
// valid and the connection must stay within its stream limit. It returns
// the error to send, or nil when the command can be applied.
func (s *Server) checkSubscribe(c *conn, keys []string) *nativeError {
	if len(keys) == 0 {
		return &nativeError{Code: CodeBadRequest, Msg: "streams must be a non-empty list"}
	}
	// A key that is invalid stays so on a retry: those are reported
	// first; only when every failing key is merely not checkable yet is
	// the client asked to retry.
	var bad, later []string
	var first, firstLater error
	for _, k := range keys {
		err := s.cfg.Source.Validate(k)
		switch {
		case err == nil:
		case errors.Is(err, ErrUnavailable):
			if len(later) < maxNamedStreams {
				later = append(later, clip(k))
			}
			if firstLater == nil {
				firstLater = err
			}
		default:
			if len(bad) < maxNamedStreams {
				bad = append(bad, clip(k))
			}
			if first == nil {
				first = err
			}
		}
	}
	if first != nil {
		return &nativeError{Code: CodeInvalidStream, Msg: clip(first.Error()), Streams: bad}
	}
	if firstLater != nil {
		return &nativeError{Code: CodeUnavailable, Msg: clip(firstLater.Error()), Streams: later}
	}
	if e := c.checkAllowed(keys); e != nil {
		return e
	}
	if n, most := c.countAfterAdding(keys), s.limits.Load().MaxStreamsPerConn; n > most {
		return &nativeError{Code: CodeTooManyStreams,
			Msg: fmt.Sprintf("a connection may subscribe at most %d streams (this would make %d)", most, n)}
	}
	return nil
}

// countAfterAdding returns how many streams c would have after adding keys.
func (c *conn) countAfterAdding(keys []string) int {
	c.smu.Lock()
	defer c.smu.Unlock()
	n := len(c.streams)
	seen := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		if _, ok := c.streams[k]; ok {
			continue
		}
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			n++
		}
	}
	return n
}

// streamFailedNative frames the notice that a subscribed stream failed
// upstream: {"stream":…,"error":{"code":"upstream_error","msg":…}}.
func streamFailedNative(key, reason string) []byte {
	b, _ := json.Marshal(struct {
		Stream string      `json:"stream"`
		Error  nativeError `json:"error"`
	}{key, nativeError{Code: CodeUpstreamError, Msg: reason}})
	return textFrame(b)
}

func replyNative(c *conn, id json.RawMessage, result any, e *nativeError) {
	if f := nativeReplyFrame(c, id, result, e); f != nil {
		c.enqueueReply(f)
	}
}

func nativeReplyFrame(c *conn, id json.RawMessage, result any, e *nativeError) []byte {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b, err := marshalReply(nativeReply{ID: id, Result: result, Error: e})
	if err != nil {
		c.logAt(slog.LevelError, "encode reply", "err", err)
		return nil
	}
	return textFrame(b)
}

// validID accepts what the native protocol allows as a command id: absent,
// null, a JSON number or a short string.
func validID(id json.RawMessage) bool {
	id = bytes.TrimSpace(id)
	if len(id) == 0 || string(id) == "null" {
		return true
	}
	switch id[0] {
	case '"':
		var s string
		return json.Unmarshal(id, &s) == nil && len(s) <= maxIDLen
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return len(id) <= maxIDLen
	}
	return false
}

// dedupe returns keys without repeats, in first-seen order.
func dedupe(keys []string) []string {
	seen := make(map[string]struct{}, len(keys))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			out = append(out, k)
		}
	}
	return out
}

// clip shortens client-supplied text before it is echoed in an error.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// marshalReply is json.Marshal without HTML escaping: a reply is read as
// JSON, never embedded in HTML, and escaping would turn each '<' a client
// sent into six bytes of reply.
func marshalReply(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
