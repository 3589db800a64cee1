package downstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/marketgate/marketgate/hub"
)

// StatusSlowConsumer is the close code sent to a client whose write queue
// overflowed on a stream where dropping messages would corrupt what it
// builds (RFC 6455 §7.4.2 leaves 4000-4999 to applications).
const StatusSlowConsumer ws.StatusCode = 4008

// statusTryAgainLater (1013, IANA's WebSocket close code registry) closes
// a dialect connection whose URL streams the node's stream limits refuse.
const statusTryAgainLater ws.StatusCode = 1013

// Source validates stream keys and carries the streams that local clients
// want. In a single node it is the upstream router; in a cluster it is the
// cluster's demand registry. Want and Unwant must not block and must not
// publish synchronously: the server calls them holding its locks.
type Source interface {
	// Validate returns nil for a stream key the gateway can carry, or an
	// error whose text tells the client what is wrong: one wrapping
	// [ErrUnavailable] when the key cannot be checked yet, so that the
	// client is asked to retry rather than told the key is invalid.
	Validate(key string) error
	// Want asks for validated keys to be carried into the hub.
	Want(keys []string)
	// Unwant says no local client wants keys any more.
	Unwant(keys []string)
}

// Normalizer turns exchange events into the normalized form
// (normalize.Set is one).
type Normalizer interface {
	// Normalizable reports whether stream key has a normalized form.
	Normalizable(key string) bool
	// Normalize appends one event's normalized form to dst; ok false:
	// the event is delivered as it is.
	Normalize(dst []byte, key string, data []byte) ([]byte, bool)
}

// Config configures a [Server]. Zero fields take the documented defaults.
type Config struct {
	// Hub delivers stream messages; required.
	Hub hub.Hub
	// Source validates and carries streams; required.
	Source Source
	// Stateful reports whether a stream's messages build a state that a
	// subscriber must start from (an order book: a snapshot, then
	// updates), kept by the hub as the stream's state
	// ([hub.Message.State]). A subscriber of such a stream always gets
	// the state first, read from the hub's history, then every message
	// after it. Nil: none is.
	Stateful func(key string) bool
	// Normalizer gives streams the normalized form a native client may
	// ask for ("format":"normalized"): one schema per class for every
	// exchange, encoded once per message for all who asked. Nil: none.
	Normalizer Normalizer
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// MaxConns is the number of browser connections this node holds at
	// most; beyond it a handshake gets HTTP 503. Each costs a descriptor,
	// and [DescriptorReserve] of the process's limit are kept for
	// everything else: New refuses a MaxConns above the rest. Default
	// 10000, or the rest when that is lower.
	MaxConns int
	// MaxStreamsPerConn bounds the streams one connection may subscribe.
	// Default 1024, Binance's own limit.
	MaxStreamsPerConn int
	// MaxMessageSize bounds a native-protocol client message in bytes;
	// larger ones are closed with 1009. Default 4096.
	MaxMessageSize int64
	// MaxDialectMessageSize bounds a Binance-dialect client message, which
	// may list up to MaxStreamsPerConn streams. Default 64 KiB.
	MaxDialectMessageSize int64
	// WriteQueueBytes bounds each connection's queue of unsent frames.
	// When a message would overflow it, a conflatable stream's message
	// ([hub.Message.Conflate]) replaces the ones of that stream still
	// queued, except final ones ([hub.Message.Final]: a closed candle),
	// which are never dropped; any other closes the connection with
	// [StatusSlowConsumer].
	// Default 1 MiB.
	WriteQueueBytes int
	// Workers is the number of goroutines that read and write connections.
	// Default 16 per CPU, at least 32.
	Workers int
	// ReadTimeout bounds the time a message may take to arrive once its
	// first bytes did. Default 5s.
	ReadTimeout time.Duration
	// WriteTimeout is how long writes to a connection may make no
	// progress (its client reads nothing) before it is dropped. A client
	// that stops reading holds no worker meanwhile. Default 5s.
	WriteTimeout time.Duration
	// CloseGrace is how long a closed connection waits for the client's
	// close reply before its socket is released. Default 1s.
	CloseGrace time.Duration
	// AllowedOrigins lists the browser origins allowed to connect; empty
	// allows any. Requests without an Origin header (non-browsers) pass.
	AllowedOrigins []string
	// MaxConnsPerIP bounds the connections from one remote address; beyond
	// it a handshake gets HTTP 429. Behind a proxy every client shares the
	// proxy's address, so raise it there. Default 1000.
	MaxConnsPerIP int
	// TrustedProxies lists the proxies (load balancers) whose forwarded
	// client address is believed: from a peer in one of these prefixes,
	// the client's address is the rightmost X-Forwarded-For entry that is
	// not a trusted proxy, else X-Real-IP. Per-address limits, the logs
	// and the clients list use it. Empty: the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// MaxStreamsPerIP bounds the distinct streams the connections from one
	// client address (an IPv6 client: its /64) hold together; beyond it a
	// subscribe gets a stream_limit error. Default 2048.
	MaxStreamsPerIP int
	// MaxStreams bounds the distinct streams this node's clients hold
	// together, so that anonymous clients cannot fill the exchanges'
	// capacity; beyond it a subscribe gets a stream_limit error. Default
	// 8192.
	MaxStreams int
	// MaxCommandsPerSecond bounds the messages (commands and pings) a
	// client may send in one second; beyond it the connection is closed
	// with 1008. Default 10.
	MaxCommandsPerSecond int
	// PingInterval is how long a connection may be silent before the
	// server pings it. Default 30s.
	PingInterval time.Duration
	// PongTimeout is how long after that ping a still silent connection is
	// dropped. Default 30s.
	PongTimeout time.Duration
	// DisableCompression turns permessage-deflate (RFC 7692) off. Otherwise
	// a client that offers it gets it, with no context takeover either
	// way, and each stream message is compressed once per node for every
	// such client; replies go uncompressed.
	DisableCompression bool
	// WriteDelay is how long a connection's stream frames may wait for
	// more, so that the frames of the bursts that arrive within it go out
	// in one writev: fewer system calls per delivered frame at the cost
	// of up to WriteDelay of latency. The window opens with the first
	// frame queued after a write and no frame waits longer (a timer ends
	// it); maxBurst frames (16384) end it early. Replies, pongs and close
	// frames never wait. Zero: every burst is written when the hub ends
	// it. At most 100ms.
	WriteDelay time.Duration
	// MaxFramesPerWrite bounds the frames one writev carries (centrifuge's
	// MaxMessagesInFrame plays this part); a connection with more queued
	// gets several writes in a row. Default and most 1024 (IOV_MAX).
	MaxFramesPerWrite int
	// Auth turns browser authentication on (connection tokens, stream
	// patterns, per-user connection limits); nil: off, and every client
	// may subscribe every stream.
	Auth *AuthConfig
}

// DescriptorReserve is how many of the process's descriptors browser
// connections leave to the rest of the node: upstream connections and
// their reconnects, Redis, listeners, the HTTP connections of handshakes
// and of the control API.
const DescriptorReserve = 256

// setDefaults fills in zero fields and checks the rest; fdLimit is the
// process's descriptor limit, 0 if unknown.
func (c *Config) setDefaults(fdLimit uint64) error {
	if c.Hub == nil {
		return errors.New("downstream: config: Hub is required")
	}
	if c.Source == nil {
		return errors.New("downstream: config: Source is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	room := 0 // descriptors browsers may take; 0 if unknown
	if fdLimit > 0 {
		room = int(min(fdLimit, 1<<30)) - DescriptorReserve
		if room < 1 {
			return fmt.Errorf("downstream: the descriptor limit %d leaves no room for browser connections (%d are kept for the rest of the node); raise it (ulimit -n)", fdLimit, DescriptorReserve)
		}
	}
	switch {
	case c.MaxConns == 0 && room > 0:
		c.MaxConns = min(10000, room)
	case c.MaxConns == 0:
		c.MaxConns = 10000
	case room > 0 && c.MaxConns > room:
		return fmt.Errorf("downstream: MaxConns (--max-conns) %d is above what the descriptor limit %d allows (%d, with %d kept for upstream, Redis and listeners); lower it or raise the hard limit (ulimit -Hn)",
			c.MaxConns, fdLimit, room, DescriptorReserve)
	}
	def(&c.MaxStreamsPerConn, 1024)
	def(&c.WriteQueueBytes, 1<<20)
	def(&c.Workers, max(32, 16*runtime.GOMAXPROCS(0)))
	def(&c.MaxConnsPerIP, 1000)
	def(&c.MaxStreamsPerIP, 2048)
	def(&c.MaxStreams, 8192)
	def(&c.MaxCommandsPerSecond, 10)
	def(&c.MaxFramesPerWrite, iovMax)
	if c.WriteDelay < 0 || c.WriteDelay > maxWriteDelay {
		return fmt.Errorf("downstream: config: WriteDelay (--write-delay) %v: want 0 to %v", c.WriteDelay, maxWriteDelay)
	}
	if c.MaxFramesPerWrite < 1 || c.MaxFramesPerWrite > iovMax {
		return fmt.Errorf("downstream: config: MaxFramesPerWrite %d: want 1 to %d", c.MaxFramesPerWrite, iovMax)
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 4096
	}
	if c.MaxDialectMessageSize == 0 {
		c.MaxDialectMessageSize = 64 << 10
	}
	for _, d := range []*time.Duration{&c.ReadTimeout, &c.WriteTimeout} {
		if *d == 0 {
			*d = 5 * time.Second
		}
	}
	if c.CloseGrace == 0 {
		c.CloseGrace = time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.PongTimeout == 0 {
		c.PongTimeout = 30 * time.Second
	}
	if c.PingInterval < 0 || c.PongTimeout < 0 || c.MaxConnsPerIP < 0 || c.MaxCommandsPerSecond < 0 {
		return errors.New("downstream: config: keepalive and rate limits must not be negative")
	}
	if c.Auth != nil {
		a := *c.Auth // the caller's stays as it was
		if err := a.setDefaults(); err != nil {
			return err
		}
		c.Auth = &a
	}
	if c.MaxConns < 0 || c.MaxStreamsPerConn < 0 || c.WriteQueueBytes < 0 || c.Workers < 0 || c.MaxStreamsPerIP < 0 || c.MaxStreams < 0 {
		return errors.New("downstream: config: limits must not be negative")
	}
	return nil
}

// Server serves browser WebSockets: the native protocol at /ws and the
// Binance-compatible dialect under /binance/. It is an http.Handler for the
// handshake only; after the upgrade a connection leaves net/http and is read
// by a bounded worker pool when epoll reports it readable. It also is the
// hub's [hub.Receiver] for every stream its clients subscribe to.
//
// A Server is safe for concurrent use. ServeHTTP answers 503 until Run has
// started and after it has returned.
type Server struct {
	cfg      Config
	log      *slog.Logger
	metrics  *metrics
	nextID   atomic.Uint64
	running  atomic.Bool
	draining atomic.Bool // see Drain
	// origins are the allowed origins: Config.AllowedOrigins, then
	// SetAllowedOrigins's.
	origins atomic.Pointer[[]string]
	// limits are Config's limits, then SetLimits's.
	limits atomic.Pointer[Limits]

	pool   *pool
	poller *poller
	// authPool checks tokens off the connection workers (Config.Auth).
	authPool *pool

	// mu guards the following fields.
	mu     sync.Mutex
	conns  wheel          // the connections held, by keepalive slot
	nconns int            // connections in conns
	perIP  map[string]int // connections (and handshakes in progress) per remote IP
	// emptied receives a token (without blocking) each time the last
	// connection held is released, which Run waits for at shutdown.
	emptied chan struct{}

	// topics maps stream keys to their local subscribers.
	topics registry

	// partials holds the connections with an incomplete read.
	partials partialSet

	// pmu guards pending: the connections with stream frames queued by
	// Receive since the hub's last Flush, each once (conn.writing). burst
	// counts the frames queued since then.
	pmu     sync.Mutex
	pending []*conn
	burst   atomic.Int64
	// starts are the receive times of the events queued since the last
	// round (see received), windowStart the first of them (0: none), and
	// delayTimer ends a write delay's window (armed: it is set).
	starts      []int64
	windowStart int64
	delayTimer  *time.Timer
	delayArmed  bool
	// delayOff: Run is stopping the pool; Flush arms no more windows.
	delayOff bool
	// rounds observes the fan-out duration of events; see round.
	rounds roundLog
	// catchups queues the subscribes waiting for stream history; see
	// recover.go.
	catchups chan *catchup
	// chunks recycles the flush tasks flushNow hands to the pool: a
	// free list rather than a sync.Pool, which every GC empties, so that
	// a steady fan-out allocates none. Bounded by maxFreeChunks.
	cmu    sync.Mutex
	chunks []*flushTask
}

var _ hub.Receiver = (*Server)(nil)

// New returns a Server configured by cfg. It starts nothing; call Run.
func New(cfg Config) (*Server, error) {
	// Raised here, not in Run, so that MaxConns is checked against the
	// limit the server will have.
	fdLimit, limitErr := raiseFileLimit()
	if err := cfg.setDefaults(fdLimit); err != nil {
		return nil, err
	}
	if limitErr != nil {
		cfg.Logger.Warn("cannot raise the descriptor limit", "err", limitErr)
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "downstream"),
		metrics:  newMetrics(),
		perIP:    make(map[string]int),
		emptied:  make(chan struct{}, 1),
		topics:   registry{topics: make(map[string]*topic)},
		catchups: make(chan *catchup, catchupQueue),
	}
	s.SetAllowedOrigins(cfg.AllowedOrigins)
	s.limits.Store(&Limits{MaxConnsPerIP: cfg.MaxConnsPerIP, MaxStreamsPerConn: cfg.MaxStreamsPerConn,
		MaxStreamsPerIP: cfg.MaxStreamsPerIP, MaxStreams: cfg.MaxStreams, MaxCommandsPerSecond: cfg.MaxCommandsPerSecond})
	// Each connection has at most one read, one flush and one close task
	// queued; see pool.
	s.pool = newPool(3*cfg.MaxConns+64, func(v any, stack []byte) {
		s.metrics.internalErrors.Add(1)
		s.log.Error("panic in a worker task", "panic", v, "stack", string(stack))
	})
	s.authPool = newPool(authQueue, func(v any, stack []byte) {
		s.metrics.internalErrors.Add(1)
		s.log.Error("panic in an auth task", "panic", v, "stack", string(stack))
	})
	return s, nil
}

// Run serves connections until ctx ends, then closes every connection with
// 1001 (going away), waits up to CloseGrace for them, and returns nil.
func (s *Server) Run(ctx context.Context) error {
	p, err := newPoller(func(err error) { s.log.Error("epoll wait", "err", err) })
	if err != nil {
		return fmt.Errorf("downstream: %w", err)
	}
	s.poller = p

	poolCtx, stopPool := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.pool.run(poolCtx, s.cfg.Workers) })
	wg.Go(func() { s.keepalive(poolCtx) })
	wg.Go(func() { s.expireReads(poolCtx) })
	for range catchupWorkers {
		wg.Go(func() { s.runCatchups(poolCtx) })
	}
	if a := s.cfg.Auth; a != nil {
		wg.Go(func() { s.authPool.run(poolCtx, a.Workers) })
	}
	s.running.Store(true)

	<-ctx.Done()
	s.running.Store(false)
	s.closeAll(ws.StatusGoingAway, "server shutting down")
	s.awaitEmpty(s.cfg.CloseGrace + s.cfg.WriteTimeout)
	for _, c := range s.snapshot() {
		c.finish()
	}
	// No write-delay window may end after the pool has stopped: its
	// flush would find no worker for connections that are gone anyway.
	s.pmu.Lock()
	s.delayOff = true
	if s.delayArmed {
		s.delayTimer.Stop()
		s.delayArmed = false
	}
	s.pmu.Unlock()
	stopPool()
	wg.Wait()
	if err := p.close(); err != nil {
		return fmt.Errorf("downstream: close epoll: %w", err)
	}
	return nil
}

// awaitEmpty waits until the server holds no connection, or for at most d.
func (s *Server) awaitEmpty(d time.Duration) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for s.ConnCount() > 0 {
		select {
		case <-s.emptied: // a stale token only makes the loop check again
		case <-deadline.C:
			return
		}
	}
}

// Drain makes the server refuse new connections (HTTP 503) while those it
// holds go on, so a node about to stop takes no more clients while it hands
// its upstreams over; its clients are closed with 1001 when Run ends.
func (s *Server) Drain() { s.draining.Store(true) }

// closeAll starts the close handshake on every connection.
func (s *Server) closeAll(code ws.StatusCode, reason string) {
	for _, c := range s.snapshot() {
		c.closeWith(code, reason)
	}
}

// snapshot returns the connections held now.
func (s *Server) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]*conn, 0, s.nconns)
	for _, slot := range s.conns {
		for _, c := range slot {
			all = append(all, c)
		}
	}
	return all
}

// ConnCount returns the number of connections currently held.
func (s *Server) ConnCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nconns
}

// ServeHTTP upgrades WebSocket handshakes on /ws, /binance/ws[/…] and
// /binance/stream, and answers anything else with 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The cheap refusals come first, so that a refused client costs no
	// validation of the streams in its URL.
	if !s.running.Load() {
		s.metrics.rejected("not_running")
		httpError(w, http.StatusServiceUnavailable, "server not running")
		return
	}
	if s.draining.Load() {
		s.metrics.rejected("draining")
		httpError(w, http.StatusServiceUnavailable, "node draining; connect again")
		return
	}
	if !s.originAllowed(r.Header.Get("Origin")) {
		s.metrics.rejected("origin")
		httpError(w, http.StatusForbidden, "origin not allowed")
		return
	}
	addr := clientAddr(r, s.cfg.TrustedProxies)
	ip := ipKey(addr)
	switch s.reserveSlot(ip) {
	case "max_conns":
		s.metrics.rejected("max_conns")
		httpError(w, http.StatusServiceUnavailable, "too many connections")
		return
	case "per_ip":
		s.metrics.rejected("per_ip")
		httpError(w, http.StatusTooManyRequests, "too many connections from this address")
		return
	}
	rt, err := s.route(r)
	if err != nil {
		s.releaseSlot(ip)
		s.metrics.rejected("bad_request")
		httpError(w, err.status, err.msg)
		return
	}
	remote := ""
	if addr != parseAddr(r.RemoteAddr) {
		remote = addr.String()
	}
	id := s.nextID.Add(1)
	// A dialect client's token comes in the URL: checked here, on the
	// handshake's own goroutine, where waiting (JWKS, Redis) stalls no one
	// else. The outcome is told after the upgrade, as a close code.
	var sess *session
	var refuse func(c *conn)
	if _, native := rt.proto.(nativeProto); !native && s.cfg.Auth != nil {
		sess, refuse = s.dialectAuth(r, id, rt)
	}
	deflate := s.deflateOffer() // per handshake; nil when compression is disabled
	nc, rw, _, uerr := ws.HTTPUpgrader{Timeout: s.cfg.WriteTimeout, Negotiate: negotiator(deflate)}.Upgrade(r, w)
	if uerr != nil {
		s.releaseSlot(ip)
		s.releaseCount(id, sess)
		s.metrics.rejected("handshake")
		if nc != nil {
			nc.Close()
		}
		return
	}
	if rw.Reader.Buffered() > 0 {
		// RFC 6455 §4.1: a client must wait for our 101 before it sends.
		s.releaseSlot(ip)
		s.metrics.rejected("early_data")
		nc.Write(closeFrame(ws.StatusProtocolError, "data sent before the handshake completed"))
		nc.Close()
		s.releaseCount(id, sess)
		return
	}
	now := time.Now().UnixNano()
	c := &conn{
		srv:       s,
		id:        id,
		nc:        nc,
		origin:    r.Header.Get("Origin"),
		remote:    remote,
		connected: now,
		proto:     rt.proto,
	}
	c.combined.Store(rt.combined)
	if sess != nil {
		c.sess.Store(sess)
	}
	c.useDeflate(deflate)
	if err := s.poller.prepare(c); err != nil {
		s.releaseSlot(ip)
		c.srv.releaseCount(c.id, sess)
		c.logAt(slog.LevelError, "poll prepare", "err", err)
		nc.Close()
		return
	}
	c.lastRead.Store(now)
	s.mu.Lock()
	s.conns.add(c)
	s.nconns++
	s.metrics.upgrading.Add(-1)
	s.mu.Unlock()
	s.metrics.accepted.Add(1)
	if err := s.poller.add(c, c.onReadable); err != nil {
		c.logAt(slog.LevelError, "poll add", "err", err)
		c.finish()
		return
	}
	if !s.running.Load() {
		// Run began shutting down while this handshake was in flight, and
		// may already have swept the connections: close this one itself.
		c.closeWith(ws.StatusGoingAway, "server shutting down")
		return
	}
	if refuse != nil {
		refuse(c)
		return
	}
	if sess != nil {
		c.rmu.Lock()
		ok := c.setSession(sess)
		c.rmu.Unlock()
		if !ok {
			return
		}
	}
	c.startAuthTimer()
	if len(rt.initial) > 0 {
		// URL streams were validated in route; only the node's stream
		// limits can refuse them now.
		// Like a command's subscribe: the latest values go ahead of any
		// live message.
		var refusal string
		c.subscribeQuiet(nil, rt.initial, func(e *nativeError) []byte { refusal = e.Msg; return nil })
		if refusal != "" {
			c.closeWith(statusTryAgainLater, refusal)
		}
	}
	if rt.unavailable != "" {
		c.closeWith(statusTryAgainLater, rt.unavailable)
	}
}

// route is what a handshake's URL asks for.
type route struct {
	proto protocol
	// combined is, for a Binance dialect connection, whether its stream
	// messages are wrapped as {"stream":…,"data":…} from the start.
	combined bool
	// initial are the valid stream keys named in the URL; the others
	// are ignored, as Binance does.
	initial []string
	// unavailable, when not empty, is why a URL stream cannot be checked
	// yet: the connection is closed with 1013 (try again later) once open,
	// so that the client's reconnect asks again, rather than carrying
	// nothing for a stream that may well be valid.
	unavailable string
}

// route picks the protocol for a handshake request: the native protocol
// at /ws, else the dialect mounted at the path's start, which names the
// streams its URL holds; those are validated here, whole.
func (s *Server) route(r *http.Request) (route, *httpErr) {
	path := r.URL.Path
	if path == "/ws" {
		return route{proto: nativeProto{}}, nil
	}
	for _, d := range dialects {
		if !strings.HasPrefix(path, d.mountPath()) {
			continue
		}
		combined, keys, e, ok := d.handshake(r.URL)
		if !ok {
			break
		}
		if e != nil {
			return route{}, e
		}
		// As on Binance, a name that is not a stream it carries opens the
		// connection all the same and carries nothing: client libraries
		// open /ws/<label> and then send SUBSCRIBE.
		valid := keys[:0]
		var unavailable string
		for _, k := range keys {
			if err := s.cfg.Source.Validate(k); err != nil {
				if errors.Is(err, ErrUnavailable) {
					unavailable = clip(err.Error())
					continue
				}
				s.log.Debug("ignored a URL name that is not a stream", "name", clip(k), "err", err)
				continue
			}
			valid = append(valid, k)
		}
		if unavailable != "" {
			return route{proto: d, combined: combined, unavailable: unavailable}, nil
		}
		keys = dedupe(valid)
		if most := s.limits.Load().MaxStreamsPerConn; len(keys) > most {
			return route{}, &httpErr{http.StatusBadRequest,
				fmt.Sprintf("at most %d streams per connection", most)}
		}
		return route{proto: d, combined: combined, initial: keys}, nil
	}
	return route{}, &httpErr{http.StatusNotFound, "no WebSocket endpoint at " + clip(path)}
}

// reserveSlot counts a connection against MaxConns and MaxConnsPerIP
// before its upgrade. It returns the limit that refuses it, or "".
func (s *Server) reserveSlot(ip string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nconns+int(s.metrics.upgrading.Load()) >= s.cfg.MaxConns {
		return "max_conns"
	}
	if s.perIP[ip] >= s.limits.Load().MaxConnsPerIP {
		return "per_ip"
	}
	s.perIP[ip]++
	s.metrics.upgrading.Add(1)
	return ""
}

// releaseSlot gives back a slot whose handshake failed.
func (s *Server) releaseSlot(ip string) {
	s.mu.Lock()
	s.releaseIPLocked(ip)
	s.mu.Unlock()
	s.metrics.upgrading.Add(-1)
}

func (s *Server) releaseIPLocked(ip string) {
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// forget drops a finished connection from the server.
func (s *Server) forget(c *conn) {
	ip := ipKey(c.clientAddr())
	s.mu.Lock()
	if s.conns.remove(c) {
		s.nconns--
		s.releaseIPLocked(ip)
		if s.nconns == 0 {
			select {
			case s.emptied <- struct{}{}:
			default:
			}
		}
	}
	s.mu.Unlock()
}

// Limits are the limits of [Config] a running [Server] can change with
// [Server.SetLimits]; each means what the Config field of the same name
// does, and must be positive.
type Limits struct {
	MaxConnsPerIP        int
	MaxStreamsPerConn    int
	MaxStreamsPerIP      int
	MaxStreams           int
	MaxCommandsPerSecond int
}

// Limits returns the limits in force.
func (s *Server) Limits() Limits { return *s.limits.Load() }

// SetLimits replaces the limits, for a reload. They apply from then on
// to new handshakes, subscribes and commands; a lower limit closes
// nothing and takes no stream away (a connection above it can subscribe
// nothing more until it is below). It refuses a limit that is not
// positive, changing nothing. Safe for concurrent use.
func (s *Server) SetLimits(l Limits) error {
	for name, n := range map[string]int{"MaxConnsPerIP": l.MaxConnsPerIP, "MaxStreamsPerConn": l.MaxStreamsPerConn,
		"MaxStreamsPerIP": l.MaxStreamsPerIP, "MaxStreams": l.MaxStreams, "MaxCommandsPerSecond": l.MaxCommandsPerSecond} {
		if n <= 0 {
			return fmt.Errorf("downstream: limits: %s %d is not positive", name, n)
		}
	}
	s.limits.Store(&l)
	return nil
}

// SetAllowedOrigins replaces the browser origins allowed to connect
// (Config.AllowedOrigins; empty: any), for a reload. Handshakes from then
// on are checked against origins; connections already open stay. Safe for
// concurrent use; s keeps its own copy.
func (s *Server) SetAllowedOrigins(origins []string) {
	o := slices.Clone(origins)
	s.origins.Store(&o)
}

func (s *Server) originAllowed(origin string) bool {
	allowed := *s.origins.Load()
	if len(allowed) == 0 || origin == "" {
		return true
	}
	return slices.ContainsFunc(allowed, func(o string) bool {
		return strings.EqualFold(o, origin)
	})
}

type httpErr struct {
	status int
	msg    string
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Write(append(body, '\n'))
}
