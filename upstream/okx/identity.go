package okx

import (
	"math"
	"strconv"

	"github.com/marketgate/marketgate/internal/jsonscan"
	"github.com/marketgate/marketgate/upstream"
)

// items returns the first and last elements of an event's "data" array
// (data is the whole frame), without allocating.
func items(data []byte) (first, last []byte, ok bool) {
	arr, ok := jsonscan.Field(data, "data")
	if !ok || len(arr) < 2 || arr[0] != '[' {
		return nil, nil, false
	}
	i := 1
	for {
		i = jsonscan.SkipSpace(arr, i)
		e := jsonscan.SkipValue(arr, i)
		if e < 0 {
			return first, last, first != nil
		}
		if first == nil {
			first = arr[i:e]
		}
		last = arr[i:e]
		i = jsonscan.SkipSpace(arr, e)
		if i >= len(arr) || arr[i] != ',' {
			return first, last, true
		}
		i++
	}
}

// number parses an integer OKX sends as a JSON number or a string of one
// ("tradeId":"130639474", "ts":"1597026383085").
func number(v []byte) (int64, bool) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return jsonscan.ParseInt(v)
}

// field returns the integer value of key in obj (number or string).
func field(obj []byte, key string) (int64, bool) {
	v, ok := jsonscan.Field(obj, key)
	if !ok {
		return 0, false
	}
	return number(v)
}

// element returns the i-th element of a JSON array (a candle).
func element(arr []byte, n int) ([]byte, bool) {
	if len(arr) < 2 || arr[0] != '[' {
		return nil, false
	}
	i := 1
	for k := 0; ; k++ {
		i = jsonscan.SkipSpace(arr, i)
		e := jsonscan.SkipValue(arr, i)
		if e < 0 {
			return nil, false
		}
		if k == n {
			return arr[i:e], true
		}
		i = jsonscan.SkipSpace(arr, e)
		if i >= len(arr) || arr[i] != ',' {
			return nil, false
		}
		i++
	}
}

// Candle fields: [ts,o,h,l,c,vol,volCcy,volCcyQuote,confirm].
const (
	candleTS      = 0
	candleVol     = 5
	candleConfirm = 8
)

// Identity reads an event's identity: trades, the first and last tradeId
// of the push; books, seqId with prevSeqId as Prev (a snapshot has
// prevSeqId -1, so it continues nothing); books5 and bbo-tbt, seqId;
// candles, the open time, then the volume traded so far (OKX sends no
// push time, and within a candle the volume only grows: an update that
// adds none changes nothing), the confirmed candle after every live
// update. It does not allocate.
func (Dialect) Identity(s *upstream.Stream, data []byte) (upstream.EventID, bool) {
	first, last, ok := items(data)
	if !ok {
		return upstream.EventID{}, false
	}
	switch kindOf(s) {
	case KindTrades:
		lo, ok1 := field(first, "tradeId")
		hi, ok2 := field(last, "tradeId")
		lo, hi = min(lo, hi), max(lo, hi)
		return upstream.EventID{Lo: lo, Hi: hi}, ok1 && ok2
	case KindBooks:
		seq, ok1 := field(first, "seqId")
		prev, ok2 := field(first, "prevSeqId")
		return upstream.EventID{Lo: seq, Hi: seq, Prev: prev, HasPrev: ok2}, ok1 && ok2
	case KindBooks5, KindBBO:
		seq, ok := field(first, "seqId")
		return upstream.EventID{Lo: seq, Hi: seq}, ok
	case KindCandle:
		tsv, ok1 := element(first, candleTS)
		ts, ok2 := number(tsv)
		id := upstream.EventID{Lo: ts, Hi: ts}
		if c, ok := element(first, candleConfirm); ok && string(c) == `"1"` {
			id.Sub = math.MaxInt64
		} else if v, ok := element(first, candleVol); ok {
			id.Sub = volumeKey(v)
		}
		return id, ok1 && ok2
	}
	return upstream.EventID{}, false
}

// EventTime returns the "ts" of an event's first item (Unix milliseconds)
// in microseconds, or 0: candles carry only their open time. It does not
// allocate.
func (Dialect) EventTime(data []byte) int64 {
	first, _, ok := items(data)
	if !ok || len(first) == 0 || first[0] != '{' {
		return 0
	}
	ts, ok := field(first, "ts")
	if !ok || ts <= 0 {
		return 0
	}
	return ts * 1000
}

// Final reports whether a candle event is confirmed (its last element is
// "1"): the candle is closed, and must reach even a slow consumer. Events
// of other channels are never final. It does not allocate.
func (Dialect) Final(s *upstream.Stream, data []byte) bool {
	if kindOf(s) != KindCandle {
		return false
	}
	first, _, ok := items(data)
	if !ok {
		return false
	}
	c, ok := element(first, candleConfirm)
	return ok && string(c) == `"1"`
}

// volumeKey orders a candle's volume, a JSON decimal string: the bits of
// a non-negative float64 order as its value does, and stay below
// math.MaxInt64 (a confirmed candle's). Anything else orders first.
func volumeKey(v []byte) int64 {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || !(f >= 0) || math.IsInf(f, 1) {
		return 0
	}
	return int64(math.Float64bits(f))
}
