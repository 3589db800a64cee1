// Package simtest runs the Binance simulator for the tests of other
// packages, the httptest way.
package simtest

import (
	"testing"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/exchangesim/simrun"
)

// Start runs a simulator of cfg on a loopback port until the test ends and
// returns it with its host:port (see simrun.Serve). A nil cfg.Logger logs
// warnings to the test's output.
func Start(t testing.TB, cfg binancesim.Config) (*binancesim.Server, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = simrun.Logger(t)
	}
	srv, err := binancesim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv, simrun.Serve(t, srv)
}
