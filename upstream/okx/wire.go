package okx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/marketgate/marketgate/internal/jsonscan"
	"github.com/marketgate/marketgate/upstream"
)

// arg is one channel of a request or a reply.
type arg struct {
	Channel string `json:"channel"`
	InstID  string `json:"instId"`
}

// request is OKX's subscribe or unsubscribe request.
type request struct {
	ID   string `json:"id"`
	Op   string `json:"op"`
	Args []arg  `json:"args"`
}

// Encode encodes {"id":"<id>","op":"subscribe"|"unsubscribe","args":[…]},
// one {"channel","instId"} per name. The id is echoed in the replies; OKX
// wants at most 32 alphanumerics, so it is the decimal id.
func (Dialect) Encode(op upstream.Op, names []string, id int64) ([]byte, error) {
	if id < 0 {
		return nil, fmt.Errorf("encode request: negative id %d", id)
	}
	r := request{ID: strconv.FormatInt(id, 10), Op: "subscribe", Args: make([]arg, len(names))}
	if op == upstream.OpUnsubscribe {
		r.Op = "unsubscribe"
	}
	for i, n := range names {
		ch, inst, ok := strings.Cut(n, ":")
		if !ok {
			return nil, fmt.Errorf("encode request: stream %q is not <channel>:<instId>", n)
		}
		r.Args[i] = arg{Channel: ch, InstID: inst}
	}
	return json.Marshal(r)
}

// envelope is any JSON message OKX sends on a public connection: an event
// {"arg":{…},["action":…,]"data":[…]}, a reply {"event":"subscribe",
// "arg":{…},"id":…}, an error {"event":"error","code":…,"msg":…}, a
// notice {"event":"notice","code":"64008",…}.
type envelope struct {
	Event string          `json:"event"`
	Code  json.RawMessage `json:"code"`
	Msg   string          `json:"msg"`
	ID    string          `json:"id"`
	Arg   *arg            `json:"arg"`
	Data  json.RawMessage `json:"data"`
}

// shutdownCode is the code of the notice sent 60 s before a service
// upgrade closes the connection.
const shutdownCode = "64008"

var (
	pong         = []byte("pong")
	eventPrefix  = []byte(`{"arg":{"channel":"`)
	instInfix    = []byte(`","instId":"`)
	argEnd       = []byte(`"},`)
	dataKey      = []byte(`"data":`)
	actionKey    = []byte(`"action":`)
	errNoMessage = errors.New("decode message: neither event, reply nor notice")
)

// Parse parses one text message from the exchange: "pong" answers the
// heartbeat; events, replies, errors and notices are JSON. An event's
// Stream is "<channel>:<instId>" and its Data the whole frame, as OKX
// sent it (a book update's "action" is outside "data").
func (d Dialect) Parse(p []byte) (upstream.Inbound, error) {
	if bytes.Equal(p, pong) {
		return upstream.Inbound{Kind: upstream.InPong}, nil
	}
	if ch, inst, ok := fastEvent(p); ok {
		return upstream.Inbound{Kind: upstream.InEvent, Stream: d.names.get(ch, inst), Data: p}, nil
	}
	return parseSlow(p)
}

// fastEvent recognizes, without allocating, the exact shape OKX uses for
// events: {"arg":{"channel":"<ch>","instId":"<id>"},"data":… or
// ,"action":…, and checks that the whole message is one object whose
// brackets balance (strings skipped). The payload is not validated as
// JSON (the WebSocket reader has checked UTF-8). Anything else (other
// keys in arg, escapes, replies) goes through encoding/json.
func fastEvent(p []byte) (ch, inst []byte, ok bool) {
	rest, ok := bytes.CutPrefix(p, eventPrefix)
	if !ok {
		return nil, nil, false
	}
	i := bytes.IndexByte(rest, '"')
	if i <= 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return nil, nil, false
	}
	ch, rest = rest[:i], rest[i:]
	if rest, ok = bytes.CutPrefix(rest, instInfix); !ok {
		return nil, nil, false
	}
	i = bytes.IndexByte(rest, '"')
	if i <= 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return nil, nil, false
	}
	inst, rest = rest[:i], rest[i:]
	if rest, ok = bytes.CutPrefix(rest, argEnd); !ok {
		return nil, nil, false
	}
	if !bytes.HasPrefix(rest, dataKey) && !bytes.HasPrefix(rest, actionKey) {
		return nil, nil, false
	}
	if e := jsonscan.SkipValue(p, 0); e < 0 || len(jsonscan.TrimSpace(p[e:])) != 0 {
		return nil, nil, false
	}
	return ch, inst, true
}

// parseSlow parses any message with encoding/json.
func parseSlow(p []byte) (upstream.Inbound, error) {
	var env envelope
	if err := json.Unmarshal(p, &env); err != nil {
		return upstream.Inbound{}, fmt.Errorf("decode message: %w", err)
	}
	switch env.Event {
	case "":
		if env.Arg == nil || len(env.Data) == 0 || env.Arg.Channel == "" || env.Arg.InstID == "" {
			return upstream.Inbound{}, errNoMessage
		}
		return upstream.Inbound{Kind: upstream.InEvent, Stream: []byte(env.Arg.Channel + ":" + env.Arg.InstID), Data: p}, nil
	case "subscribe", "unsubscribe", "error":
	case "notice":
		if codeText(env.Code) == shutdownCode {
			return upstream.Inbound{Kind: upstream.InShutdown}, nil
		}
		return upstream.Inbound{Kind: upstream.InIgnore}, nil
	default: // channel-conn-count and whatever OKX adds
		return upstream.Inbound{Kind: upstream.InIgnore}, nil
	}
	in := upstream.Inbound{Kind: upstream.InReply}
	if id, err := strconv.ParseInt(env.ID, 10, 64); err == nil && id >= 0 {
		in.ID, in.HasID = id, true
	}
	name := ""
	if env.Arg != nil && env.Arg.Channel != "" && env.Arg.InstID != "" {
		name = env.Arg.Channel + ":" + env.Arg.InstID
	}
	if env.Event == "error" {
		in.Err = &upstream.ReplyError{Code: codeText(env.Code), Msg: env.Msg}
		if name == "" {
			name = namedInMsg(env.Msg)
		}
	}
	if name != "" {
		in.Streams = []string{name}
	}
	if !in.HasID && len(in.Streams) == 0 && in.Err == nil {
		return upstream.Inbound{}, errNoMessage
	}
	return in, nil
}

// codeText returns a code as text, whether OKX sent it as a string or a
// number.
func codeText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(bytes.TrimSpace(raw))
}

// namedInMsg returns the stream an error message names, as OKX's 60018
// does ("Wrong URL or channel:books,instId:BTC-USDTT doesn't exist…"),
// or "": an error naming no stream fails its whole request.
func namedInMsg(msg string) string {
	_, rest, ok := strings.Cut(msg, "channel:")
	if !ok {
		return ""
	}
	ch, rest, ok := strings.Cut(rest, ",instId:")
	if !ok || ch == "" || strings.ContainsAny(ch, " ,") {
		return ""
	}
	inst := rest
	if i := strings.IndexAny(rest, " ,\"}"); i >= 0 {
		inst = rest[:i]
	}
	if inst == "" {
		return ""
	}
	return ch + ":" + inst
}

// maxCachedNames bounds the names kept by a [nameCache]: the streams the
// exchange sends events of, which are the streams subscribed.
const maxCachedNames = 1 << 16

// nameCache keeps the stream name "<channel>:<instId>" of each channel and
// instrument seen in an event, so that Parse returns it without
// allocating: OKX names an event's stream in two JSON strings, and the
// core wants one. Safe for concurrent use.
type nameCache struct {
	// mu guards the following fields.
	mu sync.RWMutex
	m  map[string]map[string][]byte // channel → instId → name
	n  int
}

func newNameCache() *nameCache { return &nameCache{m: make(map[string]map[string][]byte)} }

// get returns ch+":"+inst, allocating only the first time (or always,
// once the cache is full, or for the zero Dialect).
func (c *nameCache) get(ch, inst []byte) []byte {
	if c == nil {
		return joinName(ch, inst)
	}
	c.mu.RLock()
	name := c.m[string(ch)][string(inst)]
	c.mu.RUnlock()
	if name != nil {
		return name
	}
	name = joinName(ch, inst)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n >= maxCachedNames {
		return name
	}
	byInst := c.m[string(ch)]
	if byInst == nil {
		byInst = make(map[string][]byte)
		c.m[string(ch)] = byInst
	}
	if old, ok := byInst[string(inst)]; ok {
		return old
	}
	byInst[string(inst)] = name
	c.n++
	return name
}

func joinName(ch, inst []byte) []byte {
	name := make([]byte, 0, len(ch)+1+len(inst))
	name = append(name, ch...)
	name = append(name, ':')
	return append(name, inst...)
}
