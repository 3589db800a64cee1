package downstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// binancePrefix is the exchange part of the stream keys the Binance dialect
// subscribes to.
const binancePrefix = "binance:"

// dialectProto speaks Binance's market-stream protocol under /binance/, so an
// existing Binance client library works unchanged against the gateway. What a
// client sends is validated and rewritten into gateway subscriptions; it never
// travels upstream as sent.
type dialectProto struct{}

const unknownVariant = "Invalid request: unknown variant %s, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 column %d"

func (dialectProto) handleText(c *conn, p []byte) {
	op, ok := handleDialect(c, p)
	c.srv.metrics.command(op, ok)
}

// handleDialect carries out one Binance dialect request and returns its
// method's label and whether it succeeded, for the metrics.
func handleDialect(c *conn, p []byte) (cmdOp, bool) {
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
			keys[i] = binancePrefix + n
		}
		keys = dedupe(keys)
		if method == "UNSUBSCRIBE" {
			c.srv.unsubscribe(c, keys)
			replyDialectResult(c, id, []byte("null"))
			return op, true
		}
		if e := c.srv.checkSubscribe(c, keys); e != nil {
			if e.Code == CodeTooManyStreams {
				replyDialectError(c, id, 4, "Too many subscriptions")
			} else {
				replyDialectError(c, id, 2, "Invalid request: "+e.Msg)
			}
			return op, false
		}
		ok := c.subscribeThenReply(dialectResultFrame(id, []byte("null")), keys, func(e *nativeError) []byte {
			return dialectErrorFrame(id, 4, e.Msg)
		})
		return op, ok
	case "LIST_SUBSCRIPTIONS":
		keys := c.subscribed()
		slices.Sort(keys)
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = strings.TrimPrefix(k, binancePrefix)
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

// streamFailedDialect frames the Binance-shaped notice that a subscribed
// stream failed upstream: an error without an id, code -1 (Binance's code
// for a stream-level failure), naming the stream.
func streamFailedDialect(key, reason string) []byte {
	m, _ := json.Marshal(strings.TrimPrefix(key, binancePrefix) + ": " + reason)
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

// route picks the protocol for a handshake request and, for the Binance
// dialect, the streams named in its URL, validated whole.
func (s *Server) route(r *http.Request) (p protocol, native, combined bool, initial []string, e *httpErr) {
	path := r.URL.Path
	switch {
	case path == "/ws":
		return nativeProto{}, true, false, nil, nil
	case path == "/binance/ws", path == "/binance/ws/":
	case strings.HasPrefix(path, "/binance/ws/"):
		initial = strings.Split(strings.TrimPrefix(path, "/binance/ws/"), "/")
	case path == "/binance/stream":
		combined = true
		if v := r.URL.Query().Get("streams"); v != "" {
			initial = strings.Split(v, "/")
		}
	default:
		return nil, false, false, nil, &httpErr{http.StatusNotFound, "no WebSocket endpoint at " + clip(path)}
	}
	switch tu := r.URL.Query().Get("timeUnit"); tu {
	case "", "MILLISECOND", "millisecond":
	default:
		return nil, false, false, nil, &httpErr{http.StatusBadRequest,
			fmt.Sprintf("timeUnit %q is not supported: the gateway relays the exchange's millisecond events as they are", clip(tu))}
	}
	keys := make([]string, 0, len(initial))
	for _, n := range initial {
		if n == "" {
			continue
		}
		k := binancePrefix + n
		if err := s.cfg.Source.Validate(k); err != nil {
			return nil, false, false, nil, &httpErr{http.StatusBadRequest, err.Error()}
		}
		keys = append(keys, k)
	}
	keys = dedupe(keys)
	if len(keys) > s.cfg.MaxStreamsPerConn {
		return nil, false, false, nil, &httpErr{http.StatusBadRequest,
			fmt.Sprintf("at most %d streams per connection", s.cfg.MaxStreamsPerConn)}
	}
	return dialectProto{}, false, combined, keys, nil
}
