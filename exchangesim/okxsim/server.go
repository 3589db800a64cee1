package okxsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// Errors of [Server.Run].
var (
	ErrNilListener = errors.New("okxsim: nil listener")
	ErrAlreadyRun  = errors.New("okxsim: Run called twice")
)

// Server is a simulated OKX v5 public market-data endpoint. Its methods
// are safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	wg sync.WaitGroup // connection goroutines and the WebSocket handlers

	// mu guards the following fields: the market and every connection's
	// subscriptions and counters, so that a book's snapshot is queued in
	// order with its updates.
	mu       sync.Mutex
	rnd      *rand.Rand
	insts    map[string]*instrument
	order    []string
	conns    map[*conn]struct{}
	all      []*conn
	attempts map[string][]time.Time
	refused  int
	started  bool
	closing  bool
}

// New validates cfg and builds a Server. It starts nothing: [Server.Run]
// serves.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, rnd: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6f6b78)),
		insts: map[string]*instrument{}, conns: map[*conn]struct{}{}, attempts: map[string][]time.Time{}}
	for _, id := range cfg.Instruments {
		if _, dup := s.insts[id]; dup {
			continue
		}
		s.insts[id] = newInstrument(id, cfg.BookLevels, s.rnd)
		s.order = append(s.order, id)
	}
	return s, nil
}

// Run serves ln and runs the market until ctx ends, then closes every
// connection and returns nil, or the listener's error.
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
	s.log.Info("serving", "addr", ln.Addr().String(), "instruments", len(s.order))
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		cancel()
	}
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		c.close(ws.StatusGoingAway, "server shutdown")
	}
	s.mu.Unlock()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		srv.Close()
	}
	wg.Wait()
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("okxsim: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// generate ticks the market until ctx ends.
func (s *Server) generate(ctx context.Context) {
	t := time.NewTicker(s.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.tick(now)
		}
	}
}

// tick moves every instrument, pushes each subscribed channel once, and
// closes idle connections and those whose notice ran out.
func (s *Server) tick(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := make(map[string]int64, len(s.insts))
	for _, id := range s.order {
		in := s.insts[id]
		prev[id] = in.seq
		in.step(s.rnd, s.cfg.BookLevels, now)
	}
	frames := map[string][][]byte{}
	for c := range s.conns {
		switch {
		case !c.closeAt.IsZero() && !now.Before(c.closeAt):
			c.close(ws.StatusGoingAway, "service upgrade")
			continue
		case now.Sub(c.lastRecv) > s.cfg.IdleTimeout:
			c.stats.IdleClosed++
			s.log.Warn("closing an idle connection", "conn", c.stats.ID, "idle", now.Sub(c.lastRecv))
			c.close(ws.StatusNormalClosure, "no data for 30 s")
			continue
		}
		for name, sub := range c.subs {
			fs, ok := frames[name]
			if !ok {
				fs = s.framesLocked(sub, prev[sub.inst], now)
				frames[name] = fs
			}
			for _, f := range fs {
				c.enqueue(f)
			}
		}
	}
}

// framesLocked builds one tick's messages of a channel.
func (s *Server) framesLocked(sub subscription, prevSeq int64, now time.Time) [][]byte {
	in := s.insts[sub.inst]
	one := func(b []byte) [][]byte {
		if b == nil {
			return nil
		}
		return [][]byte{b}
	}
	switch sub.channel {
	case "trades":
		return one(in.tradesFrame())
	case "tickers":
		return one(in.tickerFrame())
	case "books":
		return one(in.bookFrame(false, s.cfg.BookLevels, prevSeq))
	case "books5":
		return one(in.topFrame("books5", 5))
	case "bbo-tbt":
		return one(in.topFrame("bbo-tbt", 1))
	}
	return in.candleFrames(sub.channel, sub.bar, now, s.cfg.CandleInterval)
}

// Handler serves the WebSocket endpoints and the REST instrument list.
// Market data flows only while [Server.Run] is active.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v5/public/instruments", s.serveInstruments)
	mux.HandleFunc("GET /ws/v5/public", func(w http.ResponseWriter, r *http.Request) { s.serveWS(w, r, endpointPublic) })
	mux.HandleFunc("GET /ws/v5/business", func(w http.ResponseWriter, r *http.Request) { s.serveWS(w, r, endpointBusiness) })
	return mux
}

// serveInstruments answers GET /api/v5/public/instruments?instType=…:
// SPOT or SWAP, required, as OKX has it.
func (s *Server) serveInstruments(w http.ResponseWriter, r *http.Request) {
	typ := r.URL.Query().Get("instType")
	w.Header().Set("Content-Type", "application/json")
	if typ != "SPOT" && typ != "SWAP" {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"code":"51000","msg":"Parameter instType error","data":[]}`)
		return
	}
	type inst struct {
		InstType  string `json:"instType"`
		InstID    string `json:"instId"`
		State     string `json:"state"`
		TickSz    string `json:"tickSz"`
		LotSz     string `json:"lotSz"`
		SettleCcy string `json:"settleCcy"`
	}
	out := struct {
		Code string `json:"code"`
		Msg  string `json:"msg"`
		Data []inst `json:"data"`
	}{Code: "0", Data: []inst{}}
	for _, id := range s.order {
		if instType(id) != typ {
			continue
		}
		settle := ""
		if typ == "SWAP" {
			settle = "USDT"
		}
		out.Data = append(out.Data, inst{InstType: typ, InstID: id, State: "live", TickSz: "0.1", LotSz: "0.001", SettleCcy: settle})
	}
	json.NewEncoder(w).Encode(out)
}

// allowAttemptLocked records a handshake of ip and reports whether it is
// within the attempt limit.
func (s *Server) allowAttemptLocked(ip string, now time.Time) bool {
	if s.cfg.MaxConnAttempts < 0 {
		return true
	}
	ts := s.attempts[ip]
	k := 0
	for k < len(ts) && now.Sub(ts[k]) >= s.cfg.ConnAttemptWindow {
		k++
	}
	ts = append(ts[:0], ts[k:]...)
	if len(ts) >= s.cfg.MaxConnAttempts {
		s.attempts[ip] = ts
		return false
	}
	s.attempts[ip] = append(ts, now)
	return true
}
