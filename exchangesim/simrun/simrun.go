// Package simrun runs an exchange simulator for the tests of other
// packages, the httptest way; each simulator's simtest package builds the
// simulator from its Config and serves it with [Serve].
package simrun

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"
)

// runBound is how long Run may take to return after the test ends: a
// peer that does not read delays the close handshake by up to a second's
// grace plus a write timeout (10 s by default), then an HTTP server's
// shutdown waits up to 5 s more for requests in flight.
const runBound = 20 * time.Second

// Runner is a simulator: it serves on ln until ctx ends.
type Runner interface {
	Run(ctx context.Context, ln net.Listener) error
}

// Logger returns a logger of warnings (every violation a simulator
// reports) to t's output.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Serve runs srv on a loopback port until the test ends and returns its
// host:port. The test fails if Run fails or does not return within
// runBound of the end.
func Serve(t testing.TB, srv Runner) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("simulator Run = %v", err)
			}
		case <-time.After(runBound):
			t.Errorf("simulator Run did not return within %v", runBound)
		}
	})
	return ln.Addr().String()
}
