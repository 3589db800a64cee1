// Package jsonscan reads values out of JSON messages with a minimal byte
// scan: no decoding, no allocation. Exchange dialects use it on the hot
// path to find a stream name, an event time or an event id in a message
// that is passed on to browsers verbatim, so the message itself is never
// decoded.
//
// Keys are matched byte for byte without unescaping, so "t" and "T", "e"
// and "E", "u" and "U" are different keys, as they are in exchange events.
// Nothing here validates JSON beyond what it needs to find its way.
package jsonscan

// MaxDepth bounds the nesting [SkipValue] follows: one bit per open bracket
// in a uint64. Exchange events nest a few levels; anything deeper is left
// to encoding/json.
const MaxDepth = 64

// Field returns the raw value of key among the top-level members of the
// JSON object obj, or false if obj is not an object or lacks key.
func Field(obj []byte, key string) ([]byte, bool) {
	i := SkipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = SkipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return nil, false // '}' (no more members) or malformed
		}
		ks := i + 1
		ke := SkipString(obj, i)
		if ke < 0 {
			return nil, false
		}
		i = SkipSpace(obj, ke)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false
		}
		vs := SkipSpace(obj, i+1)
		ve := SkipValue(obj, vs)
		if ve < 0 {
			return nil, false
		}
		if string(obj[ks:ke-1]) == key {
			return obj[vs:ve], true
		}
		i = SkipSpace(obj, ve)
		if i >= len(obj) || obj[i] != ',' {
			return nil, false
		}
		i++
	}
}

// Int returns the integer value of key in obj.
func Int(obj []byte, key string) (int64, bool) {
	v, ok := Field(obj, key)
	if !ok {
		return 0, false
	}
	return ParseInt(v)
}

// ParseInt parses a JSON integer of at most 18 digits without allocating.
func ParseInt(b []byte) (int64, bool) {
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

// IsSpace reports whether c is JSON whitespace.
func IsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && IsSpace(b[i]) {
		i++
	}
	return i
}

// TrimSpace trims JSON whitespace from both ends of b.
func TrimSpace(b []byte) []byte {
	for len(b) > 0 && IsSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && IsSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// SkipString returns the index just past the string starting at b[i]
// (a '"'), or -1 if it does not end.
func SkipString(b []byte, i int) int {
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

// SkipValue returns the index just past the JSON value starting at b[i],
// or -1 if none ends there. Objects and arrays are matched by bracket,
// skipping strings: a bit stack of the open brackets' types makes '}'
// close only '{' and ']' only '[', so {"t":1] ends nothing. Nesting
// deeper than [MaxDepth] also returns -1. Literals and numbers end at a
// delimiter. It does not otherwise validate what it skips, and it does
// not allocate.
func SkipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return SkipString(b, i)
	case '{', '[':
		var objects uint64 // bit d set: the bracket open at depth d is '{'
		depth := 0
		for ; i < len(b); i++ {
			switch c := b[i]; c {
			case '"':
				e := SkipString(b, i)
				if e < 0 {
					return -1
				}
				i = e - 1
			case '{', '[':
				if depth == MaxDepth {
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
