// Package web serves the public HTTP listener: the browser frontend at /,
// the health endpoints, and the WebSocket endpoints it hands to downstream.
// It also holds the ops page ([OpsPage]), which the control listener serves.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/marketgate/marketgate/internal/httprun"
)

//go:embed static
var static embed.FS

// clientJS is the browser client of the native protocol, served at
// /marketgate.js as an ES module; clientDTS declares its API. Both are
// the files of the npm package in client/ (@marketgate/client), so a
// page importing from the gateway and a bundled app run the same code.
//
//go:embed client/marketgate.js
var clientJS []byte

//go:embed client/marketgate.d.ts
var clientDTS []byte

// Config configures a [Server]. Zero fields take the documented defaults.
type Config struct {
	// Addr is the address to listen on, e.g. ":8080". Ignored when
	// Listener is set.
	Addr string
	// Listener, when set, is served instead of listening on Addr; Run
	// closes it.
	Listener net.Listener
	// WebSockets handles /ws, /binance/ and /binance-futures/; required.
	WebSockets http.Handler
	// Market, when set, answers the market-data REST calls: the native
	// /api/v1/market/ and the exchange drop-ins /binance/api/ and
	// /binance-futures/fapi/.
	Market http.Handler
	// Ready reports whether the node takes new clients; nil means always.
	// /readyz answers 503 with the error's text while it returns an error.
	Ready func() error
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// ShutdownTimeout bounds how long Run waits for HTTP requests in flight
	// once its context ends. Default 5s.
	ShutdownTimeout time.Duration
	// HandshakeTimeout bounds how long a client may take to send a
	// request's headers, WebSocket handshakes included, so slowloris
	// clients cannot hold connections open. Default 5s.
	HandshakeTimeout time.Duration
}

// Server is the public HTTP listener.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

// New returns a Server for cfg; it starts nothing until Run.
func New(cfg Config) (*Server, error) {
	if cfg.WebSockets == nil {
		return nil, errors.New("web: config: WebSockets is required")
	}
	if cfg.Listener == nil && cfg.Addr == "" {
		return nil, errors.New("web: config: Addr or Listener is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Ready == nil {
		cfg.Ready = func() error { return nil }
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "web"), mux: http.NewServeMux()}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	// Every file is read, hashed and gzipped once, here: requests only
	// pick a form and compare validators.
	modTime := assetTime(time.Now)
	files, err := newAssetFS(sub, modTime)
	if err != nil {
		return nil, err
	}
	s.mux.Handle("GET /{$}", pageHeaders(files.file("index.html")))
	s.mux.Handle("GET /compare", pageHeaders(files.file("compare.html"))) // one symbol on three venues side by side
	s.mux.Handle("GET /static/", pageHeaders(http.StripPrefix("/static", files)))
	for _, a := range []struct {
		path, contentType string
		body              []byte
	}{
		{"/marketgate.js", "text/javascript; charset=utf-8", clientJS},
		{"/marketgate.d.ts", "application/typescript; charset=utf-8", clientDTS},
	} {
		h, err := newAsset(a.path, a.contentType, a.body, modTime)
		if err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
		s.mux.Handle("GET "+a.path, h)
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("/ws", cfg.WebSockets)
	s.mux.Handle("/binance/", cfg.WebSockets)
	s.mux.Handle("/binance-futures/", cfg.WebSockets)
	if cfg.Market != nil {
		s.mux.Handle("/api/v1/market/", cfg.Market)
		s.mux.Handle("/binance/api/", cfg.Market)
		s.mux.Handle("/binance-futures/fapi/", cfg.Market)
	}
	return s, nil
}

// Handler returns the server's routes, for tests that serve them themselves.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if err := s.cfg.Ready(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// Run serves until ctx ends, then stops taking requests and waits up to
// ShutdownTimeout for those in flight. It returns nil after a normal stop.
func (s *Server) Run(ctx context.Context) error {
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("web: listen %s: %w", s.cfg.Addr, err)
		}
	}
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: s.cfg.HandshakeTimeout, // slowloris: headers must arrive promptly
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(newErrorLog(s.log, time.Now), "", 0),
	}
	s.log.Info("listening", "addr", ln.Addr().String())
	if err := httprun.Run(ctx, srv, ln, s.cfg.ShutdownTimeout); err != nil {
		return fmt.Errorf("web: %w", err)
	}
	return nil
}

// pagePolicy keeps a page to its own files and its own origin: no inline
// script or style, no framing, and requests (WebSockets included: CSP 3
// 'self' matches ws: and wss: of the same host) only to the listener that
// served it.
const pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// pageHeaders serves next with pagePolicy and the headers that go with
// it: the market page has no action to protect, but nothing should frame
// or inject into it either.
func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", pagePolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
