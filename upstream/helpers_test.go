package upstream_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/upstream/binance"

	"github.com/marketgate/marketgate/internal/waitfor"
)

// waitMessages waits until every stream of names (spot) has at least n
// messages.
func waitMessages(t *testing.T, rec *recorder, names []string, n int) {
	t.Helper()
	waitKeys(t, rec, "binance", names, n)
}

// waitKeys waits until every stream of names on exchange has at least n
// messages.
func waitKeys(t *testing.T, rec *recorder, exchange string, names []string, n int) {
	t.Helper()
	waitfor.Cond(t, 5*time.Second, func() error {
		for _, name := range names {
			if got := len(rec.get(exchange + ":" + name)); got < n {
				return fmt.Errorf("%s: %d messages", name, got)
			}
		}
		return nil
	})
}

// counts returns the number of messages of each spot stream of names.
func counts(rec *recorder, names []string) map[string]int {
	m := make(map[string]int)
	for _, n := range names {
		m[n] = len(rec.get("binance:" + n))
	}
	return m
}

// decodeEvent decodes an event payload with numbers kept exact. Keys that
// differ only in case ("t" and "T") stay apart in a map.
func decodeEvent(t *testing.T, data []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("event %s: %v", data, err)
	}
	return m
}

func num(t *testing.T, m map[string]any, key string) int64 {
	t.Helper()
	n, ok := m[key].(json.Number)
	if !ok {
		t.Fatalf("event %v: no number %q", m, key)
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkIdentities checks, for every stream between gaps, that the events'
// identities follow each other: aggTrade a consecutive, diff depth U =
// previous u + 1 (futures: pu = previous u), bookTicker u and partial
// depth lastUpdateId (futures: u) non-decreasing (a snapshot of an
// unchanged book repeats its id), klines (k.t, E) increasing.
// Trade ids are checked by checkSequences. It returns the number of
// events checked.
func checkIdentities(t *testing.T, rec *recorder) int {
	t.Helper()
	checked := 0
	for _, stream := range rec.streams() {
		futures := strings.HasPrefix(stream, "binance-futures:")
		_, name, _ := strings.Cut(stream, ":")
		_, kind, _ := strings.Cut(name, "@")
		if strings.HasPrefix(name, "!") {
			continue // arrays and all-market streams carry no identity
		}
		var prev map[string]any
		for i, m := range rec.get(stream) {
			if m.Err != "" {
				continue
			}
			ev := decodeEvent(t, m.Data)
			if prev != nil && !m.Gap {
				checked++
				switch {
				case kind == "aggTrade":
					if a, p := num(t, ev, "a"), num(t, prev, "a"); a != p+1 {
						t.Errorf("%s: message %d: aggTrade id %d after %d", stream, i, a, p)
					}
				case (kind == "depth" || strings.HasPrefix(kind, "depth@")) && futures:
					if pu, u := num(t, ev, "pu"), num(t, prev, "u"); pu != u {
						t.Errorf("%s: message %d: pu %d after u %d", stream, i, pu, u)
					}
				case kind == "depth" || strings.HasPrefix(kind, "depth@"):
					if U, u := num(t, ev, "U"), num(t, prev, "u"); U != u+1 {
						t.Errorf("%s: message %d: U %d after u %d", stream, i, U, u)
					}
				case kind == "bookTicker", strings.HasPrefix(kind, "depth") && futures:
					if u, p := num(t, ev, "u"), num(t, prev, "u"); u < p {
						t.Errorf("%s: message %d: u %d after %d", stream, i, u, p)
					}
				case strings.HasPrefix(kind, "depth"):
					if u, p := num(t, ev, "lastUpdateId"), num(t, prev, "lastUpdateId"); u < p {
						t.Errorf("%s: message %d: lastUpdateId %d after %d", stream, i, u, p)
					}
				case strings.HasPrefix(kind, "kline_"):
					k, pk := ev["k"].(map[string]any), prev["k"].(map[string]any)
					kt, pt := num(t, k, "t"), num(t, pk, "t")
					e, pe := num(t, ev, "E"), num(t, prev, "E")
					if kt < pt || (kt == pt && e <= pe) {
						t.Errorf("%s: message %d: kline (%d, %d) after (%d, %d)", stream, i, kt, e, pt, pe)
					}
				default:
					checked--
				}
			}
			prev = ev
		}
	}
	return checked
}

// newSpot returns a feed of Binance spot (unless cfg names a dialect,
// such as spot with microsecond times).
func newSpot(cfg Config) (*Feed, error) {
	if cfg.Dialect == nil {
		cfg.Dialect = binance.Spot
	}
	return New(cfg)
}

// newFutures returns a feed of Binance USD-M futures.
func newFutures(cfg Config) (*Feed, error) {
	cfg.Dialect = binance.Futures
	return New(cfg)
}
