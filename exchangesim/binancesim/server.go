package binancesim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Server is a simulated Binance Spot or USD-M futures market-stream and
// REST endpoint, as [Config.Mode] selects. Its methods are safe for
// concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	mkt    *market
	reg    *registry
	nextID atomic.Uint64
	// prod is what the product of Config.Mode does its own way.
	prod *product
	// gov is the REST weight accounting; clock its real clock (tests
	// replace it before Run).
	gov    *governor
	clock  func() time.Time
	paused atomic.Bool // Pause: the generator does not tick

	mu         sync.Mutex      // guards the following
	clients    []*clientRecord // every accepted connection, in accept order
	open       []*conn         // open connections, in accept order
	started    bool
	stopped    bool // Run is shutting down or has returned
	rejections int
	attempts   map[string][]time.Time // handshake attempts per IP, last 5 minutes
	connWG     sync.WaitGroup         // connections being served
}

// New validates cfg and builds a Server with its market state. It starts
// nothing: call [Server.Run], or serve [Server.Handler] yourself.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	prod, _ := productFor(cfg.Mode) // withDefaults checked the mode
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "binancesim", "mode", string(cfg.Mode)),
		reg:      newRegistry(),
		prod:     prod,
		attempts: map[string][]time.Time{},
		gov:      newGovernor(),
		clock:    time.Now,
	}
	s.mkt = newMarket(cfg.Symbols, cfg.Seed, cfg.TickInterval.Microseconds(), cfg.Now().UnixMicro(), prod)
	return s, nil
}

// Run serves HTTP and WebSocket on ln and runs the market generator until
// ctx ends. Then it sends serverShutdown to every connection (spot mode
// only: USD-M documents no such event), closes them with 1001 "Server
// shutdown", closes ln, waits for its goroutines and returns nil. It
// returns an error only if serving ln fails. A Server can be run once;
// afterwards it refuses new connections with HTTP 503.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	if ln == nil {
		return ErrNilListener
	}
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrAlreadyRun
	}
	s.started = true
	s.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	})
	wg.Go(func() { s.generate(ctx) })
	if s.cfg.DropEvery > 0 {
		wg.Go(func() { s.dropEvery(ctx) })
	}
	s.log.Info("serving", "addr", ln.Addr().String(), "symbols", len(s.cfg.Symbols))

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		cancel()
	}
	s.shutdownConns()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		srv.Close()
	}
	wg.Wait()
	if err != nil {
		return fmt.Errorf("binancesim: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// shutdownConns stops accepting connections, closes every open one
// gracefully and waits for them; stragglers are dropped after a bound.
func (s *Server) shutdownConns() {
	s.mu.Lock()
	s.stopped = true
	open := s.openConnsLocked()
	s.mu.Unlock()
	for _, c := range open {
		if s.prod.shutdownEvent {
			c.sendServerShutdown()
		}
		c.closeWith(closeRecord{code: ws.StatusGoingAway, reason: closeShutdownReason, mode: closeDrain, by: byServer})
	}
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(closeGrace + s.cfg.WriteTimeout):
	}
	s.DropAll()
	<-done
}

// openConnsLocked lists the open connections; s.mu must be held.
func (s *Server) openConnsLocked() []*conn {
	return slices.Clone(s.open)
}

// generate runs the market until ctx ends.
func (s *Server) generate(ctx context.Context) {
	phases := 1
	if s.cfg.Stagger {
		phases = max(1, min(len(s.mkt.syms), int(s.cfg.TickInterval/time.Millisecond)))
	}
	t := time.NewTicker(s.cfg.TickInterval / time.Duration(phases))
	defer t.Stop()
	for phase := 0; ; phase = (phase + 1) % phases {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.tick(phase, phases)
		}
	}
}

// tick advances the symbols of phase (of phases per tick: symbol i is in
// phase i%phases) one step and pushes their due events; the market-wide
// streams go with phase 0, and the last phase ends the tick.
func (s *Server) tick(phase, phases int) {
	m := s.mkt
	now := s.cfg.Now().UnixMicro()
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.paused.Load() {
		return
	}
	if phase == 0 {
		m.ticks++
	}
	for i, sy := range m.syms {
		if i%phases == phase {
			sy.step(m.rng, now, m.alpha)
			sy.armGap(m)
		}
	}
	s.reg.mu.RLock()
	for key, ss := range s.reg.bySym {
		var sy *symbolState // nil for the market-wide streams
		if key == marketWide {
			if phase != 0 {
				continue
			}
		} else if sy = m.bySym[key]; sy == nil || sy.index%phases != phase {
			continue // well-formed stream of an unknown symbol: silent
		}
		for _, sub := range ss.streams {
			m.emit(sy, sub, now)
		}
	}
	s.reg.mu.RUnlock()
	if phase == phases-1 {
		m.endPeriods()
	}
}

// knownSymbol reports whether a stream's symbol part is listed.
// marketWide counts as known.
func (s *Server) knownSymbol(lower string) bool {
	if lower == marketWide {
		return true
	}
	_, ok := s.mkt.bySym[lower]
	return ok
}

// Handler returns the http.Handler serving the WebSocket endpoints and the
// REST endpoints. Spot: /ws, /ws/<streams>, /stream?streams=, and
// /api/v3/ exchangeInfo, depth, klines, trades, ticker/24hr, time and
// ping. Futures: the same WebSocket forms under /public and /market (and
// unrouted, served like /public), and the same REST calls under
// /fapi/v1/; /private is refused. Every other path
// is HTTP 404.
// Market data is generated only while [Server.Run] is active; without Run
// the handler still answers every method and REST call, the market stands
// still, and connections live until the client closes them or
// [Server.DropAll] is called.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rt, rest, private := s.prod.splitRoute(r.URL.Path)
	switch {
	case private:
		s.reject(w, r, http.StatusNotFound, "404 page not found: user data streams (/private) are not simulated")
	case rest == "/ws" || strings.HasPrefix(rest, "/ws/"):
		s.serveWS(w, r, splitStreams(strings.TrimPrefix(rest, "/ws")), false, rt)
	case rest == "/stream":
		s.serveWS(w, r, splitStreams(rawQueryParam(r.URL.RawQuery, "streams")), true, rt)
	default:
		if !s.serveREST(w, r) {
			// /stream/<anything> and /public/stream/<x> land here: HTTP
			// 404 at the handshake. So does the other product's REST.
			s.reject(w, r, http.StatusNotFound, "404 page not found")
		}
	}
}

// splitStreams splits "a/b/c" into names, dropping empty segments.
func splitStreams(s string) []string {
	var out []string
	for name := range strings.SplitSeq(s, "/") {
		if name != "" {
			out = append(out, name)
		}
	}
	return out
}

// rawQueryParam returns the first value of key in a raw query, unescaped
// without turning '+' into a space, so kline_1m@+08:00 survives unencoded.
func rawQueryParam(raw, key string) string {
	for kv := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k != key {
			continue
		}
		if u, err := url.PathUnescape(v); err == nil {
			return u
		}
		return v
	}
	return ""
}

// parseTimeUnit reads the timeUnit query parameter: MICROSECOND or
// MILLISECOND, upper or lower case, given at most once.
func parseTimeUnit(r *http.Request) (micro, ok bool) {
	vs, present := r.URL.Query()["timeUnit"]
	if !present {
		return false, true
	}
	if len(vs) != 1 {
		return false, false
	}
	switch vs[0] {
	case "MICROSECOND", "microsecond":
		return true, true
	case "MILLISECOND", "millisecond":
		return false, true
	}
	return false, false
}

// reject answers an HTTP error; a refused WebSocket handshake is counted in
// [Server.Rejections].
func (s *Server) reject(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		s.mu.Lock()
		s.rejections++
		s.mu.Unlock()
		s.log.Info("handshake refused", "status", status, "uri", r.URL.RequestURI(), "detail", msg)
	}
	http.Error(w, msg, status)
}

// allowAttempt records a handshake attempt from r's IP and reports whether
// it is within MaxConnectionAttempts per 5 minutes.
func (s *Server) allowAttempt(r *http.Request) bool {
	if s.cfg.MaxConnectionAttempts < 0 {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	recent := s.attempts[host]
	k := 0
	for k < len(recent) && now.Sub(recent[k]) >= 5*time.Minute {
		k++
	}
	recent = append(recent[k:], now)
	s.attempts[host] = recent
	return len(recent) <= s.cfg.MaxConnectionAttempts
}

// serveWS validates a handshake request, upgrades it and serves the
// connection until it ends. rt is the futures route of the path.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request, names []string, combined bool, rt route) {
	if !s.allowAttempt(r) {
		s.reject(w, r, http.StatusTooManyRequests, `{"code":-1003,"msg":"Too many connection attempts."}`)
		return
	}
	micro, ok := parseTimeUnit(r)
	if !s.prod.timeUnit {
		// USD-M documents no timeUnit: the parameter is ignored, times
		// stay in milliseconds.
		micro, ok = false, true
	}
	if !ok {
		s.reject(w, r, http.StatusBadRequest, `{"code":-1100,"msg":"Illegal characters found in parameter 'timeUnit'; legal range is 'MICROSECOND, microsecond, MILLISECOND, millisecond'."}`)
		return
	}
	var specs []streamSpec
	malformed := 0
	dup := map[string]bool{}
	for _, name := range names {
		sp, ok := s.prod.grammar.parse(name)
		switch {
		case !ok:
			malformed++ // accepted and silent, like an unknown stream, as observed
		case !dup[name]:
			dup[name] = true
			specs = append(specs, sp)
		}
	}
	if len(specs) > s.cfg.MaxStreams {
		s.reject(w, r, http.StatusBadRequest, `{"code":4,"msg":"Too many subscriptions"}`)
		return
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		s.reject(w, r, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	s.connWG.Add(1)
	s.mu.Unlock()
	defer s.connWG.Done()

	// Record the connection and its URL streams before the 101 goes out,
	// so a client whose dial returned is already in Clients() and
	// Subscriptions(). Events queued meanwhile wait for the writer.
	c := s.newConn(r, specs, malformed, combined, micro, rt)
	s.addConn(c)
	s.reg.add(c, specs)
	up := ws.HTTPUpgrader{Timeout: 5 * time.Second}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		if nc != nil {
			nc.Close()
		}
		s.log.Debug("upgrade failed", "uri", r.URL.RequestURI(), "err", err)
		c.closeWith(closeRecord{code: ws.StatusAbnormalClosure, mode: closeNoFrame, by: byNetwork})
		c.release()
		s.forgetConn(c)
		return
	}
	c.serve(nc, rw.Reader)
}

// DropAll abruptly closes every open connection's TCP connection, without a
// close frame, as a network failure would. Their stats show CloseCode 1006
// and ClosedBy "server". It may be called any number of times, also
// concurrently and while clients reconnect: each call drops the
// connections open at that moment; a connection whose handshake is still
// in progress is not dropped.
func (s *Server) DropAll() {
	s.mu.Lock()
	open := s.openConnsLocked()
	s.mu.Unlock()
	for _, c := range open {
		c.closeWith(closeRecord{code: ws.StatusAbnormalClosure, reason: "dropped", mode: closeNoFrame, by: byServer})
		c.nc.Close()
	}
}

// DropOne abruptly closes the TCP connection of one open connection,
// picked at random, as [Server.DropAll] closes all of them: no close frame,
// CloseCode 1006 in its stats. It reports whether there was one to drop.
// Safe for concurrent use.
func (s *Server) DropOne() bool {
	s.mu.Lock()
	open := s.openConnsLocked()
	s.mu.Unlock()
	if len(open) == 0 {
		return false
	}
	c := open[rand.IntN(len(open))]
	c.closeWith(closeRecord{code: ws.StatusAbnormalClosure, reason: "dropped", mode: closeNoFrame, by: byServer})
	c.nc.Close()
	s.log.Info("dropped one connection", "conn", c.id)
	return true
}

// dropEvery drops one random connection every [Config.DropEvery] until
// ctx ends.
func (s *Server) dropEvery(ctx context.Context) {
	t := time.NewTicker(s.cfg.DropEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.DropOne()
		}
	}
}

// CloseAll closes every open connection with a close frame carrying code
// and reason, after the frames already queued for it.
func (s *Server) CloseAll(code int, reason string) {
	s.mu.Lock()
	open := s.openConnsLocked()
	s.mu.Unlock()
	for _, c := range open {
		c.closeWith(closeRecord{code: ws.StatusCode(code), reason: reason, mode: closeDrain, by: byServer})
	}
}

// SendServerShutdown pushes the serverShutdown event (Binance's notice of
// a server about to restart) to every
// open connection: {"e":"serverShutdown","E":...} on raw connections and
// {"stream":"!serverShutdown","data":{...}} on combined ones. If closeAfter
// is not negative, each connection is then closed with 1001 "Server
// shutdown" that long after the event. It sends the event in futures mode
// too, where Binance documents none: a test that calls it asks for it.
func (s *Server) SendServerShutdown(closeAfter time.Duration) {
	s.mu.Lock()
	open := s.openConnsLocked()
	s.mu.Unlock()
	for _, c := range open {
		c.sendServerShutdown()
		if closeAfter >= 0 {
			select {
			case c.shutdownIn <- closeAfter:
			default:
			}
		}
	}
}
