// Package simtest runs the Bybit simulator for the tests of other
// packages, the httptest way.
package simtest

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/bybitsim"
)

// runBound is how long Run may take to return after the test ends.
const runBound = 20 * time.Second

// Start runs a simulator of cfg on a loopback port until the test ends and
// returns it with its host:port. A nil cfg.Logger logs warnings to the
// test's output. The test fails if Run fails or does not return within
// runBound of the end.
func Start(t testing.TB, cfg bybitsim.Config) (*bybitsim.Server, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	srv, err := bybitsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
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
	return srv, ln.Addr().String()
}
