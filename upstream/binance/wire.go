package binance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/marketgate/marketgate/internal/jsonscan"
	"github.com/marketgate/marketgate/upstream"
)

// request is Binance's live-subscription request.
type request struct {
	Method string   `json:"method"`
	Params []string `json:"params"`
	ID     int64    `json:"id"`
}

// Encode encodes {"method":"SUBSCRIBE"|"UNSUBSCRIBE","params":names,"id":id}.
func (Dialect) Encode(op upstream.Op, names []string, id int64) ([]byte, error) {
	m := "SUBSCRIBE"
	if op == upstream.OpUnsubscribe {
		m = "UNSUBSCRIBE"
	}
	return json.Marshal(request{Method: m, Params: names, ID: id})
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

var (
	eventPrefix = []byte(`{"stream":"`)
	dataInfix   = []byte(`","data":`)
)

// shutdownStream is the stream of the event announcing that the
// exchange will close the connection soon.
const shutdownStream = "!serverShutdown"

// tooManyCode is the error code of a reply refusing streams beyond the
// connection's limit: {"error":{"code":4,"msg":"Too many subscriptions"}}.
const tooManyCode = 4

// Parse parses one text message from the exchange.
func (Dialect) Parse(p []byte) (upstream.Inbound, error) {
	in, err := parseInbound(p)
	if err == nil && in.Kind == upstream.InEvent && string(in.Stream) == shutdownStream {
		in = upstream.Inbound{Kind: upstream.InShutdown}
	}
	return in, err
}

// parseInbound parses one message without copying or allocating on the
// fast path, which recognizes the exact shape Binance uses for events,
// {"stream":"<name>","data":<value>}, by scanning bytes. The payload is
// NOT validated as JSON there (that would cost more than everything else
// on the hot path): it must be an object or array whose brackets balance
// (strings skipped) and be followed only by the envelope's closing brace;
// the WebSocket reader has checked UTF-8. Anything else (other keys,
// escapes in the stream name, replies) goes through encoding/json.
func parseInbound(p []byte) (upstream.Inbound, error) {
	if rest, ok := bytes.CutPrefix(p, eventPrefix); ok {
		if i := bytes.IndexByte(rest, '"'); i > 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			if d, ok := bytes.CutPrefix(rest[i:], dataInfix); ok {
				s := jsonscan.SkipSpace(d, 0)
				if s < len(d) && (d[s] == '{' || d[s] == '[') {
					if e := jsonscan.SkipValue(d, s); e > 0 {
						if tail := jsonscan.TrimSpace(d[e:]); len(tail) == 1 && tail[0] == '}' {
							return upstream.Inbound{Kind: upstream.InEvent, Stream: rest[:i], Data: d[s:e]}, nil
						}
					}
				}
			}
		}
	}
	var env envelope
	if err := json.Unmarshal(p, &env); err != nil {
		return upstream.Inbound{}, fmt.Errorf("decode message: %w", err)
	}
	if env.Stream != "" {
		if len(env.Data) == 0 {
			return upstream.Inbound{}, fmt.Errorf("decode message: event of %q without data", env.Stream)
		}
		return upstream.Inbound{Kind: upstream.InEvent, Stream: []byte(env.Stream), Data: env.Data}, nil
	}
	in := upstream.Inbound{Kind: upstream.InReply}
	if e := env.Error; e != nil {
		in.Err = &upstream.ReplyError{Code: strconv.Itoa(e.Code), Msg: e.Msg, Full: e.Code == tooManyCode}
	}
	if len(env.ID) > 0 {
		if id, err := strconv.ParseInt(string(env.ID), 10, 64); err == nil {
			in.ID, in.HasID = id, true
		}
	}
	if !in.HasID && in.Err == nil {
		return upstream.Inbound{}, fmt.Errorf("decode message: neither event nor reply")
	}
	return in, nil
}

// ConnectURL returns base+path, with ?streams=a/b/c carrying as many of
// names as fit in maxBytes (each costs its percent-encoded length and a
// separator; room is kept for the timeUnit parameter whether it is used
// or not), and &timeUnit=MICROSECOND when d asks for microseconds.
func (d Dialect) ConnectURL(base, path string, names []string, maxBytes int) (string, int) {
	n := 0
	if maxBytes > 0 {
		room := maxBytes - len(base) - len(path) - len("?streams=") - len(microParam)
		for i, name := range names {
			if room -= urlNameLen(name) + 1; room < 0 {
				break
			}
			n = i + 1
		}
	}
	u := streamsURL(base, path, names[:n])
	if d.micro {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + microParam[1:]
	}
	return u, n
}

// microParam asks for microsecond times; the first byte stands for the
// separator.
const microParam = "&timeUnit=MICROSECOND"

// streamsURL returns base+path, with ?streams=a/b/c when names are given.
// Names are percent-encoded where a URL needs it ('+' of "@+08:00",
// Unicode symbols).
func streamsURL(base, path string, names []string) string {
	if len(names) == 0 {
		return base + path
	}
	var b strings.Builder
	b.Grow(len(base) + len(path) + 9 + urlStreamsLen(names))
	b.WriteString(base)
	b.WriteString(path)
	b.WriteString("?streams=")
	for i, n := range names {
		if i > 0 {
			b.WriteByte('/')
		}
		for j := 0; j < len(n); j++ {
			if c := n[j]; urlSafe(c) {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
	}
	return b.String()
}

// urlStreamsLen is the length of names joined by '/' and percent-encoded.
func urlStreamsLen(names []string) int {
	n := 0
	for i, name := range names {
		if i > 0 {
			n++
		}
		n += urlNameLen(name)
	}
	return n
}

func urlNameLen(name string) int {
	n := 0
	for j := 0; j < len(name); j++ {
		if urlSafe(name[j]) {
			n++
		} else {
			n += 3
		}
	}
	return n
}

func urlSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '@' || c == '_' || c == '.' || c == '-' || c == '!' || c == ':'
}
