package bybitsim

import (
	"strconv"
	"strings"
	"time"
)

// topicKind is the type of a topic.
type topicKind uint8

const (
	topicTrade topicKind = iota + 1
	topicTicker
	topicBook
	topicKline
)

// topic is a parsed topic.
type topic struct {
	name     string
	kind     topicKind
	symbol   string
	depth    int    // orderbook
	interval string // kline
}

var depths = map[string]int{"1": 1, "50": 50, "200": 200, "1000": 1000}

var intervals = map[string]bool{
	"1": true, "3": true, "5": true, "15": true, "30": true, "60": true, "120": true,
	"240": true, "360": true, "720": true, "D": true, "W": true, "M": true,
}

// parseTopic parses a public topic of spot or linear.
func parseTopic(name string) (topic, bool) {
	head, rest, ok := strings.Cut(name, ".")
	if !ok {
		return topic{}, false
	}
	t := topic{name: name}
	switch head {
	case "publicTrade":
		t.kind = topicTrade
	case "tickers":
		t.kind = topicTicker
	case "orderbook", "kline":
		param, sym, ok := strings.Cut(rest, ".")
		if !ok {
			return topic{}, false
		}
		rest = sym
		if head == "orderbook" {
			if t.depth = depths[param]; t.depth == 0 {
				return topic{}, false
			}
			t.kind = topicBook
		} else {
			if !intervals[param] {
				return topic{}, false
			}
			t.kind, t.interval = topicKline, param
		}
	default:
		return topic{}, false
	}
	if !validSymbol(rest) {
		return topic{}, false
	}
	t.symbol = rest
	return t, true
}

// candleStart returns the start of the candle of interval iv holding t,
// and the start of the next one, in UTC (weeks start on Monday).
func candleStart(iv string, t time.Time) (start, next time.Time) {
	t = t.UTC()
	switch iv {
	case "D":
		start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	case "W":
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		start = d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
		return start, start.AddDate(0, 0, 7)
	case "M":
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
	m, _ := strconv.Atoi(iv)
	d := time.Duration(m) * time.Minute
	start = t.Truncate(d)
	return start, start.Add(d)
}
