package bybitsim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// maxFrame bounds an incoming frame.
const maxFrame = 1 << 20

// outQueue is how many frames a connection may have queued before it is
// closed as too slow.
const outQueue = 1 << 14

// ClientStats describes one connection. The counters of requests that
// break a rule are summed by [ClientStats.Violations].
type ClientStats struct {
	ID        uint64
	Remote    string
	Path      string
	Connected time.Time
	ConnID    string

	Closed      bool
	ClosedBy    string // "server", "client" or "network"
	CloseReason string

	Pings    int            // {"op":"ping"} requests
	Requests map[string]int // subscribe and unsubscribe requests answered, by op
	Topics   int            // topics subscribed now

	InvalidJSON       int // a text frame that is not a JSON object
	UnknownOp         int // op missing, not a string, or not subscribe, unsubscribe or ping
	InvalidReqID      int // req_id present but not a string
	InvalidArgs       int // args missing, empty, or not an array of strings
	TooManyArgs       int // more args than Config.MaxArgsPerRequest ("args size >10")
	UnknownTopics     int // requests naming a malformed topic or one of an unlisted symbol
	Duplicates        int // subscribe of a topic already subscribed (or twice in one request)
	ArgsCharsExceeded int // subscribes past Config.MaxArgsChars
	RateLimited       int // requests beyond Config.MaxRequestsPerSecond
	PingTimeouts      int // 1 if cut for no ping within Config.PingTimeout
	ProtocolErrors    int // binary, fragmented or oversized frames
	SlowClosed        int // 1 if closed for not reading

	Redundant int // unsubscribe of a topic not subscribed: allowed, not a violation
}

// Violations sums the counters of broken rules.
func (c ClientStats) Violations() int {
	return c.InvalidJSON + c.UnknownOp + c.InvalidReqID + c.InvalidArgs + c.TooManyArgs + c.UnknownTopics +
		c.Duplicates + c.ArgsCharsExceeded + c.RateLimited + c.PingTimeouts + c.ProtocolErrors + c.SlowClosed
}

// conn is one WebSocket connection.
type conn struct {
	s   *Server
	nc  net.Conn
	out chan []byte // text frames
	ctl chan ws.Frame
	// done closes when the connection is to end; closeMode says how.
	done      chan struct{}
	closeOnce sync.Once
	closeMode int
	closeCode ws.StatusCode
	closeWhy  string

	// subs and chars are guarded by the Server's mmu.
	subs  map[string]struct{}
	chars int

	mu       sync.Mutex // guards st and reqTimes
	st       ClientStats
	reqTimes []time.Time
}

const (
	closeFrame  = 1 // send a close frame, then close
	closeAbrupt = 2 // close the TCP connection
)

func (s *Server) newConn(nc net.Conn, r *http.Request) *conn {
	id := s.nextID.Add(1)
	c := &conn{
		s: s, nc: nc, out: make(chan []byte, outQueue), ctl: make(chan ws.Frame, 16), done: make(chan struct{}),
		subs: map[string]struct{}{},
	}
	c.st = ClientStats{ID: id, Remote: r.RemoteAddr, Path: r.URL.RequestURI(), Connected: s.cfg.Now(),
		ConnID: fmt.Sprintf("sim-%s-%d", s.cfg.Product, id), Requests: map[string]int{}}
	return c
}

func (c *conn) stats() ClientStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.Requests = make(map[string]int, len(c.st.Requests))
	for k, v := range c.st.Requests {
		st.Requests[k] = v
	}
	return st
}

func (c *conn) count(f func(*ClientStats)) {
	c.mu.Lock()
	f(&c.st)
	c.mu.Unlock()
}

// send queues a text frame; a connection that cannot keep up is closed.
func (c *conn) send(p []byte) {
	select {
	case c.out <- p:
	case <-c.done:
	default:
		c.count(func(st *ClientStats) { st.SlowClosed = 1 })
		c.close(closeFrame, ws.StatusPolicyViolation, "too slow", "server")
	}
}

// close ends the connection, once.
func (c *conn) close(mode int, code ws.StatusCode, why, by string) {
	c.closeOnce.Do(func() {
		c.closeMode, c.closeCode, c.closeWhy = mode, code, why
		c.count(func(st *ClientStats) {
			st.Closed, st.ClosedBy, st.CloseReason = true, by, why
		})
		close(c.done)
		if mode == closeAbrupt {
			c.nc.Close()
		}
	})
}

// serve runs the writer and reads until the connection ends.
func (c *conn) serve(br *bufio.Reader) {
	var wg sync.WaitGroup
	wg.Go(c.write)
	c.read(br)
	c.close(closeAbrupt, ws.StatusAbnormalClosure, "read ended", "network")
	wg.Wait()
	c.nc.Close()
	c.mu.Lock()
	c.st.Topics = 0
	c.mu.Unlock()
}

func (c *conn) write() {
	wr := func(f ws.Frame) bool {
		c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return ws.WriteFrame(c.nc, f) == nil
	}
	for {
		select {
		case f := <-c.ctl:
			if !wr(f) {
				c.close(closeAbrupt, ws.StatusAbnormalClosure, "write failed", "network")
			}
		case p := <-c.out:
			if !wr(ws.NewTextFrame(p)) {
				c.close(closeAbrupt, ws.StatusAbnormalClosure, "write failed", "network")
			}
		case <-c.done:
			if c.closeMode == closeFrame {
				wr(ws.NewCloseFrame(ws.NewCloseFrameBody(c.closeCode, c.closeWhy)))
				time.AfterFunc(time.Second, func() { c.nc.Close() })
			}
			return
		}
	}
}

// read reads frames until the connection ends; the read deadline is the
// heartbeat's: any message from the client moves it.
func (c *conn) read(br io.Reader) {
	timeout := c.s.cfg.PingTimeout
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			c.readFailed(err)
			return
		}
		if h.Length > maxFrame {
			c.count(func(st *ClientStats) { st.ProtocolErrors++ })
			c.close(closeFrame, ws.StatusMessageTooBig, "frame too large", "server")
			return
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			c.readFailed(err)
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch {
		case h.OpCode == ws.OpClose:
			c.closeOnce.Do(func() {
				c.closeMode, c.closeCode, c.closeWhy = closeFrame, ws.StatusNormalClosure, ""
				c.count(func(st *ClientStats) { st.Closed, st.ClosedBy = true, "client" })
				close(c.done)
			})
			return
		case h.OpCode == ws.OpPing:
			select {
			case c.ctl <- ws.NewPongFrame(p):
			default:
			}
			continue
		case h.OpCode == ws.OpPong:
			continue
		case h.OpCode != ws.OpText || !h.Fin:
			c.count(func(st *ClientStats) { st.ProtocolErrors++ })
			c.close(closeFrame, ws.StatusUnsupportedData, "text frames only", "server")
			return
		}
		c.nc.SetReadDeadline(time.Now().Add(timeout))
		c.handle(p)
	}
}

func (c *conn) readFailed(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		select {
		case <-c.done:
		default:
			c.count(func(st *ClientStats) { st.PingTimeouts = 1 })
			c.s.log.Warn("connection cut: no ping", "conn", c.st.ConnID)
			c.close(closeAbrupt, ws.StatusAbnormalClosure, "no ping", "server")
		}
	}
}

// reply is Bybit's answer to a request.
type reply struct {
	Success bool    `json:"success"`
	RetMsg  string  `json:"ret_msg"`
	ConnID  string  `json:"conn_id"`
	ReqID   *string `json:"req_id,omitempty"`
	Op      string  `json:"op"`
}

func (c *conn) answer(ok bool, msg, op string, reqID *string) {
	p, _ := json.Marshal(reply{Success: ok, RetMsg: msg, ConnID: c.st.ConnID, ReqID: reqID, Op: op})
	c.send(p)
}

// handle answers one text message.
func (c *conn) handle(p []byte) {
	var req map[string]json.RawMessage
	if json.Unmarshal(p, &req) != nil || req == nil {
		c.count(func(st *ClientStats) { st.InvalidJSON++ })
		c.answer(false, "error:invalid request, not a JSON object", "", nil)
		return
	}
	var op string
	if json.Unmarshal(req["op"], &op) != nil {
		op = ""
	}
	var reqID *string
	if raw, ok := req["req_id"]; ok {
		var id string
		if json.Unmarshal(raw, &id) != nil {
			c.count(func(st *ClientStats) { st.InvalidReqID++ })
			c.answer(false, "error:req_id must be a string", op, nil)
			return
		}
		reqID = &id
	}
	switch op {
	case "ping":
		c.count(func(st *ClientStats) { st.Pings++ })
		c.answer(true, "pong", "ping", reqID)
		return
	case "subscribe", "unsubscribe":
	default:
		c.count(func(st *ClientStats) { st.UnknownOp++ })
		c.answer(false, "error:unknown op", op, reqID)
		return
	}
	if !c.allowRequest() {
		c.count(func(st *ClientStats) { st.RateLimited++ })
		c.answer(false, "error:too many requests", op, reqID)
		return
	}
	var args []string
	if json.Unmarshal(req["args"], &args) != nil || len(args) == 0 {
		c.count(func(st *ClientStats) { st.InvalidArgs++ })
		c.answer(false, "error:args must be a non-empty array of strings", op, reqID)
		return
	}
	cfg := c.s.cfg
	if cfg.MaxArgsPerRequest > 0 && len(args) > cfg.MaxArgsPerRequest {
		c.count(func(st *ClientStats) { st.TooManyArgs++ })
		c.answer(false, "args size >"+strconv.Itoa(cfg.MaxArgsPerRequest), op, reqID)
		return
	}
	var topics []topic
	for _, a := range args {
		t, ok := parseTopic(a)
		if !ok || !c.s.listed(t.symbol) {
			c.count(func(st *ClientStats) { st.UnknownTopics++ })
			c.answer(false, "error:handler not found,topic:"+a, op, reqID)
			return
		}
		topics = append(topics, t)
	}
	s := c.s
	s.mmu.Lock()
	defer s.mmu.Unlock()
	if op == "unsubscribe" {
		for _, t := range topics {
			if _, ok := c.subs[t.name]; !ok {
				c.count(func(st *ClientStats) { st.Redundant++ })
			}
			s.unsubLocked(c, t.name)
		}
		c.count(func(st *ClientStats) { st.Requests[op]++; st.Topics = len(c.subs) })
		c.answer(true, c.okMsg(op), op, reqID)
		return
	}
	seen := map[string]bool{}
	chars := c.chars
	for _, t := range topics {
		if _, ok := c.subs[t.name]; ok || seen[t.name] {
			c.count(func(st *ClientStats) { st.Duplicates++ })
			c.answer(false, "error:already subscribed,topic:"+t.name, op, reqID)
			return
		}
		seen[t.name] = true
		if chars += len(t.name); chars > cfg.MaxArgsChars {
			c.count(func(st *ClientStats) { st.ArgsCharsExceeded++ })
			c.answer(false, "error:args length exceeded "+strconv.Itoa(cfg.MaxArgsChars)+",topic:"+t.name, op, reqID)
			return
		}
	}
	c.count(func(st *ClientStats) { st.Requests[op]++ })
	c.answer(true, c.okMsg(op), op, reqID)
	now := cfg.Now()
	for _, t := range topics {
		s.subscribeLocked(c, t, now)
	}
	c.count(func(st *ClientStats) { st.Topics = len(c.subs) })
}

// okMsg is the ret_msg of a success: spot says the op, linear nothing.
func (c *conn) okMsg(op string) string {
	if c.s.cfg.Product == ProductSpot {
		return op
	}
	return ""
}

// allowRequest counts a request against the per-second limit.
func (c *conn) allowRequest() bool {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := c.reqTimes[:0]
	for _, t := range c.reqTimes {
		if now.Sub(t) < time.Second {
			keep = append(keep, t)
		}
	}
	c.reqTimes = keep
	if len(keep) >= c.s.cfg.MaxRequestsPerSecond {
		return false
	}
	c.reqTimes = append(keep, now)
	return true
}
