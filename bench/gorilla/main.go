// Command gorilla is the baseline that marketgate is measured against: the
// fan-out server people usually write with github.com/gorilla/websocket.
// It speaks marketgate's native protocol at /ws (subscribe, unsubscribe,
// list and ping; {"stream","seq","data"} messages) and gets its data from
// a Binance-compatible exchange (the simulator) over one upstream
// WebSocket, /stream?streams=…, carrying every stream any client wants.
//
// It is deliberately simple and typical, not tuned:
//   - two goroutines per connection, a reader and a writer, with a buffered
//     channel of 256 messages between the hub and the writer (as in
//     gorilla's chat example), 1 KiB read and write buffers;
//   - one upstream reader that decodes each event with encoding/json,
//     encodes the envelope once and hands the same bytes to every
//     subscriber's channel; WriteMessage frames them per connection;
//   - a client whose channel is full is dropped (closed);
//   - new streams are subscribed upstream with batched SUBSCRIBE requests,
//     at most 4 a second (Binance allows 5); nothing is unsubscribed.
//
// It is not product code: no origin checks, no stream validation beyond
// the "binance:" prefix, no shards beyond one upstream connection.
//
//	gorilla --listen 127.0.0.1:8081 --upstream ws://127.0.0.1:9443
//
// GET /debug/goroutines answers runtime.NumGoroutine() for wsbench's
// --goroutines-url.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

const (
	writeWait      = 10 * time.Second
	pongWait       = 60 * time.Second
	pingPeriod     = pongWait * 9 / 10
	maxMessageSize = 4096
	sendBuffer     = 256
	prefix         = "binance:"
	// subscribeEvery paces upstream requests within Binance's 5 a second.
	subscribeEvery = 250 * time.Millisecond
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	CheckOrigin:     func(*http.Request) bool { return true },
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve /ws on")
	upstreamURL := flag.String("upstream", "ws://127.0.0.1:9443", "base ws:// URL of the Binance-compatible exchange")
	micro := flag.Bool("microsecond-times", false, "ask the exchange for event times in microseconds (timeUnit=MICROSECOND)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h := &hub{subs: map[string]map[*client]struct{}{}, log: log}
	up := &upstream{base: strings.TrimSuffix(*upstreamURL, "/"), micro: *micro, hub: h, log: log, wanted: map[string]bool{}}
	h.up = up

	mux := http.NewServeMux()
	mux.HandleFunc("/ws", h.serveWS)
	mux.HandleFunc("/debug/goroutines", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, runtime.NumGoroutine())
	})
	srv := &http.Server{Addr: *listen, Handler: mux}

	var wg sync.WaitGroup
	wg.Go(func() { up.run(ctx) })
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		h.closeAll()
	})
	wg.Go(func() { h.reportDrops(ctx) })
	log.Info("listening", "addr", *listen, "upstream", up.base)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("listen", "err", err)
		stop()
		wg.Wait()
		os.Exit(1)
	}
	wg.Wait()
}

// hub maps streams to their subscribers.
type hub struct {
	log *slog.Logger
	up  *upstream

	mu   sync.RWMutex
	subs map[string]map[*client]struct{}

	dropped atomic.Int64
}

type client struct {
	hub  *hub
	conn *websocket.Conn
	send chan []byte

	mu      sync.Mutex
	streams map[string]bool
	closed  bool
}

func (h *hub) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered
	}
	c := &client{hub: h, conn: conn, send: make(chan []byte, sendBuffer), streams: map[string]bool{}}
	go c.writePump()
	go c.readPump()
}

// enqueue queues msg for c; a client that does not keep up is dropped.
func (c *client) enqueue(msg []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	select {
	case c.send <- msg:
		return true
	default:
		return false
	}
}

// drop unsubscribes c from everything and ends its writer, which closes
// the connection.
func (c *client) drop() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	streams := c.streams
	c.streams = nil
	close(c.send)
	c.mu.Unlock()
	c.hub.mu.Lock()
	for s := range streams {
		delete(c.hub.subs[s], c)
	}
	c.hub.mu.Unlock()
}

func (h *hub) closeAll() {
	h.mu.RLock()
	var all []*client
	for _, m := range h.subs {
		for c := range m {
			all = append(all, c)
		}
	}
	h.mu.RUnlock()
	for _, c := range all {
		c.drop()
	}
}

type command struct {
	Op      string          `json:"op"`
	ID      json.RawMessage `json:"id"`
	Streams []string        `json:"streams"`
}

type replyError struct {
	Code    string   `json:"code"`
	Msg     string   `json:"msg"`
	Streams []string `json:"streams,omitempty"`
}

type reply struct {
	ID     json.RawMessage `json:"id"`
	Result any             `json:"result,omitempty"`
	Error  *replyError     `json:"error,omitempty"`
}

type streamsResult struct {
	Streams []string `json:"streams"`
}

func (c *client) readPump() {
	defer func() {
		c.drop()
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxMessageSize)
	_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
		var cmd command
		if err := json.Unmarshal(msg, &cmd); err != nil {
			c.reply(reply{Error: &replyError{Code: "bad_request", Msg: "invalid JSON: " + err.Error()}})
			continue
		}
		if len(cmd.ID) == 0 {
			cmd.ID = json.RawMessage("null")
		}
		c.handle(cmd)
	}
}

func (c *client) handle(cmd command) {
	switch cmd.Op {
	case "subscribe", "unsubscribe":
		if len(cmd.Streams) == 0 {
			c.reply(reply{ID: cmd.ID, Error: &replyError{Code: "bad_request", Msg: "streams must be a non-empty list"}})
			return
		}
		var bad []string
		for _, s := range cmd.Streams {
			if name, ok := strings.CutPrefix(s, prefix); !ok || name == "" || strings.ContainsAny(name, "/ ") {
				bad = append(bad, s)
			}
		}
		if len(bad) > 0 {
			c.reply(reply{ID: cmd.ID, Error: &replyError{Code: "invalid_stream", Msg: "unknown stream", Streams: bad}})
			return
		}
		if cmd.Op == "subscribe" {
			// The reply is queued before the first message can be.
			c.reply(reply{ID: cmd.ID, Result: streamsResult{cmd.Streams}})
			c.hub.subscribe(c, cmd.Streams)
		} else {
			c.hub.unsubscribe(c, cmd.Streams)
			c.reply(reply{ID: cmd.ID, Result: streamsResult{cmd.Streams}})
		}
	case "list":
		c.mu.Lock()
		list := []string{}
		for s := range c.streams {
			list = append(list, s)
		}
		c.mu.Unlock()
		c.reply(reply{ID: cmd.ID, Result: streamsResult{list}})
	case "ping":
		c.reply(reply{ID: cmd.ID, Result: "pong"})
	default:
		c.reply(reply{ID: cmd.ID, Error: &replyError{Code: "unknown_op", Msg: "unknown op " + strconv.Quote(cmd.Op)}})
	}
}

func (c *client) reply(r reply) {
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	if !c.enqueue(b) {
		c.drop()
	}
}

// subscribe adds c to streams. Lock order: hub.mu, then client.mu.
func (h *hub) subscribe(c *client, streams []string) {
	h.mu.Lock()
	c.mu.Lock()
	if !c.closed {
		for _, s := range streams {
			c.streams[s] = true
			m := h.subs[s]
			if m == nil {
				m = map[*client]struct{}{}
				h.subs[s] = m
			}
			m[c] = struct{}{}
		}
	}
	c.mu.Unlock()
	h.mu.Unlock()
	h.up.want(streams)
}

func (h *hub) unsubscribe(c *client, streams []string) {
	h.mu.Lock()
	c.mu.Lock()
	for _, s := range streams {
		delete(c.streams, s)
		delete(h.subs[s], c)
	}
	c.mu.Unlock()
	h.mu.Unlock()
}

// publish sends one encoded message to every subscriber of key.
func (h *hub) publish(key string, msg []byte) {
	var slow []*client
	h.mu.RLock()
	for c := range h.subs[key] {
		if !c.enqueue(msg) {
			slow = append(slow, c)
		}
	}
	h.mu.RUnlock()
	for _, c := range slow {
		h.dropped.Add(1)
		c.drop()
	}
}

// reportDrops logs the slow clients dropped, every 5 s while there are new ones.
func (h *hub) reportDrops(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n := h.dropped.Load(); n != last {
			h.log.Warn("dropped slow clients", "total", n, "new", n-last)
			last = n
		}
	}
}

func (c *client) writePump() {
	ticker := time.NewTicker(pingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case msg, ok := <-c.send:
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if !ok {
				_ = c.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""))
				return
			}
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
		case <-ticker.C:
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

// upstream is the one connection to the exchange.
type upstream struct {
	base  string
	micro bool // timeUnit=MICROSECOND
	hub   *hub
	log   *slog.Logger

	mu      sync.Mutex
	wanted  map[string]bool // exchange stream names
	order   []string
	pending []string
	conn    *websocket.Conn
}

// want makes sure the streams (keys) are subscribed upstream.
func (u *upstream) want(keys []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, k := range keys {
		name := strings.TrimPrefix(k, prefix)
		if !u.wanted[name] {
			u.wanted[name] = true
			u.order = append(u.order, name)
			u.pending = append(u.pending, name)
		}
	}
}

// run keeps the upstream connected until ctx ends, reconnecting a second
// after each failure.
func (u *upstream) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { u.subscriber(ctx) })
	defer wg.Wait()
	seq := map[string]uint64{}
	for ctx.Err() == nil {
		if err := u.session(ctx, seq); err != nil && ctx.Err() == nil {
			u.log.Warn("upstream", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (u *upstream) session(ctx context.Context, seq map[string]uint64) error {
	u.mu.Lock()
	var query []string
	if len(u.order) > 0 {
		query = append(query, "streams="+strings.Join(u.order, "/"))
	}
	if u.micro {
		query = append(query, "timeUnit=MICROSECOND")
	}
	url := u.base + "/stream"
	if len(query) > 0 {
		url += "?" + strings.Join(query, "&")
	}
	u.pending = nil
	u.mu.Unlock()
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		return fmt.Errorf("dial %s: %w", u.base, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	u.mu.Lock()
	u.conn = conn
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		u.conn = nil
		u.mu.Unlock()
	}()
	u.log.Info("upstream connected", "url", url)

	var env struct {
		Stream string          `json:"stream"`
		Data   json.RawMessage `json:"data"`
	}
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		env.Stream, env.Data = "", nil
		if err := json.Unmarshal(msg, &env); err != nil || env.Stream == "" {
			continue // a reply to SUBSCRIBE
		}
		key := prefix + env.Stream
		seq[key]++
		out, err := json.Marshal(struct {
			Stream string          `json:"stream"`
			Seq    uint64          `json:"seq"`
			Data   json.RawMessage `json:"data"`
		}{key, seq[key], env.Data})
		if err != nil {
			continue
		}
		u.hub.publish(key, out)
	}
}

// subscriber sends the pending streams upstream, one SUBSCRIBE at most
// every subscribeEvery. Pongs are written by gorilla's default ping
// handler, which may run concurrently with this writer.
func (u *upstream) subscriber(ctx context.Context) {
	t := time.NewTicker(subscribeEvery)
	defer t.Stop()
	id := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		u.mu.Lock()
		conn, batch := u.conn, u.pending
		if conn == nil || len(batch) == 0 {
			u.mu.Unlock()
			continue
		}
		if len(batch) > 200 {
			batch = batch[:200]
		}
		u.pending = u.pending[len(batch):]
		u.mu.Unlock()
		id++
		req, _ := json.Marshal(map[string]any{"method": "SUBSCRIBE", "params": batch, "id": id})
		_ = conn.SetWriteDeadline(time.Now().Add(writeWait))
		if err := conn.WriteMessage(websocket.TextMessage, req); err != nil {
			u.log.Warn("subscribe upstream", "err", err)
		}
	}
}
