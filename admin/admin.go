// Package admin serves the control endpoints on --admin-listen with
// labstack/echo: JSON in and out, a bearer token when one is configured,
// loopback clients only when none is.
//
// Without a token the listener is also no browser's to use: it answers
// only a Host that is an IP address or localhost (DNS rebinding), and a
// request that changes something (any method but GET, HEAD and OPTIONS)
// only with a header no cross-site form or "simple" fetch can send
// ([RequestHeader], or Content-Type: application/json) and no foreign
// Origin (CSRF). A proxy or sidecar on the host that forwards to it over
// loopback makes its callers loopback clients: set a token with one. With
// a token, failed attempts are throttled per client address.
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
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"

	"github.com/marketgate/marketgate/internal/httprun"
)

// Config configures a [Server].
type Config struct {
	// Listener is where the control endpoints are served; required.
	Listener net.Listener
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every request; it must be at least [MinTokenLen] bytes. When empty,
	// only loopback clients are answered, under the rules of the package
	// doc.
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
	// Cmdline is what GET /debug/pprof/cmdline answers, with the values
	// of secrets already masked; nil answers nothing. (net/http/pprof's
	// own handler shows os.Args, flags such as --admin-token included.)
	Cmdline []string
	// Ready reports, for GET /api/v1/ready, whether the node takes new
	// clients, with the full reason; nil means always.
	Ready func() error
	// NodeID is this node's id, answered as "self" by GET /api/v1/nodes so
	// that the ops page can tell which node it is on.
	NodeID string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// MinTokenLen is the least length of [Config.Token], in bytes: 16 random
// bytes (32 hex digits) are beyond guessing.
const MinTokenLen = 16

// RequestHeader, with the value "1", marks a request without a token as
// not a cross-site browser's: a page on another origin cannot send it
// without a CORS preflight, which the listener never grants. Requests
// that change something need it, or Content-Type: application/json.
const RequestHeader = "X-Marketgate-Admin"

// writeTimeout bounds the time a response may take to write, except a
// CPU profile's or an execution trace's, which take as long as asked.
const writeTimeout = 30 * time.Second

// Server is the control listener.
type Server struct {
	cfg      Config
	echo     *echo.Echo
	http     *http.Server
	failures *failures // failed token attempts, per client address
	// token and metricsPublic are Config.Token and Config.MetricsPublic,
	// then SetToken's and SetMetricsPublic's.
	token         atomic.Pointer[string]
	metricsPublic atomic.Bool
	// throttled logs that failed attempts are being refused, at most
	// once per 10 s.
	throttled rate.Sometimes
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
	if cfg.Token != "" && len(cfg.Token) < MinTokenLen {
		return nil, fmt.Errorf("admin: config: Token has %d bytes; want at least %d", len(cfg.Token), MinTokenLen)
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
	s := &Server{cfg: cfg, echo: e, failures: newFailures(time.Now), throttled: rate.Sometimes{First: 1, Interval: 10 * time.Second}}
	s.token.Store(&cfg.Token)
	s.metricsPublic.Store(cfg.MetricsPublic)
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
	routePprof(e, cfg.Cmdline)
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
// is configured, one from a loopback address that a browser could not
// have been made to send (see noToken). It runs after routing, on unknown
// paths too, so that they answer like known ones; it lets GET /metrics
// through when MetricsPublic is set, and the ops page's files when a
// token is set (the page asks for it).
//
// With a token, Host and Origin are not checked: a page that does not
// know the token can do nothing, and a proxy in front may use any name.
func (s *Server) guard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		get := r.Method == http.MethodGet
		token := *s.token.Load()
		if s.metricsPublic.Load() && s.cfg.Metrics != nil && c.Path() == "/metrics" && get {
			return next(c)
		}
		if token != "" && s.cfg.Page != nil && get && isPagePath(c.Path()) {
			return next(c)
		}
		if token == "" {
			if err := noToken(r); err != nil {
				return err
			}
			return next(c)
		}
		ip := remoteIP(r.RemoteAddr)
		if wait := s.failures.blocked(ip); wait > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(wait.Round(time.Second)/time.Second)+1))
			return echo.NewHTTPError(http.StatusTooManyRequests, "too many failed token attempts from this address; retry later")
		}
		got, ok := bearer(r.Header.Get("Authorization"))
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			if s.failures.fail(ip) {
				s.throttled.Do(func() {
					s.cfg.Logger.Warn("too many failed token attempts: refusing this address for a while (logged at most every 10 s)", "remote", r.RemoteAddr)
				})
			}
			return echo.NewHTTPError(http.StatusUnauthorized, "missing or wrong bearer token")
		}
		return next(c)
	}
}

// noToken checks a request to a listener without a token: it must come
// from a loopback address, name an IP address or localhost as its Host
// (a DNS-rebinding page names its own host), and, when it changes
// something, carry RequestHeader or a JSON body and no foreign Origin
// (a cross-site page can send neither header without a preflight).
func noToken(r *http.Request) error {
	if ip := remoteIP(r.RemoteAddr); !ip.IsValid() || !ip.IsLoopback() {
		return echo.NewHTTPError(http.StatusForbidden, "no --admin-token is set: the control listener answers loopback clients only")
	}
	if !localHost(r.Host) {
		return echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf("no --admin-token is set: Host %q is not an IP address or localhost", r.Host))
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if o := r.Header.Get("Origin"); o != "" && !sameHost(o, r.Host) {
		return echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf("no --admin-token is set: Origin %q is not this listener's", o))
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Header.Get(RequestHeader) != "1" && mt != echo.MIMEApplicationJSON {
		return echo.NewHTTPError(http.StatusForbidden, "no --admin-token is set: a request that changes something needs the header "+RequestHeader+": 1 or Content-Type: application/json")
	}
	return nil
}

// localHost reports whether host (a Host header, with or without a port)
// names an IP address or localhost: no DNS name an attacker controls.
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}

// sameHost reports whether origin (an Origin header) is http:// or
// https:// host: the listener's own origin, or a loopback proxy's in
// front of it on the same host and port.
func sameHost(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Path == "" && strings.EqualFold(u.Host, host)
}

// bearer returns the credentials of an Authorization header of the
// Bearer scheme, whose name is case-insensitive (RFC 7235, 2.1).
func bearer(h string) (string, bool) {
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(cred, " "), true
}

// remoteIP returns the address of addr (ip:port); invalid when it is not one.
func remoteIP(addr string) netip.Addr {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
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
	if *s.token.Load() == "" {
		s.cfg.Logger.Info("control listener answers loopback clients only (no --admin-token); requests that change something need the header "+RequestHeader+": 1",
			"addr", s.cfg.Listener.Addr().String())
	}
	if err := httprun.Run(ctx, s.http, s.cfg.Listener, 5*time.Second); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

// SetToken replaces the bearer token (Config.Token), for a reload:
// requests from then on must carry token; empty: loopback clients only.
// It refuses a token shorter than [MinTokenLen], changing nothing. Safe
// for concurrent use.
func (s *Server) SetToken(token string) error {
	if token != "" && len(token) < MinTokenLen {
		return fmt.Errorf("admin: token has %d bytes; want at least %d", len(token), MinTokenLen)
	}
	s.token.Store(&token)
	return nil
}

// SetMetricsPublic sets whether /metrics is served without the token
// (Config.MetricsPublic), for a reload. Safe for concurrent use.
func (s *Server) SetMetricsPublic(public bool) { s.metricsPublic.Store(public) }
