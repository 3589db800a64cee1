package gateway

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
)

// BenchmarkMarketRESTSaved sends b.N browser REST requests, 32 at a
// time, spread over depth, klines, trades and the symbol list of five
// symbols, through a gateway on the simulator, and reports how many
// reached the exchange and the weight they cost, against the weight the
// browsers would have spent asking the exchange themselves. Run it with
// -benchtime=5000x.
func BenchmarkMarketRESTSaved(b *testing.B) {
	if b.N == 1 {
		return // the framework's probe run; the measurement is the -benchtime=Nx run
	}
	sim, simAddr := startSim(b, binancesim.Config{TickInterval: 20 * time.Millisecond, RESTWeightLimit: -1})
	addr := startGateway(b, simAddr, Config{})
	symbols := []string{"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"}
	// What each request would cost a browser asking Binance spot itself.
	paths := []struct {
		path   string
		weight int
	}{
		{"/binance/api/v3/depth?symbol=%s&limit=100", 5},
		{"/api/v1/market/binance/klines?symbol=%s&interval=1m&limit=500", 2},
		{"/api/v1/market/binance/trades?symbol=%s&limit=100", 25},
		{"/api/v1/market/binance/symbols?_=%s", 20},
	}
	before := sim.RESTStats()
	var wg sync.WaitGroup
	next := make(chan int)
	var mu sync.Mutex
	direct, failed := 0, 0
	b.ResetTimer()
	for range 32 {
		wg.Go(func() {
			for i := range next {
				p := paths[i%len(paths)]
				resp, err := http.Get("http://" + addr + fmt.Sprintf(p.path, symbols[(i/len(paths))%len(symbols)]))
				mu.Lock()
				direct += p.weight
				if err != nil || resp.StatusCode != http.StatusOK {
					failed++
				}
				mu.Unlock()
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	for i := range b.N {
		next <- i
	}
	close(next)
	wg.Wait()
	b.StopTimer()
	after := sim.RESTStats()
	calls := 0
	for path, n := range after.Requests {
		calls += n - before.Requests[path]
	}
	if failed > 0 {
		b.Errorf("%d of %d requests failed", failed, b.N)
	}
	b.ReportMetric(float64(calls), "exchange-calls")
	b.ReportMetric(float64(after.Weight-before.Weight), "exchange-weight")
	b.ReportMetric(float64(direct), "browser-weight")
	b.ReportMetric(float64(b.N)/float64(max(calls, 1)), "requests/call")
}
