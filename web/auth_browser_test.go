package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/marketgate/marketgate/auth"
	"github.com/marketgate/marketgate/auth/authtest"
	"github.com/marketgate/marketgate/downstream"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/browsertest"
)

// authPage connects with getToken, which fetches a fresh token from the
// test's /token, and records what the client sees in window.au.
const authPage = `<!doctype html>
<meta charset="utf-8"><title>marketgate auth test</title>
<script type="module">
import { connect } from '/marketgate.js';
const au = window.au = { msgs: [], auths: [], states: [], closes: [], errors: [] };
const c = connect('/ws', {
  backoff: { min: 50, max: 400 }, pingInterval: 0,
  getToken: () => fetch('/token').then((r) => r.text()),
});
c.on('auth', (a) => au.auths.push(a));
c.on('state', (s) => au.states.push(s));
c.on('close', (e) => au.closes.push(e));
c.on('error', (e) => au.errors.push(e));
c.subscribe(['binance:btcusdt@trade'], (d) => au.msgs.push(d.t)).then(() => { au.subscribed = true; }, (e) => { au.subErr = e; });
window.auLoaded = true;
</script>
`

// TestBrowserAuthRefresh drives the JS client's getToken against a
// gateway that requires tokens of 3 s: it authenticates before it
// subscribes, refreshes the token on the same connection before each
// expiry, and so keeps receiving long after the first token expired.
func TestBrowserAuthRefresh(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	key := authtest.NewKey(t, auth.AlgHS256, "")
	v, err := auth.New(auth.Config{Keys: auth.Keys{HMACSecret: key.Secret}})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := hub.NewMemory()
	ds, err := downstream.New(downstream.Config{Hub: h, Source: tradeSource{}, Logger: log, CloseGrace: 200 * time.Millisecond,
		Auth: &downstream.AuthConfig{Verifier: v, Required: true, Anonymous: auth.Patterns{}, Limiter: &auth.Memory{}, NodeID: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dsDone := make(chan error, 1)
	go func() { dsDone <- ds.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-dsDone; err != nil {
			t.Errorf("downstream Run = %v", err)
		}
	})
	ws, err := New(Config{Addr: "127.0.0.1:0", WebSockets: ds, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var issued atomic.Int64
	var firstExp atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, authPage)
	})
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, _ *http.Request) {
		exp := time.Now().Add(3 * time.Second).Unix()
		firstExp.CompareAndSwap(0, exp)
		issued.Add(1)
		io.WriteString(w, key.Sign(t, jwt.MapClaims{"sub": "carol", "exp": exp, "streams": []string{"binance:*@trade"}, "conns": 1}))
	})
	mux.Handle("/", ws.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	br := browsertest.Start(t, 90*time.Second)
	if err := chromedp.Do(br.Ctx, chromedp.Navigate("http://"+ln.Addr().String()+"/auth.html")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	state := `JSON.stringify(window.au)`
	br.Poll(10*time.Second, "the module to load", `window.auLoaded === true`, state)
	br.Poll(10*time.Second, "the subscription after the token", `window.au.subscribed === true && window.au.auths.length >= 1`, state)
	clients, _ := ds.Clients(0, 0)
	if len(clients) != 1 || clients[0].User != "carol" {
		t.Fatalf("clients %+v; want one of carol", clients)
	}
	connID := clients[0].ID

	// Past the first token's expiry by a margin: the client refreshed on
	// the same connection at least once (the gateway would have closed it
	// with 4003 otherwise).
	for time.Now().Unix() <= firstExp.Load()+1 {
		time.Sleep(100 * time.Millisecond)
	}
	br.Poll(15*time.Second, "two refreshes", `window.au.auths.length >= 3`, state)
	clients, _ = ds.Clients(0, 0)
	if len(clients) != 1 || clients[0].ID != connID {
		t.Fatalf("clients %+v; want still connection %d", clients, connID)
	}
	for i := range 3 {
		data := fmt.Appendf(nil, `{"e":"trade","s":"BTCUSDT","t":%d}`, i+1)
		if err := h.Publish(t.Context(), hub.Message{Stream: "binance:btcusdt@trade", Seq: uint64(i + 1), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	h.Flush(t.Context())
	br.Poll(10*time.Second, "the messages", `window.au.msgs.length === 3`, state)
	var got struct {
		States []string          `json:"states"`
		Closes []json.RawMessage `json:"closes"`
		Auths  []struct {
			User string `json:"user"`
			TTL  int    `json:"ttl"`
		} `json:"auths"`
	}
	raw, err := chromedp.Run(br.Ctx, chromedp.Evaluate[string](state))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if len(got.Closes) != 0 || len(got.States) != 2 || got.States[1] != "open" {
		t.Errorf("states %v, closes %s; want connecting, open and no close", got.States, got.Closes)
	}
	for _, a := range got.Auths {
		if a.User != "carol" || a.TTL <= 0 || a.TTL > 3 {
			t.Errorf("auth event %+v; want carol with a ttl of at most 3 s", a)
		}
	}
	if n := ds.Stats().Auth["refreshed"]; n < 2 {
		t.Errorf("Stats.Auth[refreshed] = %d; want at least 2", n)
	}
}
