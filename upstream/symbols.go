package upstream

import (
	"github.com/marketgate/marketgate/internal/backoff"

	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/marketgate/marketgate/internal/pause"
)

// symbolSet keeps the symbols an exchange currently trades, as listed by
// its REST API (the dialect's SymbolsPaths, every page of each, read by
// its ParseSymbols).
// Lookups are lock-free; the set is replaced whole on each successful
// refresh, unless the new list is empty or drops more than maxDrop of the
// known symbols: an exchange answering 200 with a partial list must not
// make every stream "unknown". It refreshes every refresh interval and,
// when a lookup misses, at most once per missRefresh (a newly listed
// symbol becomes valid without waiting for the next periodic refresh); a
// failed or refused refresh is retried after a backoff. Its goroutine is
// run by the owner through run.
type symbolSet struct {
	base        string   // the REST base URL
	paths       []string // the lists, each paged by parse's next path
	parse       func(path string, r io.Reader) (map[string]struct{}, string, error)
	client      *http.Client
	refresh     time.Duration
	missRefresh time.Duration
	maxBytes    int64
	maxDrop     float64 // share of the known symbols a refresh may drop
	now         func() time.Time
	log         *slog.Logger
	bo          backoff.Backoff

	set    atomic.Pointer[map[string]struct{}]
	miss   chan struct{} // capacity 1: a pending miss-triggered refresh
	loaded chan struct{} // closed after the first successful load
	once   sync.Once

	// mu guards the following fields.
	mu        sync.Mutex
	lastFetch time.Time // start of the last fetch attempt
}

// has reports whether sym trades, and whether the set has been
// loaded at all.
func (s *symbolSet) has(sym string) (known, loaded bool) {
	m := s.set.Load()
	if m == nil {
		return false, false
	}
	_, known = (*m)[sym]
	return known, true
}

// len returns the number of known symbols.
func (s *symbolSet) len() int {
	if m := s.set.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// noteMiss asks run for an early refresh, unless one happened less than
// missRefresh ago. It never blocks.
func (s *symbolSet) noteMiss() {
	s.mu.Lock()
	due := s.now().Sub(s.lastFetch) >= s.missRefresh
	s.mu.Unlock()
	if !due {
		return
	}
	select {
	case s.miss <- struct{}{}:
	default:
	}
}

// run loads the set, retrying with backoff until it succeeds, then refreshes
// it until ctx ends. It returns nil when ctx ends. A failed refresh keeps
// the previous set.
func (s *symbolSet) run(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := s.load(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := s.bo.Next()
		if ra, ok := errors.AsType[*restError](err); ok {
			wait = max(wait, ra.retryAfter) // honour Retry-After (429, 418)
		}
		level := slog.LevelDebug
		if attempt == 1 {
			level = slog.LevelWarn
		}
		s.log.Log(ctx, level, "load symbols", "err", err, "retry_in", wait, "attempt", attempt)
		if !pause.For(ctx, wait) {
			return nil
		}
	}
	s.bo.Reset()
	t := time.NewTicker(s.refresh)
	defer t.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-retry.C:
		case <-s.miss:
			s.mu.Lock()
			due := s.now().Sub(s.lastFetch) >= s.missRefresh
			s.mu.Unlock()
			if !due {
				continue
			}
		}
		err := s.load(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			failures = 0
			s.bo.Reset()
			retry.Stop()
			continue
		}
		// The list in use stays; try again sooner than the next period,
		// but no sooner than a miss could.
		failures++
		wait := max(s.bo.Next(), s.missRefresh)
		if ra, ok := errors.AsType[*restError](err); ok {
			wait = max(wait, ra.retryAfter)
		}
		level := slog.LevelDebug
		if failures == 1 {
			level = slog.LevelWarn
		}
		s.log.Log(ctx, level, "refresh symbols; keeping the list in use", "err", err, "retry_in", wait, "attempt", failures)
		retry.Reset(wait)
	}
}

// load fetches the symbol list once and installs the result.
func (s *symbolSet) load(ctx context.Context) error {
	s.mu.Lock()
	s.lastFetch = s.now()
	s.mu.Unlock()
	m, err := s.fetch(ctx)
	if err != nil {
		return err
	}
	if err := s.plausible(m); err != nil {
		return err
	}
	old := s.len()
	s.set.Store(&m)
	if len(m) != old {
		s.log.Info("symbols loaded", "count", len(m))
	}
	s.once.Do(func() { close(s.loaded) })
	return nil
}

// plausible refuses a new list m that is empty or drops more than maxDrop
// of the symbols in use.
func (s *symbolSet) plausible(m map[string]struct{}) error {
	if len(m) == 0 {
		return fmt.Errorf("%w: %s lists no trading symbol", ErrSymbolsRefused, s.base)
	}
	cur := s.set.Load()
	if cur == nil {
		return nil
	}
	dropped := 0
	for sym := range *cur {
		if _, ok := m[sym]; !ok {
			dropped++
		}
	}
	if float64(dropped) > s.maxDrop*float64(len(*cur)) {
		return fmt.Errorf("%w: %s drops %d of the %d symbols in use (more than %.0f%%)",
			ErrSymbolsRefused, s.base, dropped, len(*cur), s.maxDrop*100)
	}
	return nil
}

// maxRetryAfter bounds the wait a Retry-After header may ask for.
const maxRetryAfter = 10 * time.Minute

// restError is a non-200 answer of the REST API.
type restError struct {
	status     int
	retryAfter time.Duration
}

// Error says which status the REST API answered.
func (e *restError) Error() string {
	if e.retryAfter > 0 {
		return fmt.Sprintf("http status %d, retry after %v", e.status, e.retryAfter)
	}
	return fmt.Sprintf("http status %d", e.status)
}

// maxSymbolPages bounds the pages read of one symbol list: a list whose
// next-page cursor never ends is refused rather than read forever.
const maxSymbolPages = 50

// fetch GETs every page of every symbol list and returns the symbols that
// trade in any of them. It reads at most maxBytes of each page.
func (s *symbolSet) fetch(ctx context.Context) (map[string]struct{}, error) {
	all := make(map[string]struct{})
	for _, path := range s.paths {
		for page := 1; path != ""; page++ {
			if page > maxSymbolPages {
				return nil, fmt.Errorf("get %s: %w: more than %d pages", s.base+path, ErrSymbolsRefused, maxSymbolPages)
			}
			m, next, err := s.fetchPage(ctx, path)
			if err != nil {
				return nil, err
			}
			for sym := range m {
				all[sym] = struct{}{}
			}
			path = next
		}
	}
	return all, nil
}

// fetchPage GETs one page of a symbol list and returns its symbols that
// trade and the path of the next page ("" at the end).
func (s *symbolSet) fetchPage(ctx context.Context, path string) (map[string]struct{}, string, error) {
	url := s.base + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", fmt.Errorf("get %s: %w", url, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := &restError{status: resp.StatusCode}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			e.retryAfter = time.Duration(min(secs, int(maxRetryAfter/time.Second))) * time.Second
		}
		return nil, "", fmt.Errorf("get %s: %w", url, e)
	}
	lr := &io.LimitedReader{R: resp.Body, N: s.maxBytes + 1}
	m, next, err := s.parse(path, lr)
	if err != nil {
		if lr.N <= 0 {
			return nil, "", fmt.Errorf("get %s: %w (limit %d bytes)", url, ErrSymbolsTooLarge, s.maxBytes)
		}
		return nil, "", fmt.Errorf("decode %s: %w", url, err)
	}
	if lr.N <= 0 {
		return nil, "", fmt.Errorf("get %s: %w (limit %d bytes)", url, ErrSymbolsTooLarge, s.maxBytes)
	}
	return m, next, nil
}
