package upstream

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/marketgate/marketgate/hub"
)

// Defaults of [Config] that do not depend on the exchange. The others are
// the dialect's [Limits].
const (
	DefaultMaxParams         = 200 // a SUBSCRIBE of 437 params was seen to fail silently
	DefaultMaxShards         = 32
	DefaultMaxURLBytes       = 8 << 10
	DefaultReplyTimeout      = 10 * time.Second
	DefaultLinger            = 5 * time.Second
	DefaultSymbolRefresh     = time.Hour
	DefaultSymbolMissRefresh = time.Minute
	DefaultBackoffMin        = 500 * time.Millisecond
	DefaultBackoffMax        = 30 * time.Second
	DefaultDialTimeout       = 10 * time.Second
	DefaultMaxMessageSize    = 16 << 20
	DefaultMaxSymbolsBytes   = 32 << 20
	DefaultSymbolMaxDrop     = 0.5
	DefaultRotateBefore      = 10 * time.Minute // RotateAfter = MaxLifetime − this
	DefaultHandoverTimeout   = 10 * time.Second
	DefaultHandoverBuffer    = 4096
)

// Config configures a [Feed]. Zero values get the documented defaults,
// several of which are the exchange's (its Dialect's) limits; negative
// durations and counts are invalid unless noted.
type Config struct {
	// Dialect is the exchange product, e.g. binance.Spot. Required.
	Dialect Dialect
	// URL is the WebSocket base URL; each endpoint's path is appended.
	// Default: the exchange's ([Limits].URL).
	URL string
	// RESTURL is the REST base URL of the symbol list. Default: the
	// exchange's ([Limits].RESTURL).
	RESTURL string
	// HTTPClient fetches the symbol list. Default: a client with a 30 s
	// timeout.
	HTTPClient *http.Client
	// Publisher receives every event. Required. Message.Data aliases the
	// connection's read buffer and is valid only until Publish returns.
	Publisher hub.Publisher
	// Logger receives the component's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for deadlines (linger, reply timeout, symbol
	// refresh) and the times in [Status]. Default time.Now. Frame pacing,
	// the connection-attempt budget and rotation always use the real
	// monotonic clock, so no injected clock can make the gateway exceed an
	// exchange limit.
	Now func() time.Time

	// RequestInterval is the minimum spacing between any two frames sent
	// on one connection (requests, pongs, heartbeats, close). Exchanges
	// close a connection that sends too many messages in a rolling second,
	// and a token bucket's burst is exactly what gets cut, so frames are
	// spaced evenly. Default: the exchange's, safely under its limit.
	RequestInterval time.Duration
	// MaxParams is the number of streams per SUBSCRIBE or UNSUBSCRIBE.
	// Default 200.
	MaxParams int
	// MaxRequests, when positive, is the number of SUBSCRIBE and
	// UNSUBSCRIBE requests one connection may send in any rolling
	// RequestWindow (OKX allows 480 an hour). Requests draw on a token
	// bucket holding MaxRequests/4, refilled at the rest over the window,
	// so a burst (a page of new subscriptions) goes out at RequestInterval
	// spacing while no rolling window can ever hold more than MaxRequests;
	// when the bucket is empty requests wait (pings, pongs and heartbeats
	// do not). Default: the exchange's; 0 with a zero window: none.
	MaxRequests   int
	RequestWindow time.Duration
	// MaxStreams is the number of streams one connection may carry,
	// counting those with a request in flight. Beyond it the feed opens
	// another connection to the same endpoint (a shard). Default: the
	// exchange's. An exchange that answers "too many subscriptions"
	// (ReplyError.Full) below it lowers it for that endpoint.
	MaxStreams int
	// MaxShards is the number of connections one endpoint may have (not
	// counting a connection being replaced). Streams beyond MaxShards ×
	// MaxStreams are refused with [ErrStreamLimit]. Default 32.
	MaxShards int
	// MaxURLBytes bounds the URL of a new connection: on exchanges whose
	// URLs can subscribe streams (which costs no request), the streams it
	// is to carry go in the URL as far as they fit, the rest are
	// subscribed with requests. Default 8 KiB; negative puts no stream in
	// URLs.
	MaxURLBytes int
	// ReplyTimeout is how long to wait for the reply to a request. A
	// request that times out is retried once; a retry that times out ends
	// the connection. Default 10 s.
	ReplyTimeout time.Duration
	// Lazy opens connections only while streams are wanted: no endpoint
	// keeps a first connection open, and Ready needs only the symbol list.
	// For a cluster node, which carries an exchange only while it owns
	// that exchange's lease: the others hold no idle connection to it.
	Lazy bool
	// Linger keeps a stream subscribed upstream this long after the
	// Unsubscribe that removed it, so that a quick re-subscribe costs no
	// request; a shard left without streams closes after it too (the first
	// shard of each endpoint stays). Default 5 s; negative means at once.
	Linger time.Duration
	// SymbolRefresh is the period of symbol list refreshes. Default 1 h.
	SymbolRefresh time.Duration
	// SymbolMissRefresh is the minimum time between refreshes caused by a
	// lookup of an unknown symbol. Default 1 min.
	SymbolMissRefresh time.Duration
	// MaxSymbolsBytes bounds the symbol list response. Default 32 MiB.
	MaxSymbolsBytes int64
	// SymbolMaxDrop is the share of the known symbols a refresh may drop.
	// A refresh that drops more, or lists none, is taken for a faulty
	// answer: the list in use stays, a warning is logged and the refresh
	// is retried after a backoff. Default 0.5; 1 accepts any non-empty
	// list.
	SymbolMaxDrop float64
	// BackoffMin and BackoffMax bound the reconnect delay, which doubles
	// per failed attempt and is jittered (a uniform pick in [d/2, d]).
	// After an abrupt drop the first retry is immediate; after a close
	// frame from the exchange it waits at least BackoffMin; after a close
	// with code 1008 ("Too many requests") it waits the longest. Defaults
	// 500 ms and 30 s.
	BackoffMin, BackoffMax time.Duration
	// DialTimeout bounds connecting, TLS and the WebSocket handshake.
	// Default 10 s.
	DialTimeout time.Duration
	// IdleTimeout ends a connection on which nothing at all (events,
	// pings, heartbeat answers) arrived for this long. Default: the
	// exchange's.
	IdleTimeout time.Duration
	// MaxMessageSize bounds one upstream message. Default 16 MiB.
	MaxMessageSize int64

	// MaxLifetime is how long the exchange lets a connection live.
	// Default: the exchange's.
	MaxLifetime time.Duration
	// RotateAfter is the age at which a connection is replaced: a new
	// connection subscribes the same streams, each stream switches over
	// where no event is lost or repeated, then the old one is closed.
	// Default MaxLifetime − 10 min, or MaxLifetime/2 when that is shorter
	// than MaxLifetime/2. Must be below MaxLifetime.
	RotateAfter time.Duration
	// HandoverTimeout bounds a rotation: streams that found no switch
	// point by then switch anyway (with Gap when continuity is not
	// proven), and the old connection is closed. Default 10 s.
	HandoverTimeout time.Duration
	// HandoverBuffer is the number of events buffered per stream from the
	// new connection while the old one catches up; on overflow the stream
	// switches with Gap. Default 4096.
	HandoverBuffer int
	// MaxConnAttempts is the number of connection attempts (dials,
	// whatever their cause: new shards, rotations, reconnects) allowed in
	// any ConnAttemptWindow, counted over a sliding log; when they are
	// spent the next attempt waits (logged once). Default: the
	// exchange's limit per IP.
	MaxConnAttempts int
	// ConnAttemptWindow is the window of MaxConnAttempts. Default: the
	// exchange's.
	ConnAttemptWindow time.Duration
	// Redundancy is the number of connections carrying each stream at
	// once (lanes, opened at different times), from 1 to [MaxRedundancy];
	// events are de-duplicated by their identity before they are
	// published, so an abrupt drop of one of them loses nothing when it
	// is 2 or more (redundancy.go). The lanes share MaxConnAttempts and
	// MaxShards (each lane gets MaxShards/Redundancy connections per
	// endpoint, which must be at least 1), so the exchange's limits hold
	// as with one: Redundancy N carries 1/N as many streams per feed, at
	// N times the inbound bandwidth and parse work. Default 1.
	Redundancy int
}

// withDefaults returns cfg with zero fields defaulted, or an error.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Dialect == nil {
		return cfg, &ConfigError{Field: "Dialect", Err: errors.New("Dialect is required")}
	}
	name := cfg.Dialect.Name()
	fail := func(field, format string, args ...any) (Config, error) {
		return cfg, &ConfigError{Exchange: name, Field: field, Err: fmt.Errorf(format, args...)}
	}
	if cfg.Publisher == nil {
		return fail("Publisher", "Publisher is required")
	}
	lim := cfg.Dialect.Limits()
	if cfg.URL == "" {
		cfg.URL = lim.URL
	}
	if cfg.RESTURL == "" {
		cfg.RESTURL = lim.RESTURL
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	cfg.RESTURL = strings.TrimRight(cfg.RESTURL, "/")
	if u, err := url.Parse(cfg.URL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fail("URL", "URL %q: want ws:// or wss:// with a host", cfg.URL)
	}
	if u, err := url.Parse(cfg.RESTURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail("RESTURL", "RESTURL %q: want http:// or https:// with a host", cfg.RESTURL)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	durs := []struct {
		name string
		p    *time.Duration
		def  time.Duration
	}{
		{"RequestInterval", &cfg.RequestInterval, lim.RequestInterval},
		{"ReplyTimeout", &cfg.ReplyTimeout, DefaultReplyTimeout},
		{"SymbolRefresh", &cfg.SymbolRefresh, DefaultSymbolRefresh},
		{"SymbolMissRefresh", &cfg.SymbolMissRefresh, DefaultSymbolMissRefresh},
		{"BackoffMin", &cfg.BackoffMin, DefaultBackoffMin},
		{"BackoffMax", &cfg.BackoffMax, DefaultBackoffMax},
		{"DialTimeout", &cfg.DialTimeout, DefaultDialTimeout},
		{"IdleTimeout", &cfg.IdleTimeout, lim.IdleTimeout},
		{"MaxLifetime", &cfg.MaxLifetime, lim.MaxLifetime},
		{"HandoverTimeout", &cfg.HandoverTimeout, DefaultHandoverTimeout},
		{"ConnAttemptWindow", &cfg.ConnAttemptWindow, lim.ConnAttemptWindow},
		{"RotateAfter", &cfg.RotateAfter, 0},
		{"RequestWindow", &cfg.RequestWindow, lim.RequestWindow},
	}
	for _, d := range durs {
		if *d.p < 0 {
			return fail(d.name, "%s %v is negative", d.name, *d.p)
		}
		if *d.p == 0 {
			*d.p = d.def
		}
	}
	if cfg.RotateAfter == 0 {
		cfg.RotateAfter = max(cfg.MaxLifetime-DefaultRotateBefore, cfg.MaxLifetime/2)
	}
	if cfg.RotateAfter >= cfg.MaxLifetime {
		return fail("RotateAfter", "RotateAfter %v is not below MaxLifetime %v", cfg.RotateAfter, cfg.MaxLifetime)
	}
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		return fail("BackoffMin", "BackoffMin %v is above BackoffMax %v", cfg.BackoffMin, cfg.BackoffMax)
	}
	ints := []struct {
		name string
		p    *int
		def  int
	}{
		{"MaxParams", &cfg.MaxParams, cmp.Or(lim.MaxParams, DefaultMaxParams)},
		{"MaxStreams", &cfg.MaxStreams, lim.MaxStreams},
		{"MaxShards", &cfg.MaxShards, DefaultMaxShards},
		{"HandoverBuffer", &cfg.HandoverBuffer, DefaultHandoverBuffer},
		{"MaxConnAttempts", &cfg.MaxConnAttempts, lim.MaxConnAttempts},
		{"MaxRequests", &cfg.MaxRequests, lim.MaxRequests},
	}
	for _, n := range ints {
		if *n.p < 0 {
			return fail(n.name, "%s %d is negative", n.name, *n.p)
		}
		if *n.p == 0 {
			*n.p = n.def
		}
	}
	switch {
	case cfg.Redundancy < 0 || cfg.Redundancy > MaxRedundancy:
		return fail("Redundancy", "Redundancy %d is not between 1 and %d", cfg.Redundancy, MaxRedundancy)
	case cfg.Redundancy == 0:
		cfg.Redundancy = 1
	}
	if cfg.MaxShards/cfg.Redundancy < 1 {
		return fail("Redundancy", "Redundancy %d is above MaxShards %d: each lane needs a connection per endpoint", cfg.Redundancy, cfg.MaxShards)
	}
	if (cfg.MaxRequests > 0) != (cfg.RequestWindow > 0) {
		return fail("MaxRequests", "MaxRequests %d and RequestWindow %v: set both or neither", cfg.MaxRequests, cfg.RequestWindow)
	}
	if cfg.MaxURLBytes == 0 {
		cfg.MaxURLBytes = DefaultMaxURLBytes
	}
	if cfg.MaxMessageSize < 0 {
		return fail("MaxMessageSize", "negative size limit")
	}
	if cfg.MaxSymbolsBytes < 0 {
		return fail("MaxSymbolsBytes", "negative size limit")
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxSymbolsBytes == 0 {
		cfg.MaxSymbolsBytes = DefaultMaxSymbolsBytes
	}
	if cfg.SymbolMaxDrop < 0 || cfg.SymbolMaxDrop > 1 {
		return fail("SymbolMaxDrop", "SymbolMaxDrop %v is not between 0 and 1", cfg.SymbolMaxDrop)
	}
	if cfg.SymbolMaxDrop == 0 {
		cfg.SymbolMaxDrop = DefaultSymbolMaxDrop
	}
	return cfg, nil
}

// CheckConfig reports whether [New] would accept cfg, without building
// anything: nil, or the [*ConfigError] New would return.
func CheckConfig(cfg Config) error {
	_, err := cfg.withDefaults()
	return err
}

// ConfigError is a [Config] that [New] refuses: which exchange, which
// field, and why. Callers that set fields from flags map Field to their
// flag's name.
type ConfigError struct {
	// Exchange is the dialect's name; empty when there is no dialect.
	Exchange string
	// Field is the name of the Config field at fault, e.g. "RotateAfter".
	Field string
	// Err says what is wrong with it.
	Err error
}

// Error returns "upstream: <exchange>: <what is wrong>".
func (e *ConfigError) Error() string {
	if e.Exchange == "" {
		return "upstream: " + e.Err.Error()
	}
	return "upstream: " + e.Exchange + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *ConfigError) Unwrap() error { return e.Err }
