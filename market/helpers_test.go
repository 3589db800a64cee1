package market_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/market"
	"github.com/marketgate/marketgate/upstream/binance"
)

// simNow is the simulator's clock: fixed, so that its answers (serverTime
// in exchangeInfo) compare byte for byte.
var simNow = time.Date(2026, 12, 5, 12, 0, 30, 0, time.UTC)

// counter counts the requests that reach the exchange, by path.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.n[r.URL.Path]++
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (c *counter) get(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

// startSim serves the real simulator of mode on a loopback port behind a
// request counter. Its market stands still (no Run), so its answers
// repeat exactly.
// TODO(helper C): count with the simulator's RESTStats once it lands.
func startSim(t *testing.T, mode binancesim.Mode) (base string, sim http.Handler, n *counter) {
	t.Helper()
	srv, err := binancesim.New(binancesim.Config{Mode: mode, Seed: 1, TickInterval: time.Hour, Now: func() time.Time { return simNow }, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("binancesim.New: %v", err)
	}
	n = &counter{n: map[string]int{}}
	ts := httptest.NewServer(n.wrap(srv.Handler()))
	t.Cleanup(ts.Close)
	return ts.URL, srv.Handler(), n
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

// fromSim is what the simulator itself answers to path.
func fromSim(t *testing.T, sim http.Handler, path string) answer {
	t.Helper()
	rec := httptest.NewRecorder()
	sim.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return answer{rec.Code, rec.Header(), rec.Body.String()}
}

// binanceLike is a small real HTTP server that answers like Binance's
// REST front in the ways the simulator does not yet: it sends
// X-MBX-USED-WEIGHT-1M, and 429 or 418 with Retry-After on demand. It
// stands in until the simulator's weights and Throttle/Ban knobs land.
type binanceLike struct {
	mu     sync.Mutex
	status int    // the next answers' status: 200, 429 or 418
	retry  string // their Retry-After
	used   string // X-MBX-USED-WEIGHT-1M
	calls  int
}

func startBinanceLike(t *testing.T) (*binanceLike, string) {
	b := &binanceLike{status: http.StatusOK, used: "1"}
	ts := httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(ts.Close)
	return b, ts.URL
}

func (b *binanceLike) set(status int, retry, used string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status, b.retry, b.used = status, retry, used
}

func (b *binanceLike) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

func (b *binanceLike) serve(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.calls++
	status, retry, used := b.status, b.retry, b.used
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("X-MBX-USED-WEIGHT-1M", used)
	if retry != "" && status != http.StatusOK {
		w.Header().Set("Retry-After", retry)
	}
	w.WriteHeader(status)
	switch {
	case status == http.StatusTooManyRequests:
		io.WriteString(w, `{"code":-1003,"msg":"Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. Please use the websocket for live updates to avoid polling the API."}`)
	case status == http.StatusTeapot:
		io.WriteString(w, `{"code":-1003,"msg":"Way too much request weight used; IP banned until 1. Please use the websocket for live updates to avoid bans."}`)
	case strings.HasSuffix(r.URL.Path, "/exchangeInfo"):
		io.WriteString(w, `{"symbols":[{"symbol":"BTCUSDT","status":"TRADING"},{"symbol":"ETHUSDT","status":"TRADING"}]}`)
	case strings.HasSuffix(r.URL.Path, "/depth"):
		io.WriteString(w, `{"lastUpdateId":1,"bids":[["1.00","2.00"]],"asks":[["1.01","3.00"]]}`)
	default:
		io.WriteString(w, `{}`)
	}
}

func spotRules() market.Rules { return binance.SpotREST }

func httptestServer(t *testing.T, h http.Handler) string {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}
