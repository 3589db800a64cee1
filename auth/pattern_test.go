package auth_test

import (
	"strings"
	"testing"

	"github.com/marketgate/marketgate/auth"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, key string
		want         bool
	}{
		{"*", "binance:btcusdt@trade", true},
		{"*", "", true},
		{"binance:*@trade", "binance:btcusdt@trade", true},
		{"binance:*@trade", "binance:btcusdt@trade2", false},
		{"binance:*@trade", "binance-futures:btcusdt@trade", false},
		{"binance:btcusdt@*", "binance:btcusdt@depth5@100ms", true},
		{"binance:btcusdt@*", "binance:ethusdt@trade", false},
		{"okx:*", "okx:trades:BTC-USDT", true},
		{"okx:*", "okx", false},
		{"binance:*@depth*", "binance:btcusdt@depth20@100ms", true},
		{"binance:*@depth*", "binance:btcusdt@trade", false},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"*b*c", "abxbc", true},
		{"*b*c", "acb", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{"**", "anything", true},
	} {
		if got := auth.Match(tc.pattern, tc.key); got != tc.want {
			t.Errorf("Match(%q, %q) = %v; want %v", tc.pattern, tc.key, got, tc.want)
		}
	}
}

func TestPatterns(t *testing.T) {
	ps, err := auth.ParsePatterns([]string{"binance:*@trade", "binance:btcusdt@*"})
	if err != nil {
		t.Fatal(err)
	}
	got := ps.Refused([]string{"binance:ethusdt@trade", "binance:btcusdt@depth", "binance:ethusdt@depth", "okx:x"})
	if strings.Join(got, ",") != "binance:ethusdt@depth,okx:x" {
		t.Errorf("Refused = %v; want the last two", got)
	}
	if auth.Patterns(nil).Allows("x") {
		t.Error("nil Patterns allowed a key")
	}
	if _, err := auth.ParsePatterns(make([]string, auth.MaxPatterns+1)); err == nil {
		t.Error("ParsePatterns took too many patterns")
	}
	if _, err := auth.ParsePatterns([]string{strings.Repeat("x", auth.MaxPatternLen+1)}); err == nil {
		t.Error("ParsePatterns took a pattern too long")
	}
}

// FuzzMatch checks Match against a reference matcher (backtracking) on
// short inputs.
func FuzzMatch(f *testing.F) {
	f.Add("binance:*@trade", "binance:btcusdt@trade")
	f.Add("a*b*c", "aXbYbc")
	f.Fuzz(func(t *testing.T, pattern, key string) {
		if len(pattern) > 12 || len(key) > 16 {
			return
		}
		if got, want := auth.Match(pattern, key), refMatch(pattern, key); got != want {
			t.Errorf("Match(%q, %q) = %v; want %v", pattern, key, got, want)
		}
	})
}

func refMatch(p, k string) bool {
	if p == "" {
		return k == ""
	}
	if p[0] == '*' {
		for i := 0; i <= len(k); i++ {
			if refMatch(p[1:], k[i:]) {
				return true
			}
		}
		return false
	}
	return k != "" && p[0] == k[0] && refMatch(p[1:], k[1:])
}
