package market

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Books serves depth from the books the gateway keeps.
type Books interface {
	// Depth returns the kept book of symbol (the exchange's spelling, e.g.
	// "BTCUSDT") as exchange's REST depth body with at most limit levels a
	// side; ok is false when the gateway keeps no fresh book of it (then
	// market asks the exchange).
	Depth(ctx context.Context, exchange, symbol string, limit int) (body []byte, ok bool, err error)
}

// Defaults of [Config] and [Exchange].
const (
	DefaultWeightShare    = 0.8
	DefaultRecoverFor     = time.Minute
	DefaultCacheEntries   = 4096
	DefaultCacheBytes     = 128 << 20
	DefaultMaxStale       = 10 * time.Minute
	DefaultMaxQueryBytes  = 1024
	DefaultMaxBodyBytes   = 32 << 20 // Binance spot's full exchangeInfo is several MB
	DefaultMaxInFlight    = 8
	DefaultRequestTimeout = 10 * time.Second
)

// DefaultTTL returns how long an answer of e stays fresh by default; the
// package doc says why. time and ping are answered locally (0).
func DefaultTTL(e Endpoint) time.Duration { return defaultTTL[e] }

var defaultTTL = map[Endpoint]time.Duration{
	EndpointExchangeInfo: time.Minute,
	EndpointDepth:        250 * time.Millisecond,
	EndpointKlines:       time.Second,
	EndpointTrades:       500 * time.Millisecond,
	EndpointTicker24h:    time.Second,
}

// Exchange configures one exchange product's REST.
type Exchange struct {
	// Rules are the product's REST rules (required), e.g.
	// binance.SpotREST; its Name names the exchange.
	Rules Rules
	// BaseURL is the REST base URL; default Rules.BaseURL().
	BaseURL string
	// WeightLimit is the exchange's request weight per minute per IP;
	// default Rules.WeightLimit() (Binance spot 6000, USD-M 2400).
	WeightLimit int
	// WeightShare is the share of WeightLimit the node may spend per
	// minute, in (0,1]; default 0.8, leaving room for other processes on
	// the IP.
	WeightShare float64
	// RecoverFor is how long the budget stays halved after a 429 stop
	// ends; default 1 min.
	RecoverFor time.Duration
}

// Config configures a [Market]. A zero field takes the default in its
// comment. Config is copied by [New].
type Config struct {
	// Exchanges are the exchange products served (at least one; names
	// distinct).
	Exchanges []Exchange
	// AllowedOrigins are the browser origins allowed to read answers
	// (CORS), e.g. "https://app.example.com"; empty allows any ("*").
	AllowedOrigins []string
	// Books, when set, serves depth from the gateway's kept books.
	Books Books
	// Logger receives the package's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HTTPClient makes the exchange calls; nil means a client of its own
	// (no redirects followed, 10 s dial and header timeouts).
	HTTPClient *http.Client
	// TTL overrides [DefaultTTL] per endpoint.
	TTL map[Endpoint]time.Duration
	// CacheEntries and CacheBytes bound the cache; default 4096 entries
	// and 128 MiB.
	CacheEntries int
	CacheBytes   int64
	// MaxStale is how long past its TTL an answer may be served during a
	// stop; default 10 min.
	MaxStale time.Duration
	// MaxQueryBytes bounds a request's query string; a longer one is
	// refused with 414. Default 1024.
	MaxQueryBytes int
	// MaxBodyBytes bounds an exchange answer read; default 32 MiB.
	MaxBodyBytes int64
	// MaxInFlight bounds the calls in flight to one exchange; default 8.
	MaxInFlight int
	// RequestTimeout bounds one exchange call; default 10 s.
	RequestTimeout time.Duration
}

// Market is the market-data REST service: the governed clients, the cache
// and the HTTP handler. It starts no goroutines; a call in flight is
// owned by the requests waiting for it. Safe for concurrent use.
type Market struct {
	cfg       Config
	log       *slog.Logger
	exchanges map[string]*exchange
	names     []string
	cache     *cache
	sf        singleflight.Group
	// origins are the CORS origins allowed (AllowedOrigins, then
	// SetAllowedOrigins's); an empty set allows any.
	origins atomic.Pointer[map[string]bool]
	handler http.Handler
}

// exchange is one configured exchange product.
type exchange struct {
	name   string
	rules  Rules
	client *Client
}

// New validates cfg, fills its defaults and returns a Market.
func New(cfg Config) (*Market, error) {
	if len(cfg.Exchanges) == 0 {
		return nil, errors.New("market: config: no exchanges")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				TLSHandshakeTimeout:   10 * time.Second,
				ResponseHeaderTimeout: 10 * time.Second,
				MaxIdleConnsPerHost:   DefaultMaxInFlight,
				IdleConnTimeout:       90 * time.Second,
				ForceAttemptHTTP2:     true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	ttl := make(map[Endpoint]time.Duration, len(defaultTTL))
	for e, d := range defaultTTL {
		ttl[e] = d
	}
	for e, d := range cfg.TTL {
		if d < 0 {
			return nil, fmt.Errorf("market: config: TTL of %s is negative", e)
		}
		ttl[e] = d
	}
	cfg.TTL = ttl
	setDefault(&cfg.CacheEntries, DefaultCacheEntries)
	setDefault(&cfg.CacheBytes, DefaultCacheBytes)
	setDefault(&cfg.MaxStale, DefaultMaxStale)
	setDefault(&cfg.MaxQueryBytes, DefaultMaxQueryBytes)
	setDefault(&cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&cfg.MaxInFlight, DefaultMaxInFlight)
	setDefault(&cfg.RequestTimeout, DefaultRequestTimeout)
	if cfg.CacheEntries < 0 || cfg.CacheBytes < 0 || cfg.MaxStale < 0 || cfg.MaxQueryBytes < 0 ||
		cfg.MaxBodyBytes < 0 || cfg.MaxInFlight < 0 || cfg.RequestTimeout < 0 {
		return nil, errors.New("market: config: negative bound")
	}
	m := &Market{
		cfg: cfg, log: cfg.Logger.With("component", "market"),
		exchanges: make(map[string]*exchange),
		cache:     newCache(cfg.CacheEntries, cfg.CacheBytes, cfg.MaxStale),
	}
	m.SetAllowedOrigins(cfg.AllowedOrigins)
	for i, ec := range cfg.Exchanges {
		if ec.Rules == nil {
			return nil, fmt.Errorf("market: config: exchange %d has no Rules", i)
		}
		name := ec.Rules.Name()
		if _, dup := m.exchanges[name]; dup || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("market: config: exchange name %q empty, repeated or with a slash", name)
		}
		if ec.BaseURL == "" {
			ec.BaseURL = ec.Rules.BaseURL()
		}
		if u, err := url.Parse(ec.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("market: config: %s: BaseURL %q is not an http(s) URL", name, ec.BaseURL)
		}
		setDefault(&ec.WeightLimit, ec.Rules.WeightLimit())
		setDefault(&ec.WeightShare, DefaultWeightShare)
		setDefault(&ec.RecoverFor, DefaultRecoverFor)
		if ec.WeightLimit <= 0 || ec.WeightShare <= 0 || ec.WeightShare > 1 || ec.RecoverFor < 0 {
			return nil, fmt.Errorf("market: config: %s: WeightLimit %d must be positive and WeightShare %v in (0,1]", name, ec.WeightLimit, ec.WeightShare)
		}
		c := &Client{
			name: name, base: strings.TrimRight(ec.BaseURL, "/"), rules: ec.Rules, hc: cfg.HTTPClient,
			budget:     max(1, int(float64(ec.WeightLimit)*ec.WeightShare)),
			recoverFor: ec.RecoverFor, maxBody: cfg.MaxBodyBytes, timeout: cfg.RequestTimeout,
			sem: make(chan struct{}, cfg.MaxInFlight), now: cfg.Now,
			log:      m.log.With("exchange", name),
			requests: make(map[requestKey]uint64),
		}
		m.exchanges[name] = &exchange{name: name, rules: ec.Rules, client: c}
		m.names = append(m.names, name)
	}
	slices.Sort(m.names)
	m.handler = http.HandlerFunc(m.serveHTTP)
	return m, nil
}

func setDefault[T int | int64 | float64 | time.Duration](v *T, d T) {
	if *v == 0 {
		*v = d
	}
}

// Client returns the governed client of the named exchange, or nil when
// none is configured.
func (m *Market) Client(exchange string) *Client {
	if ex := m.exchanges[exchange]; ex != nil {
		return ex.client
	}
	return nil
}

// Handler returns the HTTP handler of the native and drop-in paths (see
// the package doc); mount it on /api/v1/market/ and /<exchange>/ for each
// exchange.
func (m *Market) Handler() http.Handler { return m.handler }

// Stats are the counters of every exchange, sorted by name, and the
// cache's size.
type Stats struct {
	Exchanges    []ExchangeStats
	CacheEntries int
	CacheBytes   int64
}

// Stats returns a snapshot of the counters.
func (m *Market) Stats() Stats {
	var st Stats
	for _, name := range m.names {
		st.Exchanges = append(st.Exchanges, m.exchanges[name].client.Stats())
	}
	st.CacheEntries, st.CacheBytes = m.cache.len()
	return st
}

// Symbols returns exchange's symbol list, from the same cached
// exchangeInfo as /symbols (one governed call per TTL at most).
func (m *Market) Symbols(ctx context.Context, exchange string) ([]Symbol, error) {
	ex := m.exchanges[exchange]
	if ex == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownExchange, exchange)
	}
	en, _, err := m.lookup(ctx, ex, EndpointExchangeInfo, ex.rules.Path(EndpointExchangeInfo), url.Values{}, false)
	if err != nil {
		return nil, err
	}
	return ex.rules.ParseSymbols(en.body)
}

// SetAllowedOrigins replaces the browser origins allowed to read answers
// (Config.AllowedOrigins; empty: any), for a reload. Safe for concurrent
// use.
func (m *Market) SetAllowedOrigins(origins []string) {
	set := make(map[string]bool, len(origins))
	for _, o := range origins {
		set[strings.TrimRight(o, "/")] = true
	}
	m.origins.Store(&set)
}
