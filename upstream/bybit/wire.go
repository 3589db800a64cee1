package bybit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/marketgate/marketgate/internal/jsonscan"
	"github.com/marketgate/marketgate/upstream"
)

// envelope is any message Bybit sends on a public connection: an event
// {"topic":…,"type":…,"ts":…,"data":…}, a reply {"success":…,"ret_msg":…,
// "conn_id":…,"req_id":…,"op":"subscribe"}, a pong ({"op":"ping"} answered
// with ret_msg "pong"; options and spread answer {"op":"pong"}).
type envelope struct {
	Topic   string          `json:"topic"`
	Data    json.RawMessage `json:"data"`
	Success *bool           `json:"success"`
	RetMsg  string          `json:"ret_msg"`
	ReqID   string          `json:"req_id"`
	Op      string          `json:"op"`
}

// ShutdownOp is the op of a notice that the connection will be closed
// soon. Bybit documents none; the simulator (exchangesim/bybitsim) sends
// {"op":"shutdown","ret_msg":"…"} so that a planned close is handed over
// make-before-break, and the dialect takes it should Bybit ever send one.
const ShutdownOp = "shutdown"

// FullMsg starts the reply refusing topics beyond what a connection
// holds (MaxArgsChars). Bybit documents no such reply; the simulator
// sends it.
const FullMsg = "error:args length exceeded"

var topicPrefix = []byte(`{"topic":"`)

// Parse parses one message. The fast path recognizes events whose first
// key is "topic" (all of Bybit's) by scanning bytes, without allocating:
// Stream is the topic and Data the whole message, passed on verbatim.
// The message must be one JSON object whose brackets balance, with a
// "data" member; it is not otherwise validated. The rest goes through encoding/json.
func (Dialect) Parse(p []byte) (upstream.Inbound, error) {
	return parseInbound(p)
}

func parseInbound(p []byte) (upstream.Inbound, error) {
	if rest, ok := bytes.CutPrefix(p, topicPrefix); ok {
		if i := bytes.IndexByte(rest, '"'); i > 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			if e := jsonscan.SkipValue(p, 0); e > 0 && len(jsonscan.TrimSpace(p[e:])) == 0 && hasData(p[:e]) {
				return upstream.Inbound{Kind: upstream.InEvent, Stream: rest[:i], Data: p[:e]}, nil
			}
		}
	}
	var env envelope
	if err := json.Unmarshal(p, &env); err != nil {
		return upstream.Inbound{}, fmt.Errorf("decode message: %w", err)
	}
	if env.Topic != "" {
		if len(env.Data) == 0 {
			return upstream.Inbound{}, fmt.Errorf("decode message: event of %q without data", env.Topic)
		}
		return upstream.Inbound{Kind: upstream.InEvent, Stream: []byte(env.Topic), Data: jsonscan.TrimSpace(p)}, nil
	}
	switch env.Op {
	case "ping", "pong":
		return upstream.Inbound{Kind: upstream.InPong}, nil
	case ShutdownOp:
		return upstream.Inbound{Kind: upstream.InShutdown}, nil
	case "subscribe", "unsubscribe":
	default:
		return upstream.Inbound{Kind: upstream.InIgnore}, nil
	}
	if env.Success == nil {
		return upstream.Inbound{Kind: upstream.InIgnore}, nil
	}
	in := upstream.Inbound{Kind: upstream.InReply}
	if id, err := strconv.ParseInt(env.ReqID, 10, 64); err == nil {
		in.ID, in.HasID = id, true
	}
	if !*env.Success {
		in.Err = replyError(env.RetMsg)
		if _, topic, ok := strings.Cut(env.RetMsg, ",topic:"); ok && topic != "" {
			in.Streams = []string{topic}
		}
	}
	return in, nil
}

// hasData reports whether the event has a non-empty "data" member.
func hasData(p []byte) bool {
	d, ok := jsonscan.Field(p, "data")
	return ok && len(d) > 0
}

// replyError reads a refusal's ret_msg, "error:<what>,topic:<topic>" or
// a bare message ("args size >10"): the code is <what>, or the message.
func replyError(msg string) *upstream.ReplyError {
	code := msg
	if c, ok := strings.CutPrefix(msg, "error:"); ok {
		code, _, _ = strings.Cut(c, ",")
	}
	return &upstream.ReplyError{Code: code, Msg: msg, Full: strings.HasPrefix(msg, FullMsg)}
}

// EventTime reads the message's "ts" (milliseconds) as microseconds.
func (Dialect) EventTime(data []byte) int64 {
	ts, ok := jsonscan.Int(data, "ts")
	if !ok || ts <= 0 {
		return 0
	}
	return ts * 1000
}

// Identity reads an event's ids: spot trades the first and last trade
// id ("i", numbers as strings) of data[]; books the update id data.u;
// klines the last candle's start and timestamp. Linear trade ids are
// UUIDs: those streams have no order and are not asked. It does not
// allocate.
func (Dialect) Identity(s *upstream.Stream, data []byte) (upstream.EventID, bool) {
	d, ok := jsonscan.Field(data, "data")
	if !ok {
		return upstream.EventID{}, false
	}
	switch kindOf(s) {
	case KindTrade:
		first, last, ok := ends(d)
		if !ok {
			return upstream.EventID{}, false
		}
		lo, ok1 := stringInt(first, "i")
		hi, ok2 := stringInt(last, "i")
		return upstream.EventID{Lo: lo, Hi: hi}, ok1 && ok2 && lo <= hi
	case KindBook, KindBookTop:
		u, ok := jsonscan.Int(d, "u")
		return upstream.EventID{Lo: u, Hi: u}, ok
	case KindKline:
		_, last, ok := ends(d)
		if !ok {
			return upstream.EventID{}, false
		}
		start, ok1 := jsonscan.Int(last, "start")
		at, ok2 := jsonscan.Int(last, "timestamp")
		return upstream.EventID{Lo: start, Hi: start, Sub: at}, ok1 && ok2
	}
	return upstream.EventID{}, false
}

// Final reports whether a kline event closes a candle: any of its
// candles has "confirm":true. It does not allocate.
func (Dialect) Final(s *upstream.Stream, data []byte) bool {
	if kindOf(s) != KindKline {
		return false
	}
	d, ok := jsonscan.Field(data, "data")
	if !ok {
		return false
	}
	final := false
	each(d, func(el []byte) {
		if c, ok := jsonscan.Field(el, "confirm"); ok && string(c) == "true" {
			final = true
		}
	})
	return final
}

// ends returns the first and last elements of the JSON array arr.
func ends(arr []byte) (first, last []byte, ok bool) {
	n := each(arr, func(el []byte) {
		if first == nil {
			first = el
		}
		last = el
	})
	return first, last, n > 0
}

// each calls f with each element of the JSON array arr and returns their
// number, or 0 if arr is no array.
func each(arr []byte, f func([]byte)) int {
	i := jsonscan.SkipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return 0
	}
	n := 0
	for i++; ; {
		i = jsonscan.SkipSpace(arr, i)
		if i >= len(arr) || arr[i] == ']' {
			return n
		}
		e := jsonscan.SkipValue(arr, i)
		if e < 0 {
			return n
		}
		f(arr[i:e])
		n++
		i = jsonscan.SkipSpace(arr, e)
		if i < len(arr) && arr[i] == ',' {
			i++
		}
	}
}

// stringInt reads key of obj as a non-negative integer written as a JSON
// string of at most 19 digits ("2290000000061666327"), or as a number.
func stringInt(obj []byte, key string) (int64, bool) {
	v, ok := jsonscan.Field(obj, key)
	if !ok {
		return 0, false
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}
