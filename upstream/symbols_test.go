package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/upstream/binance"

	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// exchangeInfoServer serves /api/v3/exchangeInfo with the symbols of body
// and counts requests.
type exchangeInfoServer struct {
	*httptest.Server
	hits atomic.Int32
	mu   sync.Mutex
	body string
}

func newExchangeInfoServer(t *testing.T, body string) *exchangeInfoServer {
	t.Helper()
	s := &exchangeInfoServer{body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v3/exchangeInfo" {
			http.NotFound(w, r)
			return
		}
		s.hits.Add(1)
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		fmt.Fprint(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *exchangeInfoServer) set(body string) {
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

const exchangeInfoBody = `{"timezone":"UTC","serverTime":1,"symbols":[
 {"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC"},
 {"symbol":"ETHUSDT","status":"TRADING"},
 {"symbol":"OLDUSDT","status":"BREAK"},
 {"symbol":"币安USDT","status":"TRADING"}]}`

// nopPublisher discards messages.
type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, hub.Message) error { return nil }
func (nopPublisher) Flush(context.Context) error                { return nil }

func TestBinanceValidateSymbols(t *testing.T) {
	srv := newExchangeInfoServer(t, exchangeInfoBody)
	var now atomic.Int64
	now.Store(time.Unix(1000, 0).UnixNano())
	b, err := newSpot(Config{
		URL:       "ws://127.0.0.1:1", // never dialled: symbols only
		RESTURL:   srv.URL,
		Publisher: nopPublisher{},
		Now:       func() time.Time { return time.Unix(0, now.Load()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Validate("btcusdt@trade"); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Validate before load = %v; want ErrNotReady", err)
	}
	if err := b.LoadSymbols(t.Context()); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		wantErr error
		wantMsg string
	}{
		{"btcusdt@trade", nil, ""},
		{"ethusdt@depth20@100ms", nil, ""},
		{"币安usdt@kline_1m", nil, ""},
		{"!miniTicker@arr", nil, ""},
		{"foousdt@trade", ErrUnknownSymbol, `unknown symbol "foousdt"`},
		{"oldusdt@trade", ErrUnknownSymbol, `unknown symbol "oldusdt"`}, // not TRADING
		{"BTCUSDT@trade", ErrInvalidStream, `invalid stream name "BTCUSDT@trade"`},
		{"btcusdt@tradez", ErrInvalidStream, `invalid stream name "btcusdt@tradez"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := b.Validate(tc.name)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("Validate(%q) = %v; want %v", tc.name, err, tc.wantErr)
			}
			if err != nil && err.Error() != tc.wantMsg {
				t.Errorf("Validate(%q) message = %q; want %q", tc.name, err.Error(), tc.wantMsg)
			}
		})
	}

	// A miss asks for a refresh at most once per SymbolMissRefresh.
	hits := srv.hits.Load()
	srv.set(`{"symbols":[{"symbol":"FOOUSDT","status":"TRADING"},{"symbol":"ETHUSDT","status":"TRADING"},{"symbol":"币安USDT","status":"TRADING"}]}`)
	b.Validate("foousdt@trade")
	select {
	case <-b.SymbolMiss():
		t.Fatal("miss refresh requested right after a load")
	default:
	}
	now.Add(int64(DefaultSymbolMissRefresh))
	b.Validate("foousdt@trade")
	select {
	case <-b.SymbolMiss():
	default:
		t.Fatal("no miss refresh requested after SymbolMissRefresh")
	}
	if err := b.LoadSymbols(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.Validate("foousdt@trade"); err != nil {
		t.Errorf("Validate after refresh = %v", err)
	}
	if err := b.Validate("btcusdt@trade"); !errors.Is(err, ErrUnknownSymbol) {
		t.Errorf("Validate of a delisted symbol = %v; want ErrUnknownSymbol", err)
	}
	if got := srv.hits.Load() - hits; got != 1 {
		t.Errorf("exchangeInfo fetched %d times; want 1", got)
	}
}

func TestSymbolsFetchErrors(t *testing.T) {
	big := `{"symbols":[` + strings.Repeat(`{"symbol":"AAAA","status":"TRADING"},`, 100) + `{}]}`
	tests := []struct {
		name     string
		status   int
		body     string
		maxBytes int64
		wantErr  error
		wantN    int
	}{
		{"ok", 200, exchangeInfoBody, 1 << 20, nil, 3},
		{"too large", 200, big, 1024, ErrSymbolsTooLarge, 0},
		{"exactly at limit", 200, big, int64(len(big)), nil, 1},
		{"bad json", 200, `{"symbols":[`, 1 << 20, nil, -1},
		{"rate limited", 429, `{}`, 1 << 20, nil, -1},
		{"banned for a day", 418, `{}`, 1 << 20, nil, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch tc.status {
				case 429:
					w.Header().Set("Retry-After", "7")
				case 418:
					w.Header().Set("Retry-After", "86400")
				}
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			m, err := FetchSymbols(t.Context(), srv.URL, []string{"/"}, binance.Spot.ParseSymbols, srv.Client(), tc.maxBytes)
			switch {
			case tc.wantN >= 0 && tc.wantErr == nil:
				if err != nil || len(m) != tc.wantN {
					t.Fatalf("fetch = %d symbols, %v; want %d", len(m), err, tc.wantN)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("fetch error = %v; want %v", err, tc.wantErr)
				}
			default:
				if err == nil {
					t.Fatalf("fetch = %v; want an error", m)
				}
			}
			if want := map[int]time.Duration{429: 7 * time.Second, 418: MaxRetryAfter}[tc.status]; want > 0 {
				if got, ok := RetryAfter(err); !ok || got != want {
					t.Errorf("fetch error = %v; want a restError with Retry-After %v", err, want)
				}
			}
		})
	}
}

// symbolsBody returns an exchangeInfo body listing syms as trading.
func symbolsBody(syms ...string) string {
	var b strings.Builder
	b.WriteString(`{"symbols":[`)
	for i, sym := range syms {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"symbol":%q,"status":"TRADING"}`, sym)
	}
	b.WriteString(`]}`)
	return b.String()
}

// TestSymbolRefreshRefusesShrink checks that a refresh listing no symbol,
// or dropping more than SymbolMaxDrop of those in use, leaves the list in
// use as it was, and that a smaller drop is installed.
func TestSymbolRefreshRefusesShrink(t *testing.T) {
	four := []string{"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"}
	tests := []struct {
		name    string
		body    string
		maxDrop float64 // 0: the default
		wantErr bool
		wantN   int
	}{
		{"empty", symbolsBody(), 0, true, 4},
		{"drops three of four", symbolsBody("BTCUSDT"), 0, true, 4},
		{"drops half", symbolsBody("BTCUSDT", "ETHUSDT"), 0, false, 2},
		{"drops one, lists a new one", symbolsBody("BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT"), 0, false, 4},
		{"drops three of four, allowed", symbolsBody("BTCUSDT"), 1, false, 1},
		{"drops one of four, limit 10%", symbolsBody("BTCUSDT", "ETHUSDT", "BNBUSDT"), 0.1, true, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newExchangeInfoServer(t, symbolsBody(four...))
			b, err := newSpot(Config{URL: "ws://127.0.0.1:1", RESTURL: srv.URL, Publisher: nopPublisher{},
				SymbolMaxDrop: tc.maxDrop})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.LoadSymbols(t.Context()); err != nil {
				t.Fatal(err)
			}
			srv.set(tc.body)
			err = b.LoadSymbols(t.Context())
			if got := errors.Is(err, ErrSymbolsRefused); got != tc.wantErr {
				t.Errorf("refresh error = %v; want refused %v", err, tc.wantErr)
			}
			if n := b.Status().Symbols; n != tc.wantN {
				t.Errorf("%d symbols in use; want %d", n, tc.wantN)
			}
			if tc.wantErr {
				if err := b.Validate("solusdt@trade"); err != nil {
					t.Errorf("Validate of a symbol the refused list dropped = %v; want nil", err)
				}
			}
		})
	}
}

// TestSymbolRefreshRetries checks that a refused refresh is tried again
// after a backoff, without waiting for the next period, until the
// exchange lists the symbols again.
func TestSymbolRefreshRetries(t *testing.T) {
	srv := newExchangeInfoServer(t, symbolsBody("BTCUSDT", "ETHUSDT"))
	b, err := newSpot(Config{URL: "ws://127.0.0.1:1", RESTURL: srv.URL, Publisher: nopPublisher{},
		Lazy: true, SymbolMissRefresh: 20 * time.Millisecond, BackoffMin: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runBinance(t, b)
	waitfor.Cond(t, 5*time.Second, b.Ready)
	srv.set(symbolsBody()) // a faulty answer
	time.Sleep(30 * time.Millisecond)
	if err := b.Validate("solusdt@trade"); !errors.Is(err, ErrUnknownSymbol) {
		t.Fatalf("Validate = %v; want ErrUnknownSymbol (and a refresh)", err)
	}
	waitfor.Cond(t, 5*time.Second, func() error {
		if n := srv.hits.Load(); n < 4 {
			return fmt.Errorf("%d fetches; want the refused refresh retried", n)
		}
		return nil
	})
	if n := b.Status().Symbols; n != 2 {
		t.Fatalf("%d symbols in use; want the 2 of before the faulty answers", n)
	}
	srv.set(symbolsBody("BTCUSDT", "ETHUSDT", "SOLUSDT"))
	waitfor.Cond(t, 5*time.Second, func() error {
		if err := b.Validate("solusdt@trade"); err != nil {
			return err
		}
		return nil
	})
}
