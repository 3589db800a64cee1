package market_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/market"
	"github.com/marketgate/marketgate/upstream/binance"
)

// BenchmarkCachedDepth is the handler's cost for a depth answered from
// cache, the path of a polling browser.
func BenchmarkCachedDepth(b *testing.B) {
	srv, err := binancesim.New(binancesim.Config{Seed: 1, TickInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(ts.Close)
	m, err := market.New(market.Config{
		Exchanges: []market.Exchange{{Rules: binance.SpotREST, BaseURL: ts.URL}},
		TTL:       map[market.Endpoint]time.Duration{market.EndpointDepth: time.Hour},
	})
	if err != nil {
		b.Fatal(err)
	}
	h := m.Handler()
	req := httptest.NewRequest(http.MethodGet, "/binance/api/v3/depth?symbol=BTCUSDT&limit=100", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Header().Get("X-Cache") != "hit" {
			b.Fatalf("%d %s", rec.Code, rec.Header().Get("X-Cache"))
		}
	}
}
