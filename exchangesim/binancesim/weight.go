package binancesim

import (
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// REST request weight, 429 and 418, as Binance's "LIMITS" section
// describes them: weight per IP in a fixed wall-clock minute, reported in
// X-MBX-USED-WEIGHT-1M on every answer; past the limit HTTP 429 with
// Retry-After; a call before that Retry-After passes an IP ban (HTTP 418),
// escalating for repeat offenders.

const (
	// maxBan bounds an escalated ban (Binance: "from 2 minutes to 3 days").
	maxBan = 72 * time.Hour
	// maxSnapshotsPerMinute is the number of depth snapshots of one symbol
	// an IP may take per minute before the StrictBook check counts one.
	maxSnapshotsPerMinute = 10
	// maxTrackedIPs bounds the per-IP state; idle entries are dropped
	// beyond it.
	maxTrackedIPs = 4096
)

// RESTStats counts the REST calls the server answered and the procedure
// violations it saw (see [Config.StrictBook]).
type RESTStats struct {
	Requests  map[string]int // calls by path, e.g. "/api/v3/depth", whatever the answer
	Weight    int            // request weight charged, all IPs, since New
	Status429 int            // HTTP 429 answers
	Status418 int            // HTTP 418 answers

	// Violations is NoStream + DuringBackoff + TooManySnapshots.
	Violations int
	// NoStream counts depth snapshots requested by an IP holding no
	// connection subscribed to the symbol's diff-depth stream (on the
	// route that serves it).
	NoStream int
	// DuringBackoff counts calls made before a Retry-After given to the
	// same IP (by a 429 or a 418) passed.
	DuringBackoff int
	// TooManySnapshots counts depth snapshots of one symbol beyond
	// 10 per minute per IP.
	TooManySnapshots int
}

// ipState is the REST state of one IP.
type ipState struct {
	window     time.Time // start of the current minute
	used       int       // weight used in window
	snapshots  map[string]int
	retryUntil time.Time // a 429's Retry-After
	banUntil   time.Time
	bans       int       // bans so far, for the escalation
	toldUntil  time.Time // the latest Retry-After given to this IP
}

// governor is the REST weight accounting and the Throttle and Ban knobs.
type governor struct {
	mu            sync.Mutex // guards the following; a leaf
	ips           map[string]*ipState
	stats         RESTStats
	throttleUntil time.Time
	banUntil      time.Time
}

func newGovernor() *governor {
	return &governor{ips: map[string]*ipState{}, stats: RESTStats{Requests: map[string]int{}}}
}

// remoteIP returns the host part of r.RemoteAddr.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// retryAfter is d in whole seconds, rounded up, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}

// state returns ip's state with its window moved to now's minute.
func (g *governor) state(ip string, now time.Time) *ipState {
	st := g.ips[ip]
	if st == nil {
		if len(g.ips) >= maxTrackedIPs {
			for k, v := range g.ips {
				if now.After(v.toldUntil) && now.Sub(v.window) > time.Minute {
					delete(g.ips, k)
				}
			}
		}
		st = &ipState{snapshots: map[string]int{}}
		g.ips[ip] = st
	}
	if w := now.Truncate(time.Minute); !w.Equal(st.window) {
		st.window, st.used = w, 0
		clear(st.snapshots)
	}
	return st
}

// admit accounts one REST call of path with the given weight and writes
// the 429 or 418 answer when the call is refused; it reports whether the
// call may be served. depthSymbol is the symbol of a depth snapshot, ""
// for other calls. It always sets X-MBX-USED-WEIGHT-1M.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, path string, weight int, depthSymbol string) bool {
	ip := remoteIP(r)
	noStream := depthSymbol != "" && !s.holdsDiffDepth(ip, depthSymbol)
	g := s.gov
	now := s.clock()
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.state(ip, now)
	g.stats.Requests[path]++
	var violations []string
	if now.Before(st.toldUntil) {
		g.stats.DuringBackoff++
		violations = append(violations, "call during Retry-After")
	}
	if depthSymbol != "" {
		if noStream {
			g.stats.NoStream++
			violations = append(violations, "depth snapshot without a diff-depth subscription")
		}
		st.snapshots[depthSymbol]++
		if st.snapshots[depthSymbol] > maxSnapshotsPerMinute {
			g.stats.TooManySnapshots++
			violations = append(violations, "more than 10 depth snapshots of the symbol this minute")
		}
	}
	g.stats.Violations += len(violations)
	level := slog.LevelDebug
	if s.cfg.StrictBook {
		level = slog.LevelWarn
	}
	for _, v := range violations {
		s.log.Log(r.Context(), level, "REST procedure violation", "ip", ip, "path", path, "symbol", depthSymbol, "violation", v)
	}
	limit := s.cfg.RESTWeightLimit
	if limit < 0 {
		limit = s.prod.weightLimit
	}
	h := w.Header()
	ban := func(until time.Time) bool {
		g.stats.Status418++
		st.toldUntil = until
		h.Set("X-MBX-USED-WEIGHT-1M", strconv.Itoa(st.used))
		h.Set("Retry-After", retryAfter(until.Sub(now)))
		writeJSON(w, http.StatusTeapot, fmt.Appendf(nil, `{"code":-1003,"msg":"Way too much request weight used; IP banned until %d. Please use the websocket for live updates to avoid bans."}`, until.UnixMilli()))
		return false
	}
	tooMany := func(until time.Time) bool {
		g.stats.Status429++
		st.toldUntil = until
		h.Set("X-MBX-USED-WEIGHT-1M", strconv.Itoa(st.used))
		h.Set("Retry-After", retryAfter(until.Sub(now)))
		writeJSON(w, http.StatusTooManyRequests, fmt.Appendf(nil, `{"code":-1003,"msg":"Too many requests; current limit of IP(%s) is %d requests per minute. Please use the websocket for live updates to avoid polling the API."}`, ip, limit))
		return false
	}
	switch {
	case now.Before(g.banUntil):
		return ban(g.banUntil)
	case now.Before(st.banUntil):
		return ban(st.banUntil)
	case now.Before(g.throttleUntil):
		return tooMany(g.throttleUntil)
	case now.Before(st.retryUntil):
		d := s.cfg.BanDuration << min(st.bans, 20)
		if d <= 0 || d > maxBan {
			d = maxBan
		}
		st.bans++
		st.banUntil, st.retryUntil = now.Add(d), time.Time{}
		s.log.Info("REST IP banned", "ip", ip, "for", d)
		return ban(st.banUntil)
	}
	st.used += weight
	g.stats.Weight += weight
	if s.cfg.RESTWeightLimit >= 0 && st.used > s.cfg.RESTWeightLimit {
		st.retryUntil = st.window.Add(time.Minute)
		return tooMany(st.retryUntil)
	}
	h.Set("X-MBX-USED-WEIGHT-1M", strconv.Itoa(st.used))
	return true
}

// holdsDiffDepth reports whether a connection from ip is subscribed to a
// diff-depth stream of symbol (upper case) on the route serving it.
func (s *Server) holdsDiffDepth(ip, symbol string) bool {
	s.reg.mu.RLock()
	defer s.reg.mu.RUnlock()
	ss := s.reg.bySym[strings.ToLower(symbol)]
	if ss == nil {
		return false
	}
	for _, sub := range ss.streams {
		if sub.spec.kind != kindDiffDepth {
			continue
		}
		for c := range sub.conns {
			if c.ip == ip && c.route == sub.spec.route {
				return true
			}
		}
	}
	return false
}

// RESTStats returns the REST counters since [New].
func (s *Server) RESTStats() RESTStats {
	g := s.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.stats
	st.Requests = maps.Clone(g.stats.Requests)
	return st
}

// Throttle makes every REST call get HTTP 429, with Retry-After counting
// down to the end, for retryAfter from now, as if every IP had spent its
// weight. It does not ban: calls during it get 429 too (and count as
// DuringBackoff violations).
func (s *Server) Throttle(retryAfter time.Duration) {
	g := s.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	g.throttleUntil = s.clock().Add(retryAfter)
}

// Ban makes every REST call get HTTP 418, an IP ban, for d from now.
func (s *Server) Ban(d time.Duration) {
	g := s.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	g.banUntil = s.clock().Add(d)
}

// restWeight returns a weight function of a constant.
func restWeight(n int) func(url.Values) int { return func(url.Values) int { return n } }

// intParam returns the integer parameter key of q, or def when absent or
// malformed.
func intParam(q url.Values, key string, def int) int {
	if n, err := strconv.Atoi(q.Get(key)); err == nil {
		return n
	}
	return def
}

// spotWeights are Spot's request weights.
var spotWeights = map[string]func(url.Values) int{
	"/exchangeInfo": restWeight(20),
	"/depth": func(q url.Values) int {
		switch n := intParam(q, "limit", 100); {
		case n <= 100:
			return 5
		case n <= 500:
			return 25
		case n <= 1000:
			return 50
		}
		return 250
	},
	"/klines": restWeight(2),
	"/trades": restWeight(25),
	"/ticker/24hr": func(q url.Values) int {
		if q.Get("symbol") != "" {
			return 2
		}
		if syms := q.Get("symbols"); syms != "" {
			switch n := strings.Count(syms, ",") + 1; {
			case n <= 20:
				return 2
			case n <= 100:
				return 40
			}
		}
		return 80
	},
	"/time": restWeight(1),
	"/ping": restWeight(1),
}

// futuresWeights are USD-M's request weights.
var futuresWeights = map[string]func(url.Values) int{
	"/exchangeInfo": restWeight(1),
	"/depth": func(q url.Values) int {
		switch n := intParam(q, "limit", 500); {
		case n <= 50:
			return 2
		case n <= 100:
			return 5
		case n <= 500:
			return 10
		}
		return 20
	},
	"/klines": func(q url.Values) int {
		switch n := intParam(q, "limit", 500); {
		case n < 100:
			return 1
		case n < 500:
			return 2
		case n <= 1000:
			return 5
		}
		return 10
	},
	"/trades": restWeight(5),
	"/ticker/24hr": func(q url.Values) int {
		if q.Get("symbol") != "" {
			return 1
		}
		return 40
	},
	"/time": restWeight(1),
	"/ping": restWeight(1),
}
