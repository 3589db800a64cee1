// Package admin serves the control endpoints on --admin-listen with
// labstack/echo: JSON in and out, a bearer token when one is configured,
// loopback clients only when none is.
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
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

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
	e.Use(middleware.BodyLimit("64K"))
	s := &Server{cfg: cfg, echo: e}
	e.Use(s.guard)
	e.POST("/api/v1/drain", s.drain)
	s.http = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
	}
	return s, nil
}

// guard admits a request with the right bearer token, or, when no token
// is configured, from a loopback address.
func (s *Server) guard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
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
