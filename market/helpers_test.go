package market_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/exchangesim/binancesim/simtest"
	"github.com/marketgate/marketgate/market"
	"github.com/marketgate/marketgate/upstream/binance"
)

// simNow is the simulator's clock: fixed, so that its answers (serverTime
// in exchangeInfo) compare byte for byte.
var simNow = time.Date(2026, 12, 5, 12, 0, 30, 0, time.UTC)

// startSim serves the real simulator of mode on a loopback port. Its
// market stands still (no Run, and paused), so its answers repeat
// exactly; its REST weights, 429s and 418s run on the real clock.
func startSim(t *testing.T, mode binancesim.Mode) (sim *binancesim.Server, base string) {
	t.Helper()
	return startSimWith(t, binancesim.Config{Mode: mode})
}

// startSimWith is startSim with cfg (Seed, TickInterval, Now and Logger
// are set here).
func startSimWith(t *testing.T, cfg binancesim.Config) (sim *binancesim.Server, base string) {
	t.Helper()
	cfg.Seed, cfg.TickInterval, cfg.Now, cfg.Logger = 1, time.Hour, func() time.Time { return simNow }, testLogger(t)
	sim, err := binancesim.New(cfg)
	if err != nil {
		t.Fatalf("binancesim.New: %v", err)
	}
	sim.Pause()
	ts := httptest.NewServer(sim.Handler())
	t.Cleanup(ts.Close)
	return sim, ts.URL
}

// runSim runs the real simulator of mode (market ticking, on simNow's
// fixed clock) until every symbol has traded, then pauses it, so that its
// klines, trades and tickers have data and hold still.
func runSim(t *testing.T, mode binancesim.Mode) (sim *binancesim.Server, base string) {
	t.Helper()
	sim, addr := simtest.Start(t, binancesim.Config{Mode: mode, Seed: 1, TickInterval: time.Millisecond, Now: func() time.Time { return simNow }, Logger: testLogger(t)})
	trades := "/api/v3/trades?symbol="
	if mode == binancesim.ModeFutures {
		trades = "/fapi/v1/trades?symbol="
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range []string{"BTCUSDT", "ETHUSDT"} {
		for fromSim(t, sim, trades+s).body == "[]" {
			if time.Now().After(deadline) {
				t.Fatalf("the simulator made no %s trade in 5 s", s)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	sim.Pause()
	time.Sleep(20 * time.Millisecond) // a tick under way ends
	return sim, "http://" + addr
}

// requests is the number of REST calls sim answered, all paths.
func requests(sim *binancesim.Server) int {
	n := 0
	for _, v := range sim.RESTStats().Requests {
		n += v
	}
	return n
}

// roomInMinute waits, when less than d is left of the wall-clock minute,
// for the next one: the simulator counts weight in the real minute, and a
// test that reads its used-weight header must not see it reset midway.
func roomInMinute(t *testing.T, d time.Duration) {
	t.Helper()
	now := time.Now()
	if next := now.Truncate(time.Minute).Add(time.Minute); next.Sub(now) < d {
		t.Logf("waiting %v for the next minute", next.Sub(now))
		time.Sleep(next.Sub(now) + 10*time.Millisecond)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// gateway is a Market served on a loopback port.
type gateway struct {
	*market.Market
	url string
}

// startMarket serves a Market of cfg whose exchanges are binance at spot
// and binance-futures at futures (either may be "").
func startMarket(t *testing.T, cfg market.Config, spot, futures string) *gateway {
	t.Helper()
	if spot != "" {
		cfg.Exchanges = append(cfg.Exchanges, market.Exchange{Rules: binance.SpotREST, BaseURL: spot})
	}
	if futures != "" {
		cfg.Exchanges = append(cfg.Exchanges, market.Exchange{Rules: binance.FuturesREST, BaseURL: futures})
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	m, err := market.New(cfg)
	if err != nil {
		t.Fatalf("market.New: %v", err)
	}
	ts := httptest.NewServer(m.Handler())
	t.Cleanup(ts.Close)
	return &gateway{Market: m, url: ts.URL}
}

// answer is an HTTP answer read whole.
type answer struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, url string, header ...string) answer {
	t.Helper()
	return do(t, http.MethodGet, url, header...)
}

func do(t *testing.T, method, url string, header ...string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// fromSim is what the simulator itself answers to path (from another
// address than the gateway's, so it spends none of the gateway's weight).
func fromSim(t *testing.T, sim *binancesim.Server, path string) answer {
	t.Helper()
	rec := httptest.NewRecorder()
	sim.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return answer{rec.Code, rec.Header(), rec.Body.String()}
}

func httptestServer(t *testing.T, h http.Handler) string {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}
