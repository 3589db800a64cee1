package downstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// dialect is an exchange-compatible browser protocol, served under its
// own mount path so that an existing client library of the exchange works
// unchanged against the gateway.
type dialect interface {
	protocol
	// mountPath is the path the dialect's endpoints live under, with a
	// trailing slash ("/binance/").
	mountPath() string
	// handshake reads what a handshake's URL asks for: whether messages
	// are wrapped (combined) and the stream keys it names, not yet
	// validated. ok is false when the path is no endpoint of the dialect;
	// e refuses the request.
	handshake(u *url.URL) (combined bool, keys []string, e *httpErr, ok bool)
}

// dialects are the browser dialects the server speaks besides the native
// protocol, each under its mount path. The table is never modified.
var dialects = []dialect{
	binanceProto{mount: "/binance/", prefix: "binance:"},
	// USD-M futures: its endpoints also sit below the routes of the 2026
	// split (/public/, /market/), which the gateway needs not tell apart.
	binanceProto{mount: "/binance-futures/", prefix: "binance-futures:", routes: [2]string{"public/", "market/"}},
}

// binanceProto speaks Binance's market-stream protocol under mount, so an
// existing Binance client library works unchanged against the gateway. What a
// client sends is validated and rewritten into gateway subscriptions; it never
// travels upstream as sent. A stream name n is the gateway's key prefix+n.
type binanceProto struct {
	mount  string // "/binance/"
	prefix string // "binance:", the exchange part of the stream keys
	// routes are optional path segments between the mount and the
	// endpoint ("public/" on USD-M); an array, so that the dialect stays
	// comparable (it keys maps).
	routes [2]string
}

const unknownVariant = "Invalid request: unknown variant %s, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 column %d"

func (b binanceProto) handleText(c *conn, p []byte) {
	op, ok := b.handle(c, p)
	c.srv.metrics.command(op, ok)
}

// form is the combined wrapping or the exchange's raw event, as the
// client chose (by URL, or by SET_PROPERTY combined).
func (binanceProto) form(c *conn) int {
	if c.combined.Load() {
		return formCombined
	}
	return formRaw
}

// maxMessage allows a request that lists up to MaxStreamsPerConn streams.
func (binanceProto) maxMessage(cfg *Config) int64 { return cfg.MaxDialectMessageSize }

func (binanceProto) name() string { return ProtocolBinance }

func (b binanceProto) mountPath() string { return b.mount }

// handle carries out one Binance dialect request and returns its
// method's label and whether it succeeded, for the metrics.
func (b binanceProto) handle(c *conn, p []byte) (cmdOp, bool) {
	end := len(bytes.TrimRight(p, " \t\r\n"))
	// A map keeps "absent" and null apart, which Binance's replies do.
	var req map[string]json.RawMessage
	if err := json.Unmarshal(p, &req); err != nil {
		var ute *json.UnmarshalTypeError
		if len(bytes.TrimSpace(p)) == 0 {
			replyDialectError(c, nil, 3, "Invalid JSON: EOF while parsing a value")
		} else if errors.As(err, &ute) {
			replyDialectError(c, nil, 2, "Invalid request: expected a JSON object")
		} else {
			replyDialectError(c, nil, 3, "Invalid JSON: "+err.Error())
		}
		return opOther, false
	}
	rawMethod, hasMethod := req["method"]
	var method string
	methodOK := hasMethod && json.Unmarshal(rawMethod, &method) == nil
	op := opOther
	if methodOK {
		op = dialectOp(method)
	}
	id, hasID := req["id"]
	if !hasID || !validDialectID(id) {
		replyDialectError(c, nil, 2, "Invalid request: request ID must be an unsigned integer")
		return op, false
	}
	if !hasMethod {
		replyDialectError(c, id, 2, fmt.Sprintf("Invalid request: missing field `method` at line 1 column %d", end))
		return op, false
	}
	if !methodOK {
		replyDialectError(c, id, 2, fmt.Sprintf(unknownVariant, clip(string(rawMethod)), end))
		return op, false
	}
	switch method {
	case "SUBSCRIBE", "UNSUBSCRIBE":
		var names []string
		if json.Unmarshal(req["params"], &names) != nil || len(names) == 0 {
			replyDialectError(c, id, 2, "Invalid request: params must be a non-empty list of stream names")
			return op, false
		}
		keys := make([]string, len(names))
		for i, n := range names {
			keys[i] = b.prefix + n
		}
		keys = dedupe(keys)
		if method == "UNSUBSCRIBE" {
			c.srv.unsubscribe(c, keys)
			replyDialectResult(c, id, []byte("null"))
			return op, true
		}
		if e := c.srv.checkSubscribe(c, keys); e != nil {
			switch e.Code {
			case CodeTooManyStreams:
				replyDialectError(c, id, 4, "Too many subscriptions")
			case CodeForbidden:
				replyDialectError(c, id, 2, "Invalid request: forbidden: "+e.Msg+": "+strings.Join(e.Streams, ", "))
			case CodeUnavailable:
				// Binance's protocol has no "retry" reply and its client
				// libraries do not resend a refused SUBSCRIBE, but they
				// do reconnect and resubscribe: close with 1013.
				c.closeWith(statusTryAgainLater, e.Msg)
			default:
				replyDialectError(c, id, 2, "Invalid request: "+e.Msg)
			}
			return op, false
		}
		ok := c.subscribeQuiet(dialectResultFrame(id, []byte("null")), keys, func(e *nativeError) []byte {
			return dialectErrorFrame(id, 4, e.Msg)
		})
		return op, ok
	case "LIST_SUBSCRIPTIONS":
		keys := c.subscribed()
		slices.Sort(keys)
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = strings.TrimPrefix(k, b.prefix)
		}
		b, _ := json.Marshal(names)
		replyDialectResult(c, id, b)
	case "SET_PROPERTY", "GET_PROPERTY":
		return op, dialectProperty(c, method, req["params"], id)
	default:
		replyDialectError(c, id, 2, fmt.Sprintf(unknownVariant, "`"+clip(method)+"`", end))
		return op, false
	}
	return op, true
}

// dialectProperty answers SET_PROPERTY and GET_PROPERTY; "combined" is the
// only property, as on Binance. It reports whether the request succeeded.
func dialectProperty(c *conn, method string, raw json.RawMessage, id json.RawMessage) bool {
	var params []json.RawMessage
	if json.Unmarshal(raw, &params) != nil || len(params) == 0 {
		replyDialectError(c, id, 2, "Invalid request: property name must be a string")
		return false
	}
	var name string
	if json.Unmarshal(params[0], &name) != nil {
		replyDialectError(c, id, 2, "Invalid request: property name must be a string")
		return false
	}
	want := 1
	if method == "SET_PROPERTY" {
		want = 2
	}
	if len(params) > want {
		replyDialectError(c, id, 2, "Invalid request: too many parameters")
		return false
	}
	if name != "combined" {
		replyDialectError(c, id, 0, "Unknown property")
		return false
	}
	if method == "GET_PROPERTY" {
		replyDialectResult(c, id, strconv.AppendBool(nil, c.combined.Load()))
		return true
	}
	var v bool
	if len(params) < 2 || json.Unmarshal(params[1], &v) != nil {
		replyDialectError(c, id, 1, "Invalid value type: expected Boolean")
		return false
	}
	c.combined.Store(v)
	replyDialectResult(c, id, []byte("null"))
	return true
}

var alnumID = regexp.MustCompile(`^[A-Za-z0-9]{0,36}$`)

// validDialectID accepts the ids Binance accepts: a 64-bit signed integer,
// an alphanumeric string of at most 36 characters, or null.
func validDialectID(id json.RawMessage) bool {
	raw := bytes.TrimSpace(id)
	if string(raw) == "null" {
		return true
	}
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		return json.Unmarshal(raw, &s) == nil && alnumID.MatchString(s)
	}
	_, err := strconv.ParseInt(string(raw), 10, 64)
	return err == nil
}

// replyDialectResult sends {"result":<result>,"id":<id>}.
func replyDialectResult(c *conn, id json.RawMessage, result []byte) {
	c.enqueueReply(dialectResultFrame(id, result))
}

func dialectResultFrame(id json.RawMessage, result []byte) []byte {
	return textFrame(slices.Concat([]byte(`{"result":`), result, []byte(`,"id":`), idOrNull(id), []byte("}")))
}

// replyDialectError sends {"error":{"code":C,"msg":"…"},"id":<id>}, without
// "id" when the request had none that could be read.
func replyDialectError(c *conn, id json.RawMessage, code int, msg string) {
	c.enqueueReply(dialectErrorFrame(id, code, msg))
}

// dialectErrorFrame frames the error reply replyDialectError sends.
func dialectErrorFrame(id json.RawMessage, code int, msg string) []byte {
	m, _ := marshalReply(msg)
	b := fmt.Appendf(nil, `{"error":{"code":%d,"msg":%s}`, code, m)
	if id != nil {
		b = append(append(b, `,"id":`...), idOrNull(id)...)
	}
	return textFrame(append(b, '}'))
}

// streamFailed frames the Binance-shaped notice that a subscribed stream
// failed upstream: an error without an id, code -1 (Binance's code for a
// stream-level failure), naming the stream.
func (b binanceProto) streamForbidden(key string) []byte {
	return b.streamFailed(key, "forbidden: the connection's token no longer allows this stream")
}

func (b binanceProto) streamFailed(key, reason string) []byte {
	m, _ := json.Marshal(strings.TrimPrefix(key, b.prefix) + ": " + reason)
	return textFrame(fmt.Appendf(nil, `{"error":{"code":-1,"msg":%s}}`, m))
}

func idOrNull(id json.RawMessage) []byte {
	if len(id) == 0 {
		return []byte("null")
	}
	var buf bytes.Buffer
	if json.Compact(&buf, id) != nil {
		return []byte("null")
	}
	return buf.Bytes()
}

// handshake reads Binance's endpoints: /ws and /ws/<name>/… (raw), and
// /stream?streams=<name>/… (combined), all under mount. Only millisecond
// event times are offered (the exchange's events are relayed as they are).
func (b binanceProto) handshake(u *url.URL) (combined bool, keys []string, e *httpErr, ok bool) {
	var names []string
	rest := strings.TrimPrefix(u.Path, b.mount)
	for _, r := range b.routes {
		if after, ok := strings.CutPrefix(rest, r); ok && r != "" {
			rest = after
			break
		}
	}
	switch {
	case rest == "ws", rest == "ws/":
	case strings.HasPrefix(rest, "ws/"):
		names = strings.Split(strings.TrimPrefix(rest, "ws/"), "/")
	case rest == "stream":
		combined = true
		if v := u.Query().Get("streams"); v != "" {
			names = strings.Split(v, "/")
		}
	default:
		return false, nil, nil, false
	}
	switch tu := u.Query().Get("timeUnit"); tu {
	case "", "MILLISECOND", "millisecond":
	default:
		return false, nil, &httpErr{http.StatusBadRequest,
			fmt.Sprintf("timeUnit %q is not supported: the gateway relays the exchange's millisecond events as they are", clip(tu))}, true
	}
	keys = make([]string, 0, len(names))
	for _, n := range names {
		if n != "" {
			keys = append(keys, b.prefix+n)
		}
	}
	return combined, keys, nil, true
}
