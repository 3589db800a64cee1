package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/upstream"
)

// TestSubscribeWhileStarting: a browser that connects before the node has
// its exchange's symbol list (a restart with the browsers reconnecting at
// once) is asked to retry, code unavailable, not told that valid streams
// are invalid; once the list is in, the same subscribe works.
func TestSubscribeWhileStarting(t *testing.T) {
	_, simAddr := startSim(t, binancesim.Config{})
	simURL, _ := url.Parse("http://" + simAddr)
	release := make(chan struct{})
	proxy := httputil.NewSingleHostReverseProxy(simURL)
	rest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/exchangeInfo") {
			select { // the symbol list is held back until the test says
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(rest.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})

	ln := listen(t)
	g, err := New(Config{
		Listener:  ln,
		NodeID:    "test",
		Exchanges: map[string]upstream.Config{"binance": {URL: "ws://" + simAddr, RESTURL: rest.URL}},
		Logger:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	wsURL := "ws://" + ln.Addr().String() + "/ws"
	var c *downstreamtest.Client
	deadline := time.Now().Add(10 * time.Second)
	for c == nil {
		if c, err = downstreamtest.TryDial(wsURL, nil); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("dial %s: %v", wsURL, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	c.T = t
	t.Cleanup(func() { c.Close() })

	type reply struct {
		ID     int             `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    string   `json:"code"`
			Streams []string `json:"streams"`
		} `json:"error"`
	}
	subscribe := func(id int) reply {
		t.Helper()
		c.Send(fmt.Sprintf(`{"op":"subscribe","id":%d,"streams":["binance:btcusdt@trade"]}`, id))
		for {
			var r reply
			if err := json.Unmarshal(c.Next(), &r); err != nil {
				t.Fatal(err)
			}
			if r.ID == id {
				return r
			}
		}
	}
	r := subscribe(1)
	if r.Error == nil || r.Error.Code != "unavailable" || len(r.Error.Streams) != 1 {
		t.Fatalf("subscribe before the symbol list: %+v; want error unavailable naming the stream", r)
	}
	close(release)
	for id := 2; ; id++ {
		r := subscribe(id)
		if r.Error == nil {
			break
		}
		if r.Error.Code != "unavailable" || id > 8 {
			t.Fatalf("subscribe %d after releasing the symbol list: %+v; want unavailable until loaded, then a result", id, r.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
