package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"golang.org/x/sync/errgroup"

	"github.com/marketgate/marketgate/hub"
)

// Defaults of [BinanceConfig].
const (
	DefaultBinanceURL        = "wss://stream.binance.com:9443"
	DefaultBinanceRESTURL    = "https://api.binance.com"
	DefaultRequestInterval   = 300 * time.Millisecond
	DefaultMaxParams         = 200
	DefaultMaxStreams        = 1024
	DefaultReplyTimeout      = 10 * time.Second
	DefaultLinger            = 5 * time.Second
	DefaultSymbolRefresh     = time.Hour
	DefaultSymbolMissRefresh = time.Minute
	DefaultBackoffMin        = 500 * time.Millisecond
	DefaultBackoffMax        = 30 * time.Second
	DefaultDialTimeout       = 10 * time.Second
	DefaultIdleTimeout       = 5 * time.Minute
	DefaultMaxMessageSize    = 16 << 20
	DefaultMaxSymbolsBytes   = 32 << 20
)

const (
	// exchangeBinance is the exchange name and the stream key prefix.
	exchangeBinance = "binance"
	// maxPending bounds the requests awaiting a reply on one connection.
	maxPending = 16
	// stableSession is how long a connection must have lasted for the
	// reconnect backoff to start over from BackoffMin.
	stableSession = 10 * time.Second
	// writeTimeout bounds a single frame write.
	writeTimeout = 10 * time.Second
	// closeTimeout bounds writing the close frame on the way out.
	closeTimeout = time.Second
)

// BinanceConfig configures a [Binance] upstream. Zero values get the
// documented defaults; negative durations are invalid unless noted.
type BinanceConfig struct {
	// URL is the WebSocket base URL; the connection goes to URL+"/stream"
	// (combined events, each wrapped as {"stream":…,"data":…}).
	// Default "wss://stream.binance.com:9443".
	URL string
	// RESTURL is the REST base URL for /api/v3/exchangeInfo.
	// Default "https://api.binance.com".
	RESTURL string
	// HTTPClient fetches exchangeInfo. Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Publisher receives every event. Required.
	Publisher hub.Publisher
	// Logger receives the component's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for deadlines (linger, reply timeout, symbol
	// refresh) and for the times in [Status]. Default time.Now. Frame
	// pacing always uses the real monotonic clock, so that no injected
	// clock can make the gateway exceed the exchange's rate limit.
	Now func() time.Time

	// RequestInterval is the minimum spacing between any two frames sent
	// upstream (requests, pongs, close). Binance closes a connection that
	// sends more than 5 messages in any rolling second, and token buckets
	// with a burst get cut (binance-streams.md §5): the default 300 ms
	// allows at most 4 frames in any second.
	RequestInterval time.Duration
	// MaxParams is the number of streams per SUBSCRIBE or UNSUBSCRIBE.
	// Default 200 (437 params were seen to fail silently).
	MaxParams int
	// MaxStreams is the number of streams one connection may carry,
	// counting those with a request in flight. Default 1024 (Binance's
	// documented limit per connection).
	MaxStreams int
	// ReplyTimeout is how long to wait for the reply to a request. A
	// request that times out is retried once; a retry that times out ends
	// the connection. Default 10 s.
	ReplyTimeout time.Duration
	// Linger keeps a stream subscribed upstream this long after the
	// Unsubscribe that removed it, so that a quick re-subscribe costs no
	// request. Default 5 s; negative means unsubscribe at once.
	Linger time.Duration
	// SymbolRefresh is the period of exchangeInfo refreshes. Default 1 h.
	SymbolRefresh time.Duration
	// SymbolMissRefresh is the minimum time between refreshes caused by a
	// lookup of an unknown symbol. Default 1 min.
	SymbolMissRefresh time.Duration
	// MaxSymbolsBytes bounds the exchangeInfo response. Default 32 MiB.
	MaxSymbolsBytes int64
	// BackoffMin and BackoffMax bound the reconnect delay, which doubles
	// per failed attempt and is jittered (a uniform pick in [d/2, d]).
	// Defaults 500 ms and 30 s. After a close with code 1008 ("Too many
	// requests") the next delay is the longest.
	BackoffMin, BackoffMax time.Duration
	// DialTimeout bounds connecting, TLS and the WebSocket handshake.
	// Default 10 s.
	DialTimeout time.Duration
	// IdleTimeout ends a connection on which nothing at all (events, pings)
	// arrived for this long. Default 5 min: Binance documents a ping every
	// 20 s but has been seen to ping only every 3 min.
	IdleTimeout time.Duration
	// MaxMessageSize bounds one upstream message (gobwas has no default
	// limit). Default 16 MiB.
	MaxMessageSize int64
}

// withDefaults returns cfg with zero fields defaulted, or an error.
func (cfg BinanceConfig) withDefaults() (BinanceConfig, error) {
	if cfg.Publisher == nil {
		return cfg, errors.New("upstream: binance: Publisher is required")
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.URL, DefaultBinanceURL)
	def(&cfg.RESTURL, DefaultBinanceRESTURL)
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	cfg.RESTURL = strings.TrimRight(cfg.RESTURL, "/")
	if u, err := url.Parse(cfg.URL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return cfg, fmt.Errorf("upstream: binance: URL %q: want ws:// or wss:// with a host", cfg.URL)
	}
	if u, err := url.Parse(cfg.RESTURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("upstream: binance: RESTURL %q: want http:// or https:// with a host", cfg.RESTURL)
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
		{"RequestInterval", &cfg.RequestInterval, DefaultRequestInterval},
		{"ReplyTimeout", &cfg.ReplyTimeout, DefaultReplyTimeout},
		{"SymbolRefresh", &cfg.SymbolRefresh, DefaultSymbolRefresh},
		{"SymbolMissRefresh", &cfg.SymbolMissRefresh, DefaultSymbolMissRefresh},
		{"BackoffMin", &cfg.BackoffMin, DefaultBackoffMin},
		{"BackoffMax", &cfg.BackoffMax, DefaultBackoffMax},
		{"DialTimeout", &cfg.DialTimeout, DefaultDialTimeout},
		{"IdleTimeout", &cfg.IdleTimeout, DefaultIdleTimeout},
	}
	for _, d := range durs {
		if *d.p < 0 {
			return cfg, fmt.Errorf("upstream: binance: %s %v is negative", d.name, *d.p)
		}
		if *d.p == 0 {
			*d.p = d.def
		}
	}
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		return cfg, fmt.Errorf("upstream: binance: BackoffMax %v < BackoffMin %v", cfg.BackoffMax, cfg.BackoffMin)
	}
	ints := []struct {
		name string
		p    *int
		def  int
	}{
		{"MaxParams", &cfg.MaxParams, DefaultMaxParams},
		{"MaxStreams", &cfg.MaxStreams, DefaultMaxStreams},
	}
	for _, n := range ints {
		if *n.p < 0 {
			return cfg, fmt.Errorf("upstream: binance: %s %d is negative", n.name, *n.p)
		}
		if *n.p == 0 {
			*n.p = n.def
		}
	}
	if cfg.MaxMessageSize < 0 || cfg.MaxSymbolsBytes < 0 {
		return cfg, errors.New("upstream: binance: negative size limit")
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxSymbolsBytes == 0 {
		cfg.MaxSymbolsBytes = DefaultMaxSymbolsBytes
	}
	return cfg, nil
}

// Binance keeps ONE upstream connection to a Binance-compatible spot
// market-stream endpoint and subscribes on it, once each, every stream in
// its desired set. It publishes each event to the [hub.Publisher] as a
// [hub.Message] with Stream "binance:<name>".
//
// Callers maintain reference counts: Subscribe and Unsubscribe have set
// semantics and never block. One writer goroutine per connection turns
// changes of the desired set into batched SUBSCRIBE/UNSUBSCRIBE requests
// (at most MaxParams streams each) spaced at least RequestInterval apart,
// together with pongs. Nothing received from anywhere is ever written
// upstream: the writer only sends frames it composes from typed requests.
//
// All methods are safe for concurrent use. Run owns every goroutine.
//
// Lock order: Binance.mu before session.mu.
type Binance struct {
	cfg     BinanceConfig
	log     *slog.Logger
	symbols *symbolSet
	wake    chan struct{} // capacity 1: the desired set changed
	running atomic.Bool
	nextID  atomic.Int64 // request ids, unique across connections
	connID  atomic.Uint64

	// mu guards the following fields.
	mu             sync.Mutex
	desired        map[string]*desiredStream
	sess           *session // the live connection, nil while disconnected
	state          State
	connectedSince time.Time
	reconnects     int
	sessions       int
	lastErr        error
	lastErrAt      time.Time
	rejected       int // names Subscribe dropped: invalid or over MaxStreams
}

// desiredStream is one entry of the desired set.
type desiredStream struct {
	stream   Stream
	removeAt time.Time // non-zero: Unsubscribe'd; dropped at this time
	flowed   bool      // an event was published since the stream was added
	failed   string    // why it is not subscribed: rejected on this connection, or noSymbol
	noSymbol bool      // its symbol does not trade (re-checked on each diff)
}

var _ Exchange = (*Binance)(nil)

// NewBinance validates cfg and returns an idle Binance; Run starts it.
func NewBinance(cfg BinanceConfig) (*Binance, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "upstream", "exchange", exchangeBinance)
	b := &Binance{
		cfg:     cfg,
		log:     log,
		wake:    make(chan struct{}, 1),
		desired: make(map[string]*desiredStream),
		state:   StateIdle,
	}
	b.symbols = &symbolSet{
		url:         cfg.RESTURL + "/api/v3/exchangeInfo",
		client:      cfg.HTTPClient,
		refresh:     cfg.SymbolRefresh,
		missRefresh: cfg.SymbolMissRefresh,
		maxBytes:    cfg.MaxSymbolsBytes,
		now:         cfg.Now,
		log:         log,
		bo:          backoff{min: cfg.BackoffMin, max: cfg.BackoffMax},
		miss:        make(chan struct{}, 1),
		loaded:      make(chan struct{}),
	}
	return b, nil
}

// Name returns "binance", the prefix of this exchange's stream keys.
func (b *Binance) Name() string { return exchangeBinance }

// Validate checks an exchange stream name (without the "binance:" prefix):
// its grammar ([ParseStream]), that its symbol currently trades, and that
// the connection has room for one more stream. An unknown symbol triggers
// an early refresh of the symbol list (at most once per
// SymbolMissRefresh) but Validate never waits for it. Failures are
// [*ValidationError]s whose message suits clients; before the symbol list
// is first loaded it returns an error wrapping [ErrNotReady].
func (b *Binance) Validate(name string) error {
	st, err := ParseStream(name)
	if err != nil {
		return err
	}
	if st.Symbol != "" {
		known, loaded := b.symbols.has(st.Symbol)
		if !loaded {
			return fmt.Errorf("%w: binance symbol list not loaded yet", ErrNotReady)
		}
		if !known {
			b.symbols.noteMiss()
			return &ValidationError{Err: ErrUnknownSymbol, Value: st.Symbol}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.desired[name]; !ok && len(b.desired) >= b.cfg.MaxStreams {
		return &ValidationError{Err: ErrStreamLimit, Value: name}
	}
	return nil
}

// Subscribe adds names to the desired set; names already in it stay, and a
// name waiting out its linger is kept. It never blocks: the connection's
// writer subscribes them upstream in batches. Names that fail
// [ParseStream] or exceed MaxStreams are dropped and logged (Validate
// first); names whose symbol does not trade are kept but never sent, and
// show up in [Status.Failed].
func (b *Binance) Subscribe(names []string) {
	now := b.cfg.Now()
	changed := false
	b.mu.Lock()
	if b.pruneLocked(now) {
		changed = true
	}
	for _, name := range names {
		if d := b.desired[name]; d != nil {
			if !d.removeAt.IsZero() {
				d.removeAt = time.Time{}
				d.failed = ""
				changed = true
			}
			continue
		}
		st, err := ParseStream(name)
		if err != nil {
			b.rejected++
			b.log.Warn("subscribe: dropped invalid stream", "err", err)
			continue
		}
		if len(b.desired) >= b.cfg.MaxStreams {
			b.rejected++
			b.log.Warn("subscribe: dropped stream over the limit", "stream", name, "limit", b.cfg.MaxStreams)
			continue
		}
		b.desired[name] = &desiredStream{stream: st}
		changed = true
	}
	b.mu.Unlock()
	if changed {
		b.poke()
	}
}

// Unsubscribe removes names from the desired set. Each stays subscribed
// upstream for Linger and is then unsubscribed unless Subscribe brought it
// back meanwhile. Unknown names are ignored. It never blocks.
func (b *Binance) Unsubscribe(names []string) {
	now := b.cfg.Now()
	changed := false
	b.mu.Lock()
	for _, name := range names {
		d := b.desired[name]
		if d == nil || !d.removeAt.IsZero() {
			continue
		}
		if b.cfg.Linger < 0 {
			delete(b.desired, name)
		} else {
			d.removeAt = now.Add(b.cfg.Linger)
		}
		changed = true
	}
	b.mu.Unlock()
	if changed {
		b.poke()
	}
}

// poke wakes the writer of the live connection, if any.
func (b *Binance) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// pruneLocked drops desired streams whose linger has passed and reports
// whether it dropped any.
func (b *Binance) pruneLocked(now time.Time) bool {
	pruned := false
	for name, d := range b.desired {
		if !d.removeAt.IsZero() && !now.Before(d.removeAt) {
			delete(b.desired, name)
			pruned = true
		}
	}
	return pruned
}

// Ready returns nil once the symbol list is loaded and a connection is up,
// else an error wrapping [ErrNotReady] that says why.
func (b *Binance) Ready() error {
	if _, loaded := b.symbols.has(""); !loaded {
		return fmt.Errorf("%w: binance symbol list not loaded", ErrNotReady)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sess == nil {
		if b.lastErr != nil {
			return fmt.Errorf("%w: binance not connected: %w", ErrNotReady, b.lastErr)
		}
		return fmt.Errorf("%w: binance not connected", ErrNotReady)
	}
	return nil
}

// Run loads the symbol list, connects to URL+"/stream", keeps the desired
// set subscribed, and reconnects with backoff and jitter, resubscribing
// everything, whenever the connection ends. It blocks until ctx ends and
// then returns nil, after every goroutine it started has ended. A second
// concurrent Run returns [ErrAlreadyRunning].
func (b *Binance) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer b.running.Store(false)
	b.setState(StateLoading)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return b.symbols.run(gctx) })
	g.Go(func() error { return b.connectLoop(gctx) })
	err := g.Wait()
	b.setState(StateStopped)
	return err
}

func (b *Binance) setState(s State) {
	b.mu.Lock()
	b.state = s
	b.mu.Unlock()
}

// connectLoop runs one connection after another until ctx ends.
func (b *Binance) connectLoop(ctx context.Context) error {
	select {
	case <-b.symbols.loaded:
	case <-ctx.Done():
		return nil
	}
	bo := backoff{min: b.cfg.BackoffMin, max: b.cfg.BackoffMax}
	failures := 0
	for {
		b.setState(StateConnecting)
		start := time.Now()
		connected, err := b.runSession(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("connection ended")
		}
		b.mu.Lock()
		b.lastErr, b.lastErrAt = err, b.cfg.Now()
		b.state = StateBackoff
		b.mu.Unlock()

		if connected && time.Since(start) >= stableSession {
			bo.reset()
			failures = 0
		}
		attrs := []any{"err", err}
		if ce, ok := errors.AsType[wsutil.ClosedError](err); ok {
			attrs = append(attrs, "code", int(ce.Code), "reason", ce.Reason)
			if ce.Code == ws.StatusPolicyViolation {
				bo.exhaust() // 1008 "Too many requests": the venue penalizes quick returns
			}
		}
		if errors.Is(err, ErrServerShutdown) {
			bo.reset() // rotate now
		}
		delay := bo.next()
		failures++
		attrs = append(attrs, "retry_in", delay, "attempt", failures)
		if connected || failures == 1 {
			b.log.Warn("upstream connection ended", attrs...)
		} else {
			b.log.Debug("upstream connect failed", attrs...)
		}
		if !sleep(ctx, delay) {
			return nil
		}
	}
}

// runSession dials, serves one connection until it ends, and returns why,
// and whether the handshake succeeded.
func (b *Binance) runSession(ctx context.Context) (connected bool, err error) {
	u := b.cfg.URL + "/stream"
	d := ws.Dialer{Timeout: b.cfg.DialTimeout}
	conn, br, _, err := d.Dial(ctx, u)
	if err != nil {
		return false, fmt.Errorf("dial %s: %w", u, err)
	}
	// Frames the server sent right behind the 101 sit in br: it must be the
	// source for the whole life of the connection (gobwas/ws#19, #214).
	var src io.Reader = conn
	if br != nil {
		src = br
		defer ws.PutReader(br)
	}
	s := newSession(b, b.connID.Add(1), conn, src)

	b.mu.Lock()
	if b.sessions > 0 {
		b.reconnects++
	}
	b.sessions++
	b.sess = s
	b.state = StateConnected
	b.connectedSince = b.cfg.Now()
	for _, d := range b.desired {
		d.failed = "" // retry rejected streams once per connection
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.sess = nil
		b.connectedSince = time.Time{}
		b.mu.Unlock()
	}()

	s.log.Info("upstream connected", "url", u)
	b.poke()
	return true, s.run(ctx)
}

// State is the lifecycle state of an upstream, as shown by [Status].
type State string

// The states of an upstream.
const (
	StateIdle       State = "idle"       // Run has not been called
	StateLoading    State = "loading"    // loading the symbol list
	StateConnecting State = "connecting" // dialling
	StateConnected  State = "connected"  // connection up
	StateBackoff    State = "backoff"    // waiting to reconnect
	StateStopped    State = "stopped"    // Run returned
)

// Status is a snapshot of an upstream for the control API.
type Status struct {
	// Exchange is the exchange name, e.g. "binance".
	Exchange string `json:"exchange"`
	// State is the lifecycle state.
	State State `json:"state"`
	// Streams counts streams the exchange confirmed on the live connection.
	Streams int `json:"streams"`
	// PendingStreams counts streams with a request in flight.
	PendingStreams int `json:"pending_streams"`
	// Desired counts streams in the desired set, lingering ones included.
	Desired int `json:"desired"`
	// Failed lists desired streams the exchange rejected on the live
	// connection, or whose symbol no longer trades; sorted by stream.
	Failed []FailedStream `json:"failed,omitempty"`
	// Rejected counts names Subscribe dropped (invalid or over the limit).
	Rejected int `json:"rejected"`
	// Symbols counts the trading symbols known.
	Symbols int `json:"symbols"`
	// ConnectedSince is when the live connection was established; zero
	// while disconnected.
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	// Reconnects counts connections after the first.
	Reconnects int `json:"reconnects"`
	// LastError says why the previous connection (attempt) ended.
	LastError string `json:"last_error,omitempty"`
	// LastErrorAt is when it ended.
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// FailedStream is a desired stream that is not subscribed, and why.
type FailedStream struct {
	Stream string `json:"stream"`
	Error  string `json:"error"`
}

// Status returns a snapshot of the upstream's state.
func (b *Binance) Status() Status {
	st := Status{Exchange: exchangeBinance, Symbols: b.symbols.len()}
	b.mu.Lock()
	defer b.mu.Unlock()
	st.State = b.state
	st.Desired = len(b.desired)
	st.Rejected = b.rejected
	st.ConnectedSince = b.connectedSince
	st.Reconnects = b.reconnects
	if b.lastErr != nil {
		st.LastError, st.LastErrorAt = b.lastErr.Error(), b.lastErrAt
	}
	for name, d := range b.desired {
		if d.failed != "" {
			st.Failed = append(st.Failed, FailedStream{Stream: name, Error: d.failed})
		}
	}
	slices.SortFunc(st.Failed, func(x, y FailedStream) int { return strings.Compare(x.Stream, y.Stream) })
	if s := b.sess; s != nil {
		st.Streams, st.PendingStreams = s.countsLocked()
	}
	return st
}
