package binancesim

import (
	"strconv"
	"strings"
)

// The methods a stream connection accepts.
const (
	methodSubscribe         = "SUBSCRIBE"
	methodUnsubscribe       = "UNSUBSCRIBE"
	methodListSubscriptions = "LIST_SUBSCRIPTIONS"
	methodSetProperty       = "SET_PROPERTY"
	methodGetProperty       = "GET_PROPERTY"
)

// methodVariants is serde's list of expected variants, in Binance's order.
const methodVariants = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"

// Error reply texts, as Binance documents them and as observed.
const (
	msgUnknownProperty  = "Unknown property"
	msgExpectedBoolean  = "Invalid value type: expected Boolean"
	msgPropertyName     = "Invalid request: property name must be a string"
	msgInvalidID        = "Invalid request: request ID must be an unsigned integer"
	msgTooManyParams    = "Invalid request: too many parameters"
	msgInvalidStream    = "Invalid request: invalid stream"
	msgTooManySubs      = "Too many subscriptions"
	msgEmptyJSON        = "Invalid JSON: EOF while parsing a value"
	maxIDStringLen      = 36
	propertyCombined    = "combined"
	codeUnknownProperty = 0
	codeInvalidValue    = 1
	codeInvalidRequest  = 2
	codeInvalidJSON     = 3
	codeTooManySubs     = 4
)

// violation names the ClientStats counter a bad frame increments.
type violation int

const (
	vNone violation = iota
	vInvalidJSON
	vMissingMethod
	vUnknownMethod
	vInvalidID
	vInvalidParams
	vInvalidStreams
	vTooManyStreams
)

// replyError is an error reply: {"error":{"code":C,"msg":M},"id":N}.
type replyError struct {
	code int
	msg  string
	kind violation
}

// request is a decoded control frame.
type request struct {
	method string     // a known method, or "" if none was parsed
	params *jsonValue // nil when absent or null
	id     []byte     // the id as it goes back on the wire; nil if none valid
	end    int        // offset just past the request object
	data   []byte     // the frame, for positions in messages
}

// at renders a serde position suffix for offset idx of the request.
func at(data []byte, idx int) string {
	return (&jsonError{offset: idx}).format(data)
}

// decodeRequest parses one frame the way a serde-derived request struct
// would: JSON syntax first (code 3), then the fields in document order
// (code 2), then the missing fields. It returns the first error, and as
// much of the request as could be read (the method for Requests, the id for
// the error reply) even when there is an error.
func decodeRequest(data []byte) (request, *replyError) {
	req := request{data: data}
	if len(data) == 0 {
		return req, &replyError{code: codeInvalidJSON, msg: msgEmptyJSON, kind: vInvalidJSON}
	}
	v, jerr := parseJSON(data)
	if jerr != nil {
		return req, &replyError{code: codeInvalidJSON, msg: "Invalid JSON: " + jerr.format(data), kind: vInvalidJSON}
	}
	if v.kind != jsonObject {
		return req, &replyError{
			code: codeInvalidRequest,
			msg:  "Invalid request: invalid type: " + serdeUnexpected(v) + ", expected struct Request" + at(data, serdeTypeErrorOffset(v)),
			kind: vMissingMethod,
		}
	}
	req.end = v.end
	var first *replyError
	fail := func(e *replyError) {
		if first == nil {
			first = e
		}
	}
	seen := map[string]bool{}
	for k := range v.fields {
		f := &v.fields[k]
		if f.key != "method" && f.key != "params" && f.key != "id" {
			continue // serde ignores unknown fields
		}
		if seen[f.key] {
			fail(&replyError{code: codeInvalidRequest, msg: "Invalid request: duplicate field `" + f.key + "`" + at(data, f.keyEnd), kind: vInvalidParams})
			continue
		}
		seen[f.key] = true
		switch f.key {
		case "method":
			switch {
			case f.value.kind != jsonString:
				// serde_json's deserialize_enum raises a syntax error here.
				fail(&replyError{code: codeInvalidJSON, msg: "Invalid JSON: " + errValue + at(data, f.value.start+1), kind: vUnknownMethod})
			case !knownMethod(f.value.s):
				fail(&replyError{
					code: codeInvalidRequest,
					msg:  "Invalid request: unknown variant `" + f.value.s + "`, expected one of " + methodVariants + at(data, f.value.end),
					kind: vUnknownMethod,
				})
			default:
				req.method = f.value.s
			}
		case "params":
			switch f.value.kind {
			case jsonNull:
			case jsonArray:
				req.params = &f.value
			default:
				fail(&replyError{
					code: codeInvalidRequest,
					msg:  "Invalid request: invalid type: " + serdeUnexpected(f.value) + ", expected a sequence" + at(data, serdeTypeErrorOffset(f.value)),
					kind: vInvalidParams,
				})
			}
		case "id":
			if id, ok := encodeID(f.value); ok {
				req.id = id
			} else {
				fail(&replyError{code: codeInvalidRequest, msg: msgInvalidID, kind: vInvalidID})
			}
		}
	}
	switch {
	case first != nil:
	case !seen["method"]:
		first = &replyError{code: codeInvalidRequest, msg: "Invalid request: missing field `method`" + at(data, v.end), kind: vMissingMethod}
	case !seen["id"]:
		first = &replyError{code: codeInvalidRequest, msg: msgInvalidID, kind: vInvalidID}
	}
	return req, first
}

func knownMethod(m string) bool {
	switch m {
	case methodSubscribe, methodUnsubscribe, methodListSubscriptions, methodSetProperty, methodGetProperty:
		return true
	}
	return false
}

// encodeID validates an id (Binance accepts a signed 64-bit integer, an
// alphanumeric string of at most 36 characters, or null) and returns it as
// it is echoed: integers as sent, strings re-quoted.
func encodeID(v jsonValue) ([]byte, bool) {
	switch v.kind {
	case jsonNull:
		return []byte("null"), true
	case jsonNumber:
		if strings.ContainsAny(v.s, ".eE") {
			return nil, false
		}
		if _, err := strconv.ParseInt(v.s, 10, 64); err != nil {
			return nil, false
		}
		return []byte(v.s), true
	case jsonString:
		if len(v.s) == 0 || len(v.s) > maxIDStringLen {
			return nil, false
		}
		for k := 0; k < len(v.s); k++ {
			c := v.s[k]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return nil, false
			}
		}
		return []byte(`"` + v.s + `"`), true
	}
	return nil, false
}

// streamParams validates SUBSCRIBE/UNSUBSCRIBE params: every element must
// be a stream name well-formed for parse. Duplicates are dropped, order is
// kept.
func streamParams(req request, parse func(string) (streamSpec, bool)) ([]streamSpec, *replyError) {
	if req.params == nil {
		return nil, &replyError{code: codeInvalidRequest, msg: "Invalid request: missing field `params`" + at(req.data, req.end), kind: vInvalidParams}
	}
	specs := make([]streamSpec, 0, len(req.params.items))
	dup := make(map[string]bool, len(req.params.items))
	for _, it := range req.params.items {
		if it.kind != jsonString {
			return nil, &replyError{code: codeInvalidRequest, msg: msgInvalidStream, kind: vInvalidStreams}
		}
		sp, ok := parse(it.s)
		if !ok {
			return nil, &replyError{code: codeInvalidRequest, msg: msgInvalidStream, kind: vInvalidStreams}
		}
		if !dup[it.s] {
			dup[it.s] = true
			specs = append(specs, sp)
		}
	}
	return specs, nil
}

// propertyParams validates SET_PROPERTY (want 2 params) and GET_PROPERTY
// (want 1): the name must be a string and "combined"; SET_PROPERTY's value
// must be a boolean.
func propertyParams(req request, want int) (value bool, rerr *replyError) {
	if req.params == nil || len(req.params.items) == 0 {
		return false, &replyError{code: codeInvalidRequest, msg: msgPropertyName, kind: vInvalidParams}
	}
	items := req.params.items
	if len(items) > want {
		return false, &replyError{code: codeInvalidRequest, msg: msgTooManyParams, kind: vInvalidParams}
	}
	if items[0].kind != jsonString {
		return false, &replyError{code: codeInvalidRequest, msg: msgPropertyName, kind: vInvalidParams}
	}
	if items[0].s != propertyCombined {
		return false, &replyError{code: codeUnknownProperty, msg: msgUnknownProperty, kind: vInvalidParams}
	}
	if want == 2 {
		if len(items) < 2 || items[1].kind != jsonBool {
			return false, &replyError{code: codeInvalidValue, msg: msgExpectedBoolean, kind: vInvalidParams}
		}
		return items[1].b, nil
	}
	return false, nil
}

// appendResult appends {"result":<result>,"id":<id>}.
func appendResult(b []byte, result string, id []byte) []byte {
	b = append(b, `{"result":`...)
	b = append(b, result...)
	b = append(b, `,"id":`...)
	b = append(b, id...)
	return append(b, '}')
}

// appendErrorReply appends {"error":{"code":C,"msg":M},"id":N}, leaving out
// the id when none was parsed.
func appendErrorReply(b []byte, e *replyError, id []byte) []byte {
	b = append(b, `{"error":{"code":`...)
	b = strconv.AppendInt(b, int64(e.code), 10)
	b = append(b, `,"msg":`...)
	b = appendJSONString(b, e.msg)
	b = append(b, '}')
	if id != nil {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string without HTML escaping.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for k := 0; k < len(s); k++ {
		c := s[k]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// handleRequest answers one incoming data frame. It runs on the
// connection's reader goroutine.
func (c *conn) handleRequest(data []byte) {
	req, rerr := decodeRequest(data)
	if req.method != "" {
		c.mu.Lock()
		c.st.Requests[req.method]++
		c.mu.Unlock()
	}
	if rerr == nil {
		rerr = c.execute(req)
	}
	if rerr == nil {
		return
	}
	c.countViolation(rerr.kind, 1)
	c.sendText(appendErrorReply(nil, rerr, req.id))
	c.log.Debug("error reply", "code", rerr.code, "detail", rerr.msg)
	if c.srv.cfg.StrictMethod && (rerr.kind == vMissingMethod || rerr.kind == vInvalidJSON) {
		c.closeWith(closeRecord{code: closeStrict, reason: closeStrictReason, mode: closeDrain, by: byServer})
	}
}

// execute runs a decoded request and sends its success reply.
func (c *conn) execute(req request) *replyError {
	switch req.method {
	case methodSubscribe:
		specs, rerr := streamParams(req, c.srv.prod.grammar.parse)
		if rerr != nil {
			return rerr
		}
		return c.subscribe(specs, req.id)
	case methodUnsubscribe:
		specs, rerr := streamParams(req, c.srv.prod.grammar.parse)
		if rerr != nil {
			return rerr
		}
		c.unsubscribe(specs)
		c.sendText(appendResult(nil, "null", req.id))
	case methodListSubscriptions:
		if req.params != nil && len(req.params.items) > 0 {
			return &replyError{code: codeInvalidRequest, msg: msgTooManyParams, kind: vInvalidParams}
		}
		c.mu.Lock()
		list := []byte{'['}
		for k, name := range c.subs {
			if k > 0 {
				list = append(list, ',')
			}
			list = appendJSONString(list, name)
		}
		c.mu.Unlock()
		c.sendText(appendResult(nil, string(append(list, ']')), req.id))
	case methodSetProperty:
		v, rerr := propertyParams(req, 2)
		if rerr != nil {
			return rerr
		}
		c.combined.Store(v)
		c.sendText(appendResult(nil, "null", req.id))
	case methodGetProperty:
		if _, rerr := propertyParams(req, 1); rerr != nil {
			return rerr
		}
		c.sendText(appendResult(nil, strconv.FormatBool(c.combined.Load()), req.id))
	}
	return nil
}

// subscribe adds specs to the connection. It is all or nothing: when the
// result would exceed MaxStreams nothing is added and code 4 is returned.
// The success reply precedes the streams' first events.
func (c *conn) subscribe(specs []streamSpec, id []byte) *replyError {
	c.mu.Lock()
	fresh := specs[:0:0]
	for _, sp := range specs {
		if _, ok := c.subSet[sp.name]; ok {
			c.st.Redundant++
			continue
		}
		fresh = append(fresh, sp)
	}
	if len(c.subs)+len(fresh) > c.srv.cfg.MaxStreams {
		c.mu.Unlock()
		return &replyError{code: codeTooManySubs, msg: msgTooManySubs, kind: vTooManyStreams}
	}
	unknown, wrong := 0, 0
	for _, sp := range fresh {
		if !c.srv.knownSymbol(sp.symbol) {
			unknown++
		}
		if sp.route != c.route {
			wrong++ // accepted, and silent on this connection, as on Binance
		}
		c.subSet[sp.name] = sp
		c.subs = append(c.subs, sp.name)
	}
	c.st.InvalidStreams += unknown
	c.st.WrongRoute += wrong
	c.st.Streams = len(c.subs)
	// Queue the reply and register under the registry lock: the generator
	// cannot queue data for the new streams ahead of the reply, and
	// Subscriptions() cannot observe the reply's effect half done.
	reg := c.srv.reg
	reg.mu.Lock()
	c.sendText(appendResult(nil, "null", id))
	reg.addLocked(c, fresh)
	reg.mu.Unlock()
	c.mu.Unlock()
	return nil
}

// unsubscribe removes specs; names not subscribed are counted as redundant.
func (c *conn) unsubscribe(specs []streamSpec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gone := specs[:0:0]
	for _, sp := range specs {
		if _, ok := c.subSet[sp.name]; !ok {
			c.st.Redundant++
			continue
		}
		delete(c.subSet, sp.name)
		gone = append(gone, sp)
	}
	if len(gone) == 0 {
		return
	}
	c.srv.reg.remove(c, gone)
	kept := c.subs[:0]
	for _, name := range c.subs {
		if _, ok := c.subSet[name]; ok {
			kept = append(kept, name)
		}
	}
	clear(c.subs[len(kept):])
	c.subs = kept
	c.st.Streams = len(c.subs)
}
