package bybitsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Server is a simulated Bybit v5 public endpoint of one product. Its
// methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	nextID atomic.Uint64

	// mmu guards the market and every subscription (Server.subs and each
	// conn's subs): a subscription's snapshot and the deltas after it go
	// out in order.
	mmu  sync.Mutex
	mkt  *market
	subs map[string]map[*conn]struct{}

	mu        sync.Mutex // guards the following
	clients   []*conn    // every accepted connection
	open      map[*conn]struct{}
	started   bool
	stopped   bool
	refused   int
	attempts  map[string][]time.Time
	connWG    sync.WaitGroup
	bootstrap time.Time
}

// New validates cfg and builds a Server. It starts nothing: call Run.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "bybitsim", "product", string(cfg.Product)),
		subs:     map[string]map[*conn]struct{}{},
		open:     map[*conn]struct{}{},
		attempts: map[string][]time.Time{},
	}
	s.mkt = newMarket(cfg.Product, cfg.Symbols, cfg.Seed, cfg.Now())
	return s, nil
}

// Product returns the simulated product.
func (s *Server) Product() Product { return s.cfg.Product }

// Run serves on ln and runs the market until ctx ends; then it closes
// every connection with 1001, closes ln and returns nil, or the error of
// serving ln. A Server runs once.
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
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	})
	wg.Go(func() { s.generate(ctx) })
	s.log.Info("serving", "addr", ln.Addr().String(), "path", s.cfg.Product.Path(), "symbols", len(s.cfg.Symbols))
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		cancel()
	}
	s.mu.Lock()
	s.stopped = true
	open := slices.Collect(maps.Keys(s.open))
	s.mu.Unlock()
	for _, c := range open {
		c.close(closeFrame, ws.StatusGoingAway, "server shutdown", "server")
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	if srv.Shutdown(sctx) != nil {
		srv.Close()
	}
	s.connWG.Wait()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("bybitsim: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Handler serves the WebSocket path of the product and the instrument
// list; Run serves it.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v5/market/instruments-info":
		s.serveInstruments(w, r)
	case s.cfg.Product.Path():
		s.serveWS(w, r)
	default:
		http.NotFound(w, r)
	}
}

// serveInstruments answers GET /v5/market/instruments-info?category=…
// with the listed symbols (status Trading) and DELISTEDUSDT (Closed). The
// linear list is paged: limit (default 500, capped by MaxPageSize) per
// page, and a cursor (the next page's offset, opaque to clients) to the
// next; a bad limit or cursor gets retCode 10001.
func (s *Server) serveInstruments(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	cat := r.URL.Query().Get("category")
	if r.Method != http.MethodGet || cat != string(s.cfg.Product) {
		json.NewEncoder(w).Encode(map[string]any{
			"retCode": 10001, "retMsg": "params error: category " + strconv.Quote(cat) + " is not served here",
			"result": map[string]any{}, "retExtInfo": map[string]any{}, "time": s.cfg.Now().UnixMilli(),
		})
		return
	}
	type inst struct {
		Symbol       string `json:"symbol"`
		ContractType string `json:"contractType,omitempty"`
		Status       string `json:"status"`
		BaseCoin     string `json:"baseCoin"`
		QuoteCoin    string `json:"quoteCoin"`
		SettleCoin   string `json:"settleCoin,omitempty"`
	}
	var list []inst
	for _, sym := range append(slices.Clone(s.cfg.Symbols), "DELISTEDUSDT") {
		i := inst{Symbol: sym, Status: "Trading", BaseCoin: sym, QuoteCoin: "USDT"}
		if len(sym) > 4 && sym[len(sym)-4:] == "USDT" {
			i.BaseCoin = sym[:len(sym)-4]
		}
		if sym == "DELISTEDUSDT" {
			i.Status = "Closed"
		}
		if s.cfg.Product == ProductLinear {
			i.ContractType, i.SettleCoin = "LinearPerpetual", "USDT"
		}
		list = append(list, i)
	}
	next := ""
	if s.cfg.Product == ProductLinear {
		var err error
		if list, next, err = page(r.URL.Query(), list, s.cfg.MaxPageSize); err != nil {
			json.NewEncoder(w).Encode(map[string]any{
				"retCode": 10001, "retMsg": "params error: " + err.Error(),
				"result": map[string]any{}, "retExtInfo": map[string]any{}, "time": s.cfg.Now().UnixMilli(),
			})
			return
		}
	}
	json.NewEncoder(w).Encode(map[string]any{
		"retCode": 0, "retMsg": "OK",
		"result":     map[string]any{"category": cat, "list": list, "nextPageCursor": next},
		"retExtInfo": map[string]any{}, "time": s.cfg.Now().UnixMilli(),
	})
}

// page returns the page of list that q's limit (capped at maxSize) and
// cursor ask for and the cursor of the next page ("" after the last).
func page[T any](q url.Values, list []T, maxSize int) ([]T, string, error) {
	limit := min(500, maxSize)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, "", fmt.Errorf("limit %q: want 1 to 1000", v)
		}
		limit = min(n, maxSize)
	}
	from := 0
	if c := q.Get("cursor"); c != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(c, "next:"))
		if !strings.HasPrefix(c, "next:") || err != nil || n <= 0 || n >= len(list) {
			return nil, "", fmt.Errorf("cursor %q is not one this server gave", c)
		}
		from = n
	}
	to := min(from+limit, len(list))
	next := ""
	if to < len(list) {
		next = "next:" + strconv.Itoa(to)
	}
	return list[from:to], next, nil
}

// allowAttempt counts a handshake of r's IP against the attempt limit.
func (s *Server) allowAttempt(r *http.Request) bool {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := s.attempts[ip][:0]
	for _, t := range s.attempts[ip] {
		if now.Sub(t) < s.cfg.ConnAttemptWindow {
			keep = append(keep, t)
		}
	}
	if len(keep) >= s.cfg.MaxConnAttempts {
		s.attempts[ip] = keep
		s.refused++
		return false
	}
	s.attempts[ip] = append(keep, now)
	return true
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.allowAttempt(r) {
		s.log.Warn("connection attempt refused", "remote", r.RemoteAddr)
		http.Error(w, `{"retCode":10006,"retMsg":"Too many visits!"}`, http.StatusTooManyRequests)
		return
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	s.connWG.Add(1)
	s.mu.Unlock()
	defer s.connWG.Done()
	nc, rw, _, err := ws.HTTPUpgrader{Timeout: 5 * time.Second}.Upgrade(r, w)
	if err != nil {
		if nc != nil {
			nc.Close()
		}
		return
	}
	c := s.newConn(nc, r)
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.open[c] = struct{}{}
	s.mu.Unlock()
	c.serve(rw.Reader)
	s.mmu.Lock()
	for name := range c.subs {
		s.unsubLocked(c, name)
	}
	s.mmu.Unlock()
	s.mu.Lock()
	delete(s.open, c)
	s.mu.Unlock()
}

// generate ticks the market until ctx ends.
func (s *Server) generate(ctx context.Context) {
	t := time.NewTicker(s.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.tick(s.cfg.Now())
		}
	}
}

// tick moves every symbol and sends each subscribed topic's events.
func (s *Server) tick(now time.Time) {
	s.mmu.Lock()
	defer s.mmu.Unlock()
	m := s.mkt
	for _, name := range m.order {
		sy := m.syms[name]
		// Candles that ended are sent closed first.
		for iv, c := range sy.candles {
			topic := "kline." + iv + "." + name
			if !now.Before(c.next) {
				n := sy.newCandle(iv, now)
				s.publishLocked(topic, m.klineMessage(sy, iv, []*candle{c, n}, []bool{true, false}, now))
				sy.candles[iv] = n
			}
		}
		trades := m.step(sy, now)
		if len(trades) > 0 {
			s.publishLocked("publicTrade."+name, m.tradeMessage(sy, trades, now))
		}
		if m.prod == ProductSpot {
			s.publishLocked("tickers."+name, m.spotTicker(sy, now))
		} else if sy.ticker != nil {
			vals := sy.linearValues(now)
			if msg := m.linearTicker(sy, sy.ticker, vals, now); msg != nil {
				s.publishLocked("tickers."+name, msg)
			}
			sy.ticker = vals
		}
		for depth, st := range sy.depth {
			topic := "orderbook." + strconv.Itoa(depth) + "." + name
			v := sy.view(depth)
			if depth == 1 {
				if !slices.Equal(v[bid], st.view[bid]) || !slices.Equal(v[ask], st.view[ask]) {
					st.u++
				} else if now.Sub(st.lastSent) < 3*time.Second {
					continue
				}
				st.view, st.lastSent = v, now
				s.publishLocked(topic, m.bookMessage(sy, 1, "snapshot", v, st.u, now))
				continue
			}
			d := [2][]level{diff(st.view[bid], v[bid], bid), diff(st.view[ask], v[ask], ask)}
			if len(d[bid])+len(d[ask]) == 0 {
				continue
			}
			st.u++
			st.view, st.lastSent = v, now
			s.publishLocked(topic, m.bookMessage(sy, depth, "delta", d, st.u, now))
		}
		for iv, c := range sy.candles {
			if len(trades) > 0 {
				s.publishLocked("kline."+iv+"."+name, m.klineMessage(sy, iv, []*candle{c}, []bool{false}, now))
			}
		}
	}
}

// publishLocked sends msg to the subscribers of topic. The caller holds
// s.mmu.
func (s *Server) publishLocked(topic string, msg []byte) {
	for c := range s.subs[topic] {
		c.send(msg)
	}
}

// subscribeLocked adds t to c and sends what a new subscriber gets
// first: the book's snapshot, the linear ticker's snapshot. The caller
// holds s.mmu.
func (s *Server) subscribeLocked(c *conn, t topic, now time.Time) {
	if s.subs[t.name] == nil {
		s.subs[t.name] = map[*conn]struct{}{}
	}
	s.subs[t.name][c] = struct{}{}
	c.subs[t.name] = struct{}{}
	c.chars += len(t.name)
	sy := s.mkt.syms[t.symbol]
	switch t.kind {
	case topicBook:
		st := sy.depth[t.depth]
		if st == nil {
			st = &depthState{u: 1 + int64(hash(t.name)%100000)*100, view: sy.view(t.depth), lastSent: now}
			sy.depth[t.depth] = st
		}
		c.send(s.mkt.bookMessage(sy, t.depth, "snapshot", st.view, st.u, now))
	case topicTicker:
		if s.mkt.prod == ProductLinear {
			if sy.ticker == nil {
				sy.ticker = sy.linearValues(now)
			}
			c.send(s.mkt.linearTicker(sy, nil, sy.ticker, now))
		}
	case topicKline:
		if sy.candles[t.interval] == nil {
			sy.candles[t.interval] = sy.newCandle(t.interval, now)
		}
	}
}

// unsubLocked removes topic name from c. The caller holds s.mmu.
func (s *Server) unsubLocked(c *conn, name string) {
	if _, ok := c.subs[name]; !ok {
		return
	}
	delete(c.subs, name)
	c.chars -= len(name)
	delete(s.subs[name], c)
	if len(s.subs[name]) == 0 {
		delete(s.subs, name)
		if t, ok := parseTopic(name); ok {
			sy := s.mkt.syms[t.symbol]
			switch t.kind {
			case topicBook:
				delete(sy.depth, t.depth)
			case topicKline:
				delete(sy.candles, t.interval)
			case topicTicker:
				sy.ticker = nil
			}
		}
	}
}

func (s *Server) listed(sym string) bool {
	_, ok := s.mkt.syms[sym]
	return ok
}

// --- knobs ---

// ShutdownMessage is the notice SendShutdown sends. Bybit documents no
// such notice; the gateway's dialect (upstream/bybit) takes it as one.
const ShutdownMessage = `{"op":"shutdown","ret_msg":"the connection will be closed for a service upgrade, please reconnect"}`

// SendShutdown sends [ShutdownMessage] to every open connection and, if
// closeAfter is not negative, closes each with 1001 that long later.
func (s *Server) SendShutdown(closeAfter time.Duration) {
	for _, c := range s.openConns() {
		c.send([]byte(ShutdownMessage))
		if closeAfter >= 0 {
			time.AfterFunc(closeAfter, func() { c.close(closeFrame, ws.StatusGoingAway, "service upgrade", "server") })
		}
	}
}

// DropAll closes every open connection's TCP connection without a close
// frame, as a network failure would.
func (s *Server) DropAll() {
	for _, c := range s.openConns() {
		c.close(closeAbrupt, ws.StatusAbnormalClosure, "dropped", "server")
	}
}

// DropOne closes the TCP connection of one open connection, picked at
// random, without a close frame, and reports whether there was one.
func (s *Server) DropOne() bool {
	open := s.openConns()
	if len(open) == 0 {
		return false
	}
	open[rand.IntN(len(open))].close(closeAbrupt, ws.StatusAbnormalClosure, "dropped", "server")
	return true
}

// Subscriptions returns how many connections subscribe to each topic.
func (s *Server) Subscriptions() map[string]int {
	s.mmu.Lock()
	defer s.mmu.Unlock()
	out := make(map[string]int, len(s.subs))
	for name, cs := range s.subs {
		out[name] = len(cs)
	}
	return out
}

func (s *Server) openConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.open))
}

// OpenConnections returns the number of open connections.
func (s *Server) OpenConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// Accepted returns the number of connections ever accepted.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

// RefusedAttempts returns the handshakes refused for too many attempts.
func (s *Server) RefusedAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Clients returns the stats of every connection ever accepted, in accept
// order.
func (s *Server) Clients() []ClientStats {
	s.mu.Lock()
	cs := slices.Clone(s.clients)
	s.mu.Unlock()
	out := make([]ClientStats, len(cs))
	for i, c := range cs {
		out[i] = c.stats()
	}
	return out
}

// Violations sums every connection's violations and the refused
// connection attempts.
func (s *Server) Violations() int {
	n := s.RefusedAttempts()
	for _, c := range s.Clients() {
		n += c.Violations()
	}
	return n
}
