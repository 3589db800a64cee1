// Package admin serves the control endpoints on --admin-listen with
// labstack/echo: JSON in and out, a bearer token when one is configured,
// loopback clients only when none is.
//
// Besides POST /api/v1/drain it serves, when [Config.Backend] is set, the
// JSON control API under /api/v1/ (streams and pins, upstreams, nodes,
// clients), described by the OpenAPI 3 document at GET
// /api/v1/openapi.json; net/http/pprof under /debug/pprof/; and, when
// [Config.Metrics] is set, GET /metrics; and, when [Config.Page] is set,
// the ops page at /ops/. Every route is behind the same guard, except
// /metrics with [Config.MetricsPublic] and the ops page's files when a
// token is set.
//
//	srv, err := admin.New(admin.Config{Listener: ln, Token: token, Drain: drain, Backend: backend})
//	…
//	err = srv.Run(ctx)
package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// Config configures a [Server].
type Config struct {
	// Listener is where the control endpoints are served; required.
	Listener net.Listener
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every request. When empty, only loopback clients are answered.
	Token string
	// Drain starts draining the node (as SIGTERM does): no new clients,
	// upstreams handed over, clients closed with 1001. It must not block.
	Drain func()
	// Backend answers the control API under /api/v1/ (see [Backend]);
	// nil serves only POST /api/v1/drain there.
	Backend Backend
	// Metrics, when set, is served at GET /metrics (Prometheus).
	Metrics http.Handler
	// MetricsPublic serves Metrics without the guard: to any client, with
	// no token, for a scraper on another host. Every other route stays
	// guarded.
	MetricsPublic bool
	// Page, when set, serves the ops page at GET /ops/ (and / redirects
	// there): static files only, which ask for the token and call the API
	// with it. With a Token it is served to any client, since it holds no
	// data; without one the loopback rule applies to it as to the rest.
	Page http.Handler
	// Ready reports, for GET /api/v1/ready, whether the node takes new
	// clients, with the full reason; nil means always.
	Ready func() error
	// NodeID is this node's id, answered as "self" by GET /api/v1/nodes so
	// that the ops page can tell which node it is on.
	NodeID string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// writeTimeout bounds the time a response may take to write, except a
// CPU profile's or an execution trace's, which take as long as asked.
const writeTimeout = 30 * time.Second

// Server is the control listener.
type Server struct {
	cfg  Config
	echo *echo.Echo
	http *http.Server
}

// errorBody is the shape of every error answer.
type errorBody struct {
	Error struct {
		Code string `json:"code"`
		Msg  string `json:"msg"`
	} `json:"error"`
}

// New returns a Server for cfg; it serves nothing until Run.
func New(cfg Config) (*Server, error) {
	if cfg.Listener == nil || cfg.Drain == nil {
		return nil, errors.New("admin: config: Listener and Drain are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		code, msg := http.StatusInternalServerError, "internal error" // no details, no stack
		if he, ok := errors.AsType[*echo.HTTPError](err); ok {
			code, msg = he.Code, fmt.Sprint(he.Message)
		}
		if !c.Response().Committed {
			var b errorBody
			b.Error.Code, b.Error.Msg = strings.ReplaceAll(strings.ToLower(http.StatusText(code)), " ", "_"), msg
			c.JSON(code, b)
		}
	}
	e.Use(writeDeadline(writeTimeout))
	e.Use(middleware.BodyLimit("64K"))
	s := &Server{cfg: cfg, echo: e}
	e.Use(s.guard)
	e.POST("/api/v1/drain", s.drain)
	e.GET("/api/v1/openapi.json", serveOpenAPI)
	e.GET("/api/v1/ready", s.ready)
	if cfg.Backend != nil {
		s.routeAPI()
	}
	if cfg.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(cfg.Metrics))
	}
	if cfg.Page != nil {
		toPage := func(c echo.Context) error { return c.Redirect(http.StatusFound, "/ops/") }
		e.GET("/", toPage)
		e.GET("/ops", toPage)
		e.GET("/ops/*", echo.WrapHandler(cfg.Page))
	}
	routePprof(e)
	s.http = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// No WriteTimeout: writeDeadline sets one per request, so that a
		// profile may take longer (see routePprof).
		IdleTimeout: time.Minute,
	}
	return s, nil
}

// writeDeadline gives every response d to be written.
func writeDeadline(d time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			extendWriteDeadline(c, d)
			return next(c)
		}
	}
}

// extendWriteDeadline lets the response be written for d from now. A
// ResponseWriter that has no deadlines (a test's recorder) is left as is.
func extendWriteDeadline(c echo.Context, d time.Duration) {
	_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(d))
}

// guard admits a request with the right bearer token, or, when no token
// is configured, from a loopback address. It runs after routing, on
// unknown paths too, so that they answer 401 or 403 like known ones; it
// lets GET /metrics through when MetricsPublic is set, and the ops page's
// files when a token is set (the page asks for it).
func (s *Server) guard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		get := c.Request().Method == http.MethodGet
		if s.cfg.MetricsPublic && s.cfg.Metrics != nil && c.Path() == "/metrics" && get {
			return next(c)
		}
		if s.cfg.Token != "" && s.cfg.Page != nil && get && isPagePath(c.Path()) {
			return next(c)
		}
		if s.cfg.Token == "" {
			host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				return echo.NewHTTPError(http.StatusForbidden, "no --admin-token is set: the control listener answers loopback clients only")
			}
			return next(c)
		}
		got, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) != 1 {
			return echo.NewHTTPError(http.StatusUnauthorized, "missing or wrong bearer token")
		}
		return next(c)
	}
}

// isPagePath reports whether route is one of the ops page's.
func isPagePath(route string) bool {
	return route == "/" || route == "/ops" || route == "/ops/*"
}

// drain answers POST /api/v1/drain: 202, the node drains and then stops.
func (s *Server) drain(c echo.Context) error {
	s.cfg.Logger.Info("drain requested", "remote", c.Request().RemoteAddr)
	s.cfg.Drain()
	return c.JSON(http.StatusAccepted, map[string]bool{"draining": true})
}

// Run serves until ctx ends, then shuts down within 5 s.
func (s *Server) Run(ctx context.Context) error {
	if s.cfg.Token == "" {
		s.cfg.Logger.Info("control listener answers loopback clients only (no --admin-token)", "addr", s.cfg.Listener.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.cfg.Listener) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}
