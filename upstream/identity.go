package upstream

// This file reads event identities (trade ids, book update ids, kline
// times) out of exchange payloads with a minimal byte scan: no JSON
// decoding, no allocation. Keys are matched exactly, so "t" and "T", "e"
// and "E", "u" and "U" are different keys, as they are in Binance events.

// idKind says how the events of a stream kind can be told apart, which
// decides where a stream may switch from one connection to another (see
// rotate.go).
type idKind uint8

const (
	// idNone: no identity (tickers, mark price, average price): a stream
	// switches at the first event of the new connection.
	idNone idKind = iota
	// idMonotonic: ids increase but skip (bookTicker u, partial depth
	// lastUpdateId, kline open time plus event time): a stream switches
	// where both connections are seen to deliver the same event.
	idMonotonic
	// idConsecutive: ids leave no holes (trade t, aggTrade a, diff depth
	// U/u or pu): continuity between two events can be checked.
	idConsecutive
)

// evID is the identity of one event.
type evID struct {
	lo, hi  int64 // the update ids the event covers; lo == hi for single ids
	sub     int64 // a secondary key ordered after hi (kline event time)
	prev    int64 // the previous event's hi (futures diff depth pu), if hasPrev
	hasPrev bool
}

// after reports whether e is newer than l.
func (e evID) after(l evID) bool {
	return e.hi > l.hi || (e.hi == l.hi && e.sub > l.sub)
}

// continues reports whether e is the event right after l in a
// consecutive sequence: its pu is l's u, or l.hi+1 falls in [e.lo, e.hi]
// (Binance spot's rule for diff depth, U ≤ u+1 ≤ u').
func (e evID) continues(l evID) bool {
	if e.hasPrev {
		return e.prev == l.hi
	}
	return e.lo <= l.hi+1 && l.hi+1 <= e.hi
}

// jsonField returns the raw value of key among the top-level members of
// the JSON object obj, or false if obj is not an object or lacks key.
// Keys are compared byte for byte without unescaping.
func jsonField(obj []byte, key string) ([]byte, bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return nil, false // '}' (no more members) or malformed
		}
		ks := i + 1
		ke := skipString(obj, i)
		if ke < 0 {
			return nil, false
		}
		i = skipSpace(obj, ke)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false
		}
		vs := skipSpace(obj, i+1)
		ve := skipValue(obj, vs)
		if ve < 0 {
			return nil, false
		}
		if string(obj[ks:ke-1]) == key {
			return obj[vs:ve], true
		}
		i = skipSpace(obj, ve)
		if i >= len(obj) || obj[i] != ',' {
			return nil, false
		}
		i++
	}
}

// jsonInt returns the integer value of key in obj.
func jsonInt(obj []byte, key string) (int64, bool) {
	v, ok := jsonField(obj, key)
	if !ok {
		return 0, false
	}
	return parseInt(v)
}

// parseInt parses a JSON integer without allocating.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i]
// (a '"'), or -1 if it does not end.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// maxScanDepth bounds the nesting skipValue follows: one bit per open
// bracket in a uint64. Exchange events nest a few levels; anything deeper
// is left to encoding/json.
const maxScanDepth = 64

// skipValue returns the index just past the JSON value starting at b[i],
// or -1 if none ends there. Objects and arrays are matched by bracket,
// skipping strings: a bit stack of the open brackets' types makes '}'
// close only '{' and ']' only '[', so {"t":1] ends nothing. Nesting
// deeper than maxScanDepth also returns -1. Literals and numbers end at a
// delimiter. It does not otherwise validate what it skips, and it does
// not allocate.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		var objects uint64 // bit d set: the bracket open at depth d is '{'
		depth := 0
		for ; i < len(b); i++ {
			switch c := b[i]; c {
			case '"':
				e := skipString(b, i)
				if e < 0 {
					return -1
				}
				i = e - 1
			case '{', '[':
				if depth == maxScanDepth {
					return -1
				}
				if c == '{' {
					objects |= 1 << depth
				} else {
					objects &^= 1 << depth
				}
				depth++
			case '}', ']':
				depth--
				if (objects>>depth&1 == 1) != (c == '}') {
					return -1 // closes the other bracket type
				}
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	s := i
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			if i == s {
				return -1
			}
			return i
		}
		i++
	}
	if i == s {
		return -1
	}
	return i
}
