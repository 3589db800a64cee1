package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/marketgate/marketgate/internal/httprun"
)

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

// Run serves until ctx ends, then shuts down within 5 s; a scrape still
// running then is cut, which is no error.
func (m *metricsOnly) Run(ctx context.Context) error {
	if err := httprun.Run(ctx, m.http, m.ln, 5*time.Second); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("metrics listener: %w", err)
	}
	return nil
}
