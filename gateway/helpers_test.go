package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/exchangesim/binancesim/simtest"
	"github.com/marketgate/marketgate/upstream"
)

// startSim runs a simulator on a loopback port until the test ends and
// returns it with its host:port.
func startSim(t testing.TB, cfg binancesim.Config) (*binancesim.Server, string) {
	t.Helper()
	return simtest.Start(t, cfg)
}

// listen returns a listener on a free loopback port.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// startGateway runs a gateway of node cfg.NodeID (default "test") carrying Binance spot from
// the simulator at simAddr, with cfg's other settings, and returns its
// public address once it is ready.
func startGateway(t testing.TB, simAddr string, cfg Config) string {
	t.Helper()
	cfg.Listener = listen(t)
	if cfg.NodeID == "" {
		cfg.NodeID = "test"
	}
	spot := cfg.Exchanges["binance"]
	spot.URL, spot.RESTURL = "ws://"+simAddr, "http://"+simAddr
	cfg.Exchanges = map[string]upstream.Config{"binance": spot}
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v; want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop within 15s")
		}
	})
	addr := cfg.Listener.Addr().String()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway at %s not ready: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
