package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/marketgate/marketgate/downstream"
)

// The settings a running gateway can change (for a reload on SIGHUP);
// every other setting of [Config] is fixed when [New] builds it. The
// browsers' token keys change through [Gateway.Verifier]'s SetKeys.

// SetAllowedOrigins replaces the browser origins allowed to open
// WebSockets and to read the market-data REST answers (Config.Browsers'
// and Config.AllowedOrigins; empty: any). Connections already open stay.
// Safe for concurrent use.
func (g *Gateway) SetAllowedOrigins(origins []string) {
	g.ds.SetAllowedOrigins(origins)
	if g.market != nil {
		g.market.SetAllowedOrigins(origins)
	}
}

// SetBrowserLimits replaces the browsers' limits (see
// downstream.Server.SetLimits): new handshakes, subscribes and commands
// are held to them; nothing open is closed. Safe for concurrent use.
func (g *Gateway) SetBrowserLimits(l downstream.Limits) error { return g.ds.SetLimits(l) }

// SetAdminToken replaces the control listener's bearer token
// (Config.AdminToken; empty: loopback clients only). It refuses a token
// shorter than admin.MinTokenLen, changing nothing, and does nothing
// without a control listener. Safe for concurrent use.
func (g *Gateway) SetAdminToken(token string) error {
	if g.admin == nil {
		return nil
	}
	return g.admin.SetToken(token)
}

// SetMetricsPublic sets whether the control listener serves /metrics
// without the token (Config.MetricsPublic). Safe for concurrent use.
func (g *Gateway) SetMetricsPublic(public bool) {
	if g.admin != nil {
		g.admin.SetMetricsPublic(public)
	}
}

// metricsOnly serves /metrics and nothing else on its own listener.
type metricsOnly struct {
	ln   net.Listener
	http *http.Server
}

// metricsServer returns the server of Config.MetricsListener: GET
// /metrics answered by h, every other path 404.
func metricsServer(ln net.Listener, h http.Handler) *metricsOnly {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return &metricsOnly{ln: ln, http: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
	}}
}

// Run serves until ctx ends, then shuts down within 5 s.
func (m *metricsOnly) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- m.http.Serve(m.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics listener: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := m.http.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("metrics listener: shutdown: %w", err)
	}
	<-errc
	return nil
}
