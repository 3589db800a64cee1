package okxsim

import (
	"bufio"
	"encoding/json"
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

// subscription is one channel of one instrument on a connection.
type subscription struct {
	channel, inst, bar string
}

// frame is an outgoing frame.
type frame struct {
	op ws.OpCode
	p  []byte
}

// conn is one client connection. Its subs, stats, lastRecv, reqTimes and
// closeAt are guarded by Server.mu.
type conn struct {
	s        *Server
	nc       net.Conn
	endpoint int
	connID   string
	send     chan frame
	quit     chan struct{}
	once     sync.Once
	code     ws.StatusCode // close code sent on quit; 0: drop
	reason   string

	subs     map[string]subscription
	stats    ClientStats
	lastRecv time.Time
	reqTimes []time.Time
	closeAt  time.Time
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request, endpoint int) {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	now := time.Now()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	// Run waits for this handler too: after the upgrade hijacks the
	// connection, http.Server.Shutdown no longer does. Added under mu
	// before Run sets closing, so never after its Wait began.
	s.wg.Add(1)
	defer s.wg.Done()
	if !s.allowAttemptLocked(ip, now) {
		s.refused++
		s.mu.Unlock()
		s.log.Warn("refused a connection attempt over the limit", "remote", r.RemoteAddr)
		http.Error(w, `{"code":"60014","msg":"Requests too frequent"}`, http.StatusTooManyRequests)
		return
	}
	s.mu.Unlock()
	nc, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	c := &conn{s: s, nc: nc, endpoint: endpoint, send: make(chan frame, s.cfg.SendQueue), quit: make(chan struct{}),
		subs: map[string]subscription{}, lastRecv: now}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		return
	}
	c.stats = ClientStats{ID: uint64(len(s.all) + 1), Remote: r.RemoteAddr, Path: r.URL.Path, Connected: now}
	c.connID = strconv.FormatUint(0x5f3f0000+c.stats.ID, 16)
	s.conns[c] = struct{}{}
	s.all = append(s.all, c)
	s.mu.Unlock()
	s.wg.Go(c.write)
	s.wg.Go(c.read)
}

// enqueue queues f for the writer; a full queue closes the connection as
// a slow consumer. The caller holds Server.mu.
func (c *conn) enqueue(p []byte) { c.enqueueFrame(frame{op: ws.OpText, p: p}) }

func (c *conn) enqueueFrame(f frame) {
	select {
	case <-c.quit:
	case c.send <- f:
	default:
		c.stats.SlowClosed++
		c.close(ws.StatusPolicyViolation, "slow consumer")
	}
}

// close ends the connection with a close frame (code > 0) or abruptly.
func (c *conn) close(code ws.StatusCode, reason string) {
	c.once.Do(func() {
		c.code, c.reason = code, reason
		close(c.quit)
		if code == 0 {
			c.nc.Close()
		}
	})
}

// write is the connection's only writer.
func (c *conn) write() {
	bw := bufio.NewWriter(c.nc)
	defer c.nc.Close()
	for {
		select {
		case <-c.quit:
			if c.code != 0 {
				c.nc.SetWriteDeadline(time.Now().Add(time.Second))
				ws.WriteFrame(bw, ws.NewCloseFrame(ws.NewCloseFrameBody(c.code, c.reason)))
				bw.Flush()
				// Give the client a moment to answer the close.
				c.nc.SetReadDeadline(time.Now().Add(time.Second))
			}
			return
		case f := <-c.send:
			c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			err := ws.WriteFrame(bw, ws.NewFrame(f.op, true, f.p))
			for err == nil && len(c.send) > 0 {
				f = <-c.send
				err = ws.WriteFrame(bw, ws.NewFrame(f.op, true, f.p))
			}
			if err == nil {
				err = bw.Flush()
			}
			if err != nil {
				c.close(0, "")
				return
			}
		}
	}
}

// read reads frames until the connection ends, then forgets it.
func (c *conn) read() {
	s := c.s
	defer func() {
		c.close(0, "")
		s.mu.Lock()
		delete(s.conns, c)
		c.stats.Closed = true
		c.stats.CloseCode, c.stats.CloseReason = int(c.code), c.reason
		s.mu.Unlock()
	}()
	br := bufio.NewReader(c.nc)
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return
		}
		if h.Length > maxFrame || !h.Fin || !h.Masked {
			s.mu.Lock()
			c.stats.BadFrames++
			c.close(ws.StatusProtocolError, "bad frame")
			s.mu.Unlock()
			return
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		ws.Cipher(p, h.Mask, 0)
		s.mu.Lock()
		c.lastRecv = time.Now()
		switch h.OpCode {
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(p)
			c.close(code, reason)
			s.mu.Unlock()
			return
		case ws.OpPing:
			c.enqueueFrame(frame{op: ws.OpPong, p: p})
		case ws.OpPong:
		case ws.OpText:
			c.handleLocked(p)
		default:
			c.stats.BadRequests++
			c.errorLocked("", "60012", "Invalid request: "+string(p))
		}
		s.mu.Unlock()
	}
}

// wireArg is one arg of a request or reply.
type wireArg struct {
	Channel string `json:"channel"`
	InstID  string `json:"instId"`
}

// errorLocked queues an error reply.
func (c *conn) errorLocked(id, code, msg string) {
	b, _ := json.Marshal(struct {
		ID     string `json:"id,omitempty"`
		Event  string `json:"event"`
		Code   string `json:"code"`
		Msg    string `json:"msg"`
		ConnID string `json:"connId"`
	}{id, "error", code, msg, c.connID})
	c.enqueue(b)
}

// validID reports whether id is OKX's optional request id: at most 32
// alphanumerics.
func validID(id string) bool {
	if len(id) > 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if b := id[i]; !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9') {
			return false
		}
	}
	return true
}

// handleLocked handles one text message: "ping" or a request.
func (c *conn) handleLocked(p []byte) {
	s := c.s
	if string(p) == "ping" {
		c.stats.Pings++
		c.enqueue([]byte("pong"))
		return
	}
	var raw map[string]json.RawMessage
	var req struct {
		ID   *string   `json:"id"`
		Op   string    `json:"op"`
		Args []wireArg `json:"args"`
	}
	bad := func(why string) {
		c.stats.BadRequests++
		s.log.Warn("bad request", "conn", c.stats.ID, "why", why, "frame", string(p))
		id := ""
		if req.ID != nil && validID(*req.ID) {
			id = *req.ID
		}
		c.errorLocked(id, "60012", "Invalid request: "+string(p))
	}
	if json.Unmarshal(p, &raw) != nil || json.Unmarshal(p, &req) != nil {
		bad("not a JSON request")
		return
	}
	for k := range raw {
		if k != "id" && k != "op" && k != "args" {
			bad("unknown field " + k)
			return
		}
	}
	id := ""
	if req.ID != nil {
		id = *req.ID
		if !validID(id) {
			req.ID = nil
			bad("id is not ≤32 alphanumerics")
			return
		}
	}
	if req.Op != "subscribe" && req.Op != "unsubscribe" {
		bad("op " + req.Op)
		return
	}
	var rawArgs []map[string]json.RawMessage
	if json.Unmarshal(raw["args"], &rawArgs) != nil || len(rawArgs) == 0 {
		bad("args is not a non-empty array of objects")
		return
	}
	for _, a := range rawArgs {
		if len(a) != 2 || a["channel"] == nil || a["instId"] == nil {
			bad("an arg is not {channel, instId}")
			return
		}
	}
	now := time.Now()
	k := 0
	for k < len(c.reqTimes) && now.Sub(c.reqTimes[k]) >= time.Hour {
		k++
	}
	c.reqTimes = append(c.reqTimes[:0], c.reqTimes[k:]...)
	if len(c.reqTimes) >= s.cfg.MaxRequestsPerHour {
		c.stats.RateLimited++
		s.log.Warn("request over the hourly limit", "conn", c.stats.ID, "limit", s.cfg.MaxRequestsPerHour)
		c.errorLocked(id, "60014", "Requests too frequent")
		return
	}
	c.reqTimes = append(c.reqTimes, now)
	c.stats.Requests++
	if len(raw["args"]) > s.cfg.MaxArgsBytes {
		c.stats.TooLarge++
		c.errorLocked(id, "60012", "Invalid request: the total length of the channels exceeds 64 KB")
		return
	}
	for _, a := range req.Args {
		c.argLocked(id, req.Op, a)
	}
}

// argLocked subscribes or unsubscribes one arg and answers it.
func (c *conn) argLocked(id, op string, a wireArg) {
	s := c.s
	endpoint, bar := channelKind(a.Channel)
	_, listed := s.insts[a.InstID]
	if endpoint != c.endpoint || !listed {
		if endpoint != 0 && listed {
			c.stats.WrongEndpoint++
		} else {
			c.stats.UnknownStreams++
		}
		s.log.Warn("unknown stream", "conn", c.stats.ID, "channel", a.Channel, "instId", a.InstID)
		c.errorLocked(id, "60018", "Wrong URL or channel:"+a.Channel+",instId:"+a.InstID+
			" doesn't exist. Please use the correct URL, channel and parameters referring to API document.")
		return
	}
	name := a.Channel + ":" + a.InstID
	_, had := c.subs[name]
	if op == "subscribe" && !had && a.Channel == "books" {
		n := 0
		for _, sub := range c.subs {
			if sub.channel == "books" {
				n++
			}
		}
		if n >= s.cfg.MaxBookChannels {
			c.stats.TooManyBooks++
			c.errorLocked(id, "60012", "Invalid request: more than "+strconv.Itoa(s.cfg.MaxBookChannels)+
				" book channels on one connection, channel:"+a.Channel+",instId:"+a.InstID)
			return
		}
	}
	if had == (op == "subscribe") {
		c.stats.Redundant++
	}
	b, _ := json.Marshal(struct {
		ID     string  `json:"id,omitempty"`
		Event  string  `json:"event"`
		Arg    wireArg `json:"arg"`
		ConnID string  `json:"connId"`
	}{id, op, a, c.connID})
	c.enqueue(b)
	if op == "unsubscribe" {
		delete(c.subs, name)
		return
	}
	if had {
		return
	}
	c.subs[name] = subscription{channel: a.Channel, inst: a.InstID, bar: bar}
	if a.Channel == "books" {
		c.enqueue(s.insts[a.InstID].bookFrame(true, s.cfg.BookLevels, 0))
	}
}
