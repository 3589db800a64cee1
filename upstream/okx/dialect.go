package okx

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/marketgate/marketgate/upstream"
)

// Defaults of OKX v5 public market data, the [upstream.Config] defaults
// of [V5].
const (
	DefaultURL     = "wss://ws.okx.com:8443"
	DefaultRESTURL = "https://www.okx.com"
	// DefaultRequestInterval spaces every frame of a connection. OKX
	// documents no per-second cap on public connections but answers
	// "Requests too frequent" (60014): four frames a second at most.
	DefaultRequestInterval = 250 * time.Millisecond
	// DefaultMaxRequests in DefaultRequestWindow: "the total number of
	// 'subscribe'/'unsubscribe'/'login' requests per connection is
	// limited to 480 times per hour". The core spends them from a bucket
	// of 120 refilled at 360 an hour, so no rolling hour holds more than
	// 480 and a burst of new subscriptions goes out at once.
	DefaultMaxRequests   = 480
	DefaultRequestWindow = time.Hour
	// DefaultMaxStreams: "subscribe through multiple websocket
	// connections, with each of less than 30 channels" (the 50- and
	// 400-level books); the core has one limit for every channel.
	DefaultMaxStreams = 29
	// DefaultIdleTimeout ends a connection that received nothing, not
	// even the pong of a heartbeat, for this long.
	DefaultIdleTimeout = 45 * time.Second
	// DefaultMaxLifetime: OKX documents no lifetime; the core wants one,
	// so connections are renewed daily (make before break).
	DefaultMaxLifetime = 24 * time.Hour
	// DefaultMaxConnAttempts in DefaultConnAttemptWindow: OKX allows 3
	// connection requests a second per IP, counted when they arrive; the
	// window is a quarter longer so that handshakes sent just over a
	// second apart cannot arrive within one.
	DefaultMaxConnAttempts   = 3
	DefaultConnAttemptWindow = 1250 * time.Millisecond
	// DefaultHeartbeat is how long a connection may send nothing before
	// it sends a text "ping": the server cuts it after 30 s.
	DefaultHeartbeat = 20 * time.Second
)

// The endpoint paths.
const (
	PublicPath   = "/ws/v5/public"
	BusinessPath = "/ws/v5/business" // candles
)

// InstrumentsPath is the REST path of the instrument list the gateway
// validates streams against (SPOT; see [Dialect.SymbolsPath]).
const InstrumentsPath = "/api/v5/public/instruments"

// Indexes of the endpoints.
const (
	endpointPublic   = 0
	endpointBusiness = 1
)

// Dialect is OKX v5 public market data as an [upstream.Dialect]. The
// zero value works; [V5] is the one to use. It is safe for concurrent
// use.
type Dialect struct {
	names *nameCache
	// every is the heartbeat period; 0: DefaultHeartbeat. Tests shorten
	// it to meet a simulator's short idle timeout.
	every time.Duration
}

var _ upstream.Dialect = Dialect{}

// V5 is OKX v5 public market data, exchange name "okx".
var V5 = Dialect{names: newNameCache()}

// Name returns "okx".
func (Dialect) Name() string { return "okx" }

// ParseStream parses name with [ParseStream].
func (Dialect) ParseStream(name string) (upstream.Stream, error) {
	s, err := ParseStream(name)
	if err != nil {
		return upstream.Stream{}, err
	}
	return s.Neutral(), nil
}

var kinds = kindNames[1:]

// Kinds returns the channel types: trades, tickers, books5, books,
// bbo-tbt, candle.
func (Dialect) Kinds() []string { return kinds }

var endpoints = []string{PublicPath, BusinessPath}

// Endpoints returns /ws/v5/public and /ws/v5/business.
func (Dialect) Endpoints() []string { return endpoints }

// EndpointOf returns /ws/v5/business for candles (moved there on
// 2023-06-20: asked for on /public they are refused), /ws/v5/public for
// the rest.
func (Dialect) EndpointOf(s upstream.Stream) int {
	if kindOf(&s) == KindCandle {
		return endpointBusiness
	}
	return endpointPublic
}

// ConnectURL returns base+path: OKX takes streams only in requests.
func (Dialect) ConnectURL(base, path string, _ []string, _ int) (string, int) {
	return base + path, 0
}

// URLRefused: no URL carries streams.
func (Dialect) URLRefused(int) bool { return false }

// SymbolsPaths returns the SPOT and SWAP instrument lists: OKX lists one
// instType per call (instType is required), and neither is paged.
func (Dialect) SymbolsPaths() []string {
	return []string{InstrumentsPath + "?instType=SPOT", InstrumentsPath + "?instType=SWAP"}
}

// instruments is the part of the instrument list the gateway needs.
type instruments struct {
	Code string `json:"code"`
	Msg  string `json:"msg"`
	Data []struct {
		InstID   string `json:"instId"`
		InstType string `json:"instType"`
		State    string `json:"state"`
	} `json:"data"`
}

// ParseSymbols returns the instIds of live SPOT and SWAP instruments of
// an instrument list.
func (Dialect) ParseSymbols(_ string, r io.Reader) (map[string]struct{}, string, error) {
	var list instruments
	if err := json.NewDecoder(r).Decode(&list); err != nil {
		return nil, "", err
	}
	if list.Code != "0" {
		return nil, "", fmt.Errorf("instrument list: code %q: %s", list.Code, list.Msg)
	}
	m := make(map[string]struct{}, len(list.Data))
	for _, in := range list.Data {
		if in.State != "live" || (in.InstType != "SPOT" && in.InstType != "SWAP") || !ValidInstID(in.InstID) {
			continue
		}
		m[in.InstID] = struct{}{}
	}
	return m, "", nil
}

// Limits returns OKX's documented limits.
func (Dialect) Limits() upstream.Limits {
	return upstream.Limits{
		URL: DefaultURL, RESTURL: DefaultRESTURL,
		RequestInterval: DefaultRequestInterval, MaxStreams: DefaultMaxStreams,
		MaxRequests: DefaultMaxRequests, RequestWindow: DefaultRequestWindow,
		IdleTimeout: DefaultIdleTimeout, MaxLifetime: DefaultMaxLifetime,
		MaxConnAttempts: DefaultMaxConnAttempts, ConnAttemptWindow: DefaultConnAttemptWindow,
	}
}

var ping = []byte("ping")

// Heartbeat: a text "ping" after 20 s without sending.
func (d Dialect) Heartbeat() upstream.Heartbeat {
	every := d.every
	if every == 0 {
		every = DefaultHeartbeat
	}
	return upstream.Heartbeat{Every: every, Payload: ping}
}
