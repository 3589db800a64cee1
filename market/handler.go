package market

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
)

// nativePrefix is the path prefix of the native calls.
const nativePrefix = "/api/v1/market/"

// nativeParams are the parameters each native call passes on; others
// are dropped, so they neither reach the exchange nor split the cache.
var nativeParams = map[string]struct {
	endpoint Endpoint
	params   []string
}{
	"depth":  {EndpointDepth, []string{"symbol", "limit"}},
	"klines": {EndpointKlines, []string{"symbol", "interval", "limit", "startTime", "endTime", "timeZone"}},
	"trades": {EndpointTrades, []string{"symbol", "limit"}},
}

// notFoundPage is the body of a drop-in 404, an HTML page as the
// exchange's front answers unknown paths.
const notFoundPage = "<html><body><h2>404 Not found</h2></body></html>"

func (m *Market) serveHTTP(w http.ResponseWriter, r *http.Request) {
	m.cors(w, r)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "only GET and HEAD are served")
		return
	}
	if len(r.URL.RawQuery) > m.cfg.MaxQueryBytes {
		writeError(w, http.StatusRequestURITooLong, "bad_request", fmt.Sprintf("query longer than %d bytes", m.cfg.MaxQueryBytes))
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "malformed query: "+err.Error())
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, nativePrefix); ok {
		m.serveNative(w, r, rest, q)
		return
	}
	name, path, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	ex := m.exchanges[name]
	if ex == nil {
		notFound(w)
		return
	}
	path = "/" + path
	e, ok := ex.rules.Endpoint(path)
	if !ok {
		notFound(w)
		return
	}
	m.serveCall(w, r, ex, e, path, q)
}

// cors sets the CORS headers of an allowed origin, and answers the
// preflight's questions.
func (m *Market) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	origins := *m.origins.Load()
	switch {
	case len(origins) == 0:
		h.Set("Access-Control-Allow-Origin", "*")
	case origins[origin]:
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	default:
		h.Add("Vary", "Origin")
		return
	}
	h.Set("Access-Control-Expose-Headers", "Age, X-Cache, Retry-After")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		if rh := r.Header.Get("Access-Control-Request-Headers"); rh != "" && len(rh) <= 256 {
			h.Set("Access-Control-Allow-Headers", rh)
		}
		h.Set("Access-Control-Max-Age", "600")
	}
}

// serveNative serves /api/v1/market/<exchange>/<call>.
func (m *Market) serveNative(w http.ResponseWriter, r *http.Request, rest string, q url.Values) {
	name, call, _ := strings.Cut(rest, "/")
	ex := m.exchanges[name]
	if ex == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("unknown exchange %q; known: %s", truncate([]byte(name), 40), strings.Join(m.names, ", ")))
		return
	}
	if call == "symbols" {
		m.serveSymbols(w, r, ex)
		return
	}
	np, ok := nativeParams[call]
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("unknown call %q; known: symbols, depth, klines, trades", truncate([]byte(call), 40)))
		return
	}
	kept := url.Values{}
	for _, p := range np.params {
		if v, ok := q[p]; ok {
			kept[p] = v[:1]
		}
	}
	m.serveCall(w, r, ex, np.endpoint, ex.rules.Path(np.endpoint), kept)
}

// serveSymbols serves the native symbol list, parsed from exchangeInfo.
func (m *Market) serveSymbols(w http.ResponseWriter, r *http.Request, ex *exchange) {
	en, how, err := m.lookup(r.Context(), ex, EndpointExchangeInfo, ex.rules.Path(EndpointExchangeInfo), url.Values{}, true)
	if err != nil {
		m.unavailable(w, ex, err)
		return
	}
	if en.native == nil {
		m.writeEntry(w, ex, en, how, en.body, false)
		return
	}
	m.writeEntry(w, ex, en, how, en.native, true)
}

// serveCall serves one call of endpoint e (path on the exchange) with q:
// locally (time, ping, the exchange's error for bad parameters), from a
// kept book (depth), from cache, or through the governed client.
func (m *Market) serveCall(w http.ResponseWriter, r *http.Request, ex *exchange, e Endpoint, path string, q url.Values) {
	ctx := r.Context()
	switch e {
	case EndpointTime:
		writeJSON(w, http.StatusOK, fmt.Appendf(nil, `{"serverTime":%d}`, m.cfg.Now().UnixMilli()))
		return
	case EndpointPing:
		writeJSON(w, http.StatusOK, []byte(`{}`))
		return
	}
	known := func(symbol string) bool {
		set := m.symbolSet(ctx, ex)
		if set == nil {
			return true
		}
		_, ok := set[symbol]
		return ok
	}
	if body := ex.rules.Validate(e, q, known); body != nil {
		writeJSON(w, http.StatusBadRequest, body)
		return
	}
	if e == EndpointDepth && m.cfg.Books != nil {
		if limit, ok := ex.rules.DepthLimit(q); ok {
			body, ok, err := m.cfg.Books.Depth(ctx, ex.name, q.Get("symbol"), limit)
			if err != nil {
				m.log.Debug("kept book unavailable; asking the exchange", "exchange", ex.name, "symbol", q.Get("symbol"), "err", err)
			}
			if ok && err == nil {
				ex.client.bookHits.Add(1)
				w.Header().Set("X-Cache", "hit")
				w.Header().Set("Age", "0")
				writeJSON(w, http.StatusOK, body)
				return
			}
		}
	}
	en, how, err := m.lookup(ctx, ex, e, path, q, true)
	if err != nil {
		m.unavailable(w, ex, err)
		return
	}
	m.writeEntry(w, ex, en, how, en.body, false)
}

// symbolSet returns the listed symbols of ex, fetching the list when it
// is not cached; nil when it cannot be had.
func (m *Market) symbolSet(ctx context.Context, ex *exchange) map[string]struct{} {
	en, _, err := m.lookup(ctx, ex, EndpointExchangeInfo, ex.rules.Path(EndpointExchangeInfo), url.Values{}, false)
	if err != nil {
		return nil
	}
	return en.symbols
}

// Ways an answer was had, as X-Cache says them.
const (
	cacheHit   = "hit"
	cacheMiss  = "miss"
	cacheStale = "stale"
)

// lookup returns the answer of path with q: fresh from cache, else from
// one upstream call shared by every request asking meanwhile, else (the
// call refused or failed) a stale one from cache. The call runs on its
// own context bounded by RequestTimeout, so that a caller going away
// does not fail the others. count counts a shared call as coalesced (a
// browser's call, not the symbol check's).
func (m *Market) lookup(ctx context.Context, ex *exchange, e Endpoint, path string, q url.Values, count bool) (*entry, string, error) {
	key := ex.name + " " + path + "?" + q.Encode()
	if en := m.cache.get(key, m.cfg.Now()); en != nil && en.fresh(m.cfg.Now()) {
		return en, cacheHit, nil
	}
	led := false
	ch := m.sf.DoChan(key, func() (any, error) {
		led = true
		// The call before may have ended between the look above and
		// this one.
		if en := m.cache.get(key, m.cfg.Now()); en != nil && en.fresh(m.cfg.Now()) {
			return fetched{en, true}, nil
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.RequestTimeout)
		defer cancel()
		resp, err := ex.client.do(ctx, path, q, true)
		if err != nil {
			return nil, err
		}
		en := &entry{
			key: key, status: resp.Status, ctype: resp.Header.Get("Content-Type"), body: resp.Body,
			fetched: m.cfg.Now(), ttl: m.cfg.TTL[e],
		}
		if e == EndpointExchangeInfo && len(q) == 0 && resp.Status == http.StatusOK {
			m.parseSymbols(ex, en)
		}
		if resp.Status < 500 && en.ttl > 0 {
			m.cache.put(en)
		}
		return fetched{en, false}, nil
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return nil, "", context.Cause(ctx)
	}
	f, _ := res.Val.(fetched)
	en := f.entry
	if res.Err == nil && f.cached {
		return en, cacheHit, nil
	}
	if !led && count {
		ex.client.coalesced.Add(1)
	}
	if res.Err != nil || en.status >= 500 {
		if old := m.cache.get(key, m.cfg.Now()); old != nil {
			return old, cacheStale, nil
		}
		if res.Err != nil {
			return nil, "", res.Err
		}
	}
	return en, cacheMiss, nil
}

// fetched is the result of a shared call: the answer, and whether it was
// found in cache after all.
type fetched struct {
	entry  *entry
	cached bool
}

// parseSymbols fills en's symbol set and native /symbols body from its
// exchangeInfo body.
func (m *Market) parseSymbols(ex *exchange, en *entry) {
	syms, err := ex.rules.ParseSymbols(en.body)
	if err != nil {
		m.log.Warn("exchangeInfo unreadable; symbols unchecked", "exchange", ex.name, "err", err)
		return
	}
	en.symbols = make(map[string]struct{}, len(syms))
	for _, s := range syms {
		en.symbols[s.Symbol] = struct{}{}
	}
	if syms == nil {
		syms = []Symbol{}
	}
	body, err := json.Marshal(struct {
		Exchange string   `json:"exchange"`
		Symbols  []Symbol `json:"symbols"`
	}{ex.name, syms})
	if err == nil {
		en.native = body
	}
}

// writeEntry writes an answer had by how (hit, miss, stale) with body.
// native marks a body the gateway made (the native symbol list).
func (m *Market) writeEntry(w http.ResponseWriter, ex *exchange, en *entry, how string, body []byte, native bool) {
	h := w.Header()
	h.Set("X-Cache", how)
	switch how {
	case cacheHit:
		ex.client.hits.Add(1)
	case cacheMiss:
		ex.client.misses.Add(1)
	case cacheStale:
		ex.client.stale.Add(1)
	}
	if how != cacheMiss {
		h.Set("Age", strconv.FormatInt(int64(max(0, m.cfg.Now().Sub(en.fetched))/time.Second), 10))
	}
	if ctype := en.ctype; ctype != "" && !native {
		h.Set("Content-Type", ctype)
	} else {
		h.Set("Content-Type", "application/json;charset=UTF-8")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(en.status)
	w.Write(body)
}

// unavailable answers a call that could not be made or failed and has no
// cached answer: 503 with Retry-After.
func (m *Market) unavailable(w http.ResponseWriter, ex *exchange, err error) {
	ex.client.unavailable.Add(1)
	retry := time.Second
	var be *BannedError
	var bu *BusyError
	switch {
	case errors.As(err, &be):
		retry = be.Until.Sub(m.cfg.Now())
	case errors.As(err, &bu):
		retry = bu.Until.Sub(m.cfg.Now())
	case errors.Is(err, context.Canceled):
		return // the client went away
	}
	secs := max(1, int64(math.Ceil(retry.Seconds())))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// writeError writes the gateway's own error, in the shape the control
// API uses: {"error":{"code":…,"msg":…}}.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b struct {
		Error struct {
			Code string `json:"code"`
			Msg  string `json:"msg"`
		} `json:"error"`
	}
	b.Error.Code, b.Error.Msg = code, msg
	body, _ := json.Marshal(b)
	writeJSON(w, status, body)
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte(notFoundPage))
}
