package auth

import (
	"fmt"
	"strings"
)

// Bounds of a token's stream patterns: they come from whoever issues
// tokens, but are kept for as long as the connection lives.
const (
	// MaxPatterns is the most stream patterns a token (or the anonymous
	// set) may list.
	MaxPatterns = 256
	// MaxPatternLen is the longest pattern, in bytes.
	MaxPatternLen = 256
)

// Patterns are stream key patterns in which '*' matches any run of
// characters (none included) and is the only wildcard:
// "binance:*@trade", "binance:btcusdt@*", "okx:*", "*". A nil Patterns
// allows nothing; so does an empty one. Patterns is immutable once made
// and safe for concurrent use.
type Patterns []string

// ParsePatterns checks patterns (at most [MaxPatterns], each non-empty and
// at most [MaxPatternLen] bytes) and returns them as Patterns.
func ParsePatterns(patterns []string) (Patterns, error) {
	if len(patterns) > MaxPatterns {
		return nil, fmt.Errorf("%d stream patterns; at most %d", len(patterns), MaxPatterns)
	}
	out := make(Patterns, 0, len(patterns))
	for _, p := range patterns {
		if p == "" || len(p) > MaxPatternLen {
			return nil, fmt.Errorf("stream pattern %.40q: must be 1 to %d bytes", p, MaxPatternLen)
		}
		out = append(out, p)
	}
	return out, nil
}

// Allows reports whether key matches one of the patterns.
func (ps Patterns) Allows(key string) bool {
	for _, p := range ps {
		if Match(p, key) {
			return true
		}
	}
	return false
}

// Refused returns the keys that no pattern allows, in order.
func (ps Patterns) Refused(keys []string) []string {
	var out []string
	for _, k := range keys {
		if !ps.Allows(k) {
			out = append(out, k)
		}
	}
	return out
}

// Match reports whether key matches pattern, in which '*' matches any run
// of characters and every other byte only itself. It takes time linear in
// len(pattern)+len(key) times the number of '*', never exponential.
func Match(pattern, key string) bool {
	first, rest, wild := strings.Cut(pattern, "*")
	if !wild {
		return pattern == key
	}
	if !strings.HasPrefix(key, first) {
		return false
	}
	key = key[len(first):]
	// rest is the segments after each '*': the last must end key, the
	// others are matched leftmost, which is optimal for '*'-only globs.
	segs := strings.Split(rest, "*")
	last := segs[len(segs)-1]
	for _, s := range segs[:len(segs)-1] {
		i := strings.Index(key, s)
		if i < 0 {
			return false
		}
		key = key[i+len(s):]
	}
	return len(key) >= len(last) && strings.HasSuffix(key, last)
}
