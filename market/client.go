package market

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Response is an exchange's answer to a [Client.Get]: its status, headers
// and whole body. The caller owns it; the Client keeps no reference.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Backoff after a 5xx or a network error: the first pause, its cap (it
// doubles per failure in a row), the stop when a 429 gives no Retry-After
// (until the exchange's minute ends, at least this), and the ban when a
// 418 states no end (Binance's shortest).
const (
	minBackoff     = 250 * time.Millisecond
	maxBackoff     = 10 * time.Second
	defaultStop429 = time.Second
	defaultBan418  = 2 * time.Minute
)

// Client is the governed REST client of one exchange host for the node:
// every call it makes is counted against a local per-minute weight budget
// (a share of the exchange's limit, re-synced from the used-weight header
// of every answer, since other processes on the IP spend weight too);
// a 429 stops every call for its Retry-After and halves the budget for a
// while after; a 418 stops every call until the ban ends; a 5xx or a
// network error pauses calls briefly. A Client is safe for concurrent use.
type Client struct {
	name       string
	base       string
	rules      Rules
	hc         *http.Client
	budget     int // weight per minute at full rate
	recoverFor time.Duration
	maxBody    int64
	timeout    time.Duration
	sem        chan struct{} // in-flight calls
	now        func() time.Time
	log        *slog.Logger

	// Counters the handler bumps without the lock.
	coalesced, hits, misses, stale, bookHits, unavailable atomic.Uint64

	// mu guards the following fields.
	mu           sync.Mutex
	minute       int64 // the Unix minute used counts
	used         int   // weight spent in minute, ours and (from the header) others'
	lastUsed     int   // the last used-weight header seen
	stopUntil    time.Time
	stopStatus   int
	halfUntil    time.Time
	backoffUntil time.Time
	backoff      time.Duration
	requests     map[requestKey]uint64
	weightSpent  uint64
	stops429     uint64
	stops418     uint64
	rejected     uint64
}

type requestKey struct {
	endpoint Endpoint
	status   int
}

// Get calls path (e.g. "/api/v3/depth") with q on the exchange and returns
// its answer, whatever the status, except that a 429 or 418 answer is
// returned with an error wrapping [ErrBanned]. It waits, bounded by ctx,
// for weight budget and for a short backoff after an exchange failure; it
// fails at once with a [BannedError] while the exchange has the IP
// stopped. Get neither caches nor coalesces: a book keeper needs a
// snapshot taken after its call.
func (c *Client) Get(ctx context.Context, path string, q url.Values) (*Response, error) {
	return c.do(ctx, path, q, false)
}

// Name returns the exchange's name.
func (c *Client) Name() string { return c.name }

// do makes one governed call. With failFast it refuses at once, with a
// [BusyError], a call that would have to wait for budget or backoff.
func (c *Client) do(ctx context.Context, path string, q url.Values, failFast bool) (*Response, error) {
	ep, ok := c.rules.Endpoint(path)
	if !ok {
		ep = EndpointOther
	}
	weight := c.rules.Weight(path, q)
	minute, err := c.acquire(ctx, weight, failFast)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", c.name, path, err)
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s %s: wait for a call slot: %w", c.name, path, context.Cause(ctx))
	}
	defer func() { <-c.sem }()

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", c.name, path, err)
	}
	hr, err := c.hc.Do(req)
	if err != nil {
		c.failed(ep, weight)
		return nil, fmt.Errorf("%s %s: %w", c.name, path, err)
	}
	body, err := io.ReadAll(io.LimitReader(hr.Body, c.maxBody+1))
	hr.Body.Close()
	if err == nil && int64(len(body)) > c.maxBody {
		err = fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, c.maxBody)
	}
	if err != nil {
		c.failed(ep, weight)
		return nil, fmt.Errorf("%s %s: read answer: %w", c.name, path, err)
	}
	resp := &Response{Status: hr.StatusCode, Header: hr.Header, Body: body}
	if err := c.answered(minute, ep, weight, resp); err != nil {
		return resp, fmt.Errorf("%s %s: %w", c.name, path, err)
	}
	return resp, nil
}

// acquire takes weight from the current minute's budget and returns the
// minute, waiting (bounded by ctx) or, with failFast, refusing when the
// budget is spent or a backoff runs. A stop is always refused at once.
func (c *Client) acquire(ctx context.Context, weight int, failFast bool) (int64, error) {
	for {
		c.mu.Lock()
		now := c.now()
		if now.Before(c.stopUntil) {
			err := &BannedError{Exchange: c.name, Status: c.stopStatus, Until: c.stopUntil}
			c.mu.Unlock()
			return 0, err
		}
		var until time.Time
		var cause error
		if now.Before(c.backoffUntil) {
			until, cause = c.backoffUntil, ErrBackoff
		} else {
			c.rollLocked(now)
			// A call heavier than the whole budget goes when nothing
			// is spent, or it could never go.
			if c.used+weight <= c.budgetLocked(now) || c.used == 0 {
				c.used += weight
				m := c.minute
				c.mu.Unlock()
				return m, nil
			}
			until, cause = time.Unix((c.minute+1)*60, 0), ErrBudget
		}
		if failFast {
			if cause == ErrBudget {
				c.rejected++
			}
			c.mu.Unlock()
			return 0, &BusyError{Err: cause, Until: until}
		}
		c.mu.Unlock()
		t := time.NewTimer(max(until.Sub(now), time.Millisecond))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("wait for %v: %w", cause, context.Cause(ctx))
		}
	}
}

// rollLocked starts a new minute's count when now is in a later minute.
func (c *Client) rollLocked(now time.Time) {
	if m := now.Unix() / 60; m != c.minute {
		c.minute, c.used = m, 0
	}
}

// budgetLocked is the weight the client may spend in now's minute: half
// the budget while recovering from a 429.
func (c *Client) budgetLocked(now time.Time) int {
	if now.Before(c.halfUntil) {
		return c.budget / 2
	}
	return c.budget
}

// failed records a call that got no answer and starts or lengthens the
// backoff.
func (c *Client) failed(ep Endpoint, weight int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests[requestKey{ep, 0}]++
	c.weightSpent += uint64(weight)
	c.backoffLocked()
}

func (c *Client) backoffLocked() {
	c.backoff = min(max(2*c.backoff, minBackoff), maxBackoff)
	c.backoffUntil = c.now().Add(c.backoff)
}

// answered records resp, re-syncs the budget from its used-weight header
// and acts on its status: a 429 or 418 stops every call (and returns the
// [BannedError]), a 5xx starts a backoff, anything else ends one.
func (c *Client) answered(minute int64, ep Endpoint, weight int, resp *Response) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.requests[requestKey{ep, resp.Status}]++
	c.weightSpent += uint64(weight)
	if h, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get(c.rules.UsedWeightHeader()))); err == nil && h >= 0 {
		c.lastUsed = h
		// Ours are counted when sent and the header counts them when
		// answered, so the larger of the two is the best guess; an
		// answer from a minute gone by says nothing of this one.
		if c.rollLocked(now); c.minute == minute && h > c.used {
			c.used = h
		}
	}
	switch s := resp.Status; {
	case s == http.StatusTooManyRequests || s == http.StatusTeapot:
		d, ok := retryAfter(resp.Header)
		until := now.Add(d)
		switch {
		case s == http.StatusTeapot:
			if t, ok2 := c.rules.BanUntil(resp.Body); ok2 && t.After(until) {
				until = t
			} else if !ok {
				until = now.Add(defaultBan418)
			}
			c.stops418++
		case !ok:
			until = later(time.Unix((now.Unix()/60+1)*60, 0), now.Add(defaultStop429))
			fallthrough
		default:
			c.stops429++
		}
		if until.After(c.stopUntil) {
			c.stopUntil, c.stopStatus = until, s
			if s == http.StatusTeapot {
				c.log.Error("exchange banned the IP; every REST call stops until the ban ends", "exchange", c.name, "status", s, "until", until, "body", truncate(resp.Body, 200))
			} else {
				c.log.Warn("exchange rate limit hit; every REST call stops for Retry-After, then runs at half rate", "exchange", c.name, "status", s, "until", until, "halfRateUntil", until.Add(c.recoverFor))
			}
		}
		if s == http.StatusTooManyRequests {
			c.halfUntil = later(c.halfUntil, until.Add(c.recoverFor))
		}
		return &BannedError{Exchange: c.name, Status: c.stopStatus, Until: c.stopUntil}
	case s >= 500:
		c.backoffLocked()
	default:
		c.backoff, c.backoffUntil = 0, time.Time{}
	}
	return nil
}

// retryAfter reads Retry-After in seconds.
func retryAfter(h http.Header) (time.Duration, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// stopped returns the end of the current stop and its status, or the zero
// time when calls may go.
func (c *Client) stopped() (time.Time, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now().Before(c.stopUntil) {
		return c.stopUntil, c.stopStatus
	}
	return time.Time{}, 0
}

// RequestCount is the number of calls to one endpoint answered with one
// status; Status 0 counts calls that got no answer (network error, body
// too large).
type RequestCount struct {
	Endpoint Endpoint
	Status   int
	Count    uint64
}

// ExchangeStats are one exchange's counters (monotonic unless said
// otherwise), for the metrics endpoint.
type ExchangeStats struct {
	Exchange string
	// Requests are the calls sent to the exchange, by endpoint and status,
	// sorted.
	Requests []RequestCount
	// WeightSpent is the request weight of the calls sent, by the
	// exchange's rules.
	WeightSpent uint64
	// UsedWeight (gauge) is the weight counted in the current minute, and
	// Budget (gauge) the weight the client may spend in it.
	UsedWeight int
	Budget     int
	// LastUsedWeightHeader (gauge) is the exchange's last used-weight
	// header.
	LastUsedWeightHeader int
	// Stops429 and Stops418 count the answers that stopped every call.
	Stops429 uint64
	Stops418 uint64
	// Stopped (gauge) is true while calls are stopped.
	Stopped bool
	// Rejected counts browser calls refused because the budget was spent.
	Rejected uint64
	// Coalesced counts browser calls answered by another's upstream call;
	// CacheHits, CacheMisses and CacheStale count answers served fresh
	// from cache, fetched, and stale during a stop; BookHits counts depth
	// served from a kept book; Unavailable counts 503 answers.
	Coalesced   uint64
	CacheHits   uint64
	CacheMisses uint64
	CacheStale  uint64
	BookHits    uint64
	Unavailable uint64
}

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() ExchangeStats {
	c.mu.Lock()
	now := c.now()
	c.rollLocked(now)
	st := ExchangeStats{
		Exchange: c.name, WeightSpent: c.weightSpent,
		UsedWeight: c.used, Budget: c.budgetLocked(now), LastUsedWeightHeader: c.lastUsed,
		Stops429: c.stops429, Stops418: c.stops418, Stopped: now.Before(c.stopUntil),
		Rejected: c.rejected,
	}
	for k, n := range c.requests {
		st.Requests = append(st.Requests, RequestCount{Endpoint: k.endpoint, Status: k.status, Count: n})
	}
	c.mu.Unlock()
	slices.SortFunc(st.Requests, func(a, b RequestCount) int {
		return cmp.Or(cmp.Compare(a.Endpoint, b.Endpoint), cmp.Compare(a.Status, b.Status))
	})
	st.Coalesced, st.CacheHits, st.CacheMisses = c.coalesced.Load(), c.hits.Load(), c.misses.Load()
	st.CacheStale, st.BookHits, st.Unavailable = c.stale.Load(), c.bookHits.Load(), c.unavailable.Load()
	return st
}
