package cluster

import (
	"strings"
	"testing"
)

// hashTag returns the part of key Redis Cluster hashes: the text between
// the first '{' and the next '}' if that is not empty, else the whole key.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

func TestKeys(t *testing.T) {
	k := newKeyspace("marketgate:")
	x := k.exchange("binance-futures")
	tests := []struct {
		name, got, want string
	}{
		{"nodes", k.nodes(), "marketgate:{cluster}:nodes"},
		{"demand", k.demand("gw-1"), "marketgate:{cluster}:demand:gw-1"},
		{"demand odd id", k.demand("a{b}c"), "marketgate:{cluster}:demand:a{b}c"},
		{"lease", x.lease, "marketgate:{cluster}:lease:binance-futures"},
		{"next", x.next, "marketgate:{cluster}:next:binance-futures"},
		{"handover", x.handover, "marketgate:{cluster}:handover:binance-futures"},
		{"fence", x.fence, "marketgate:{cluster}:fence:binance-futures"},
		{"other prefix", newKeyspace("mg-test:").exchange("binance").lease, "mg-test:{cluster}:lease:binance"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("key = %q; want %q", tc.got, tc.want)
			}
			if tag := hashTag(tc.got); tag != "cluster" {
				t.Errorf("hash tag of %q = %q; want %q (one slot for all keys)", tc.got, tag, "cluster")
			}
		})
	}
	if got, want := x.script(), []string{x.lease, x.next, x.handover, x.fence}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("script() = %v; want %v", got, want)
	}
}

func TestLeaseValue(t *testing.T) {
	tests := []struct {
		in    string
		node  string
		token int64
		ok    bool
	}{
		{leaseValue("gw-1", 7), "gw-1", 7, true},
		{leaseValue("host-123", 9007199254740991), "host-123", 9007199254740991, true},
		{"gw-1|0", "", 0, false},
		{"gw-1|-3", "", 0, false},
		{"gw-1|x", "", 0, false},
		{"gw-1", "", 0, false},
		{"|5", "", 0, false},
		{"", "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			node, token, ok := parseLeaseValue(tc.in)
			if node != tc.node || token != tc.token || ok != tc.ok {
				t.Errorf("parseLeaseValue(%q) = %q, %d, %v; want %q, %d, %v", tc.in, node, token, ok, tc.node, tc.token, tc.ok)
			}
		})
	}
}

func TestStreamExchange(t *testing.T) {
	tests := []struct {
		key, ex string
		ok      bool
	}{
		{"binance:btcusdt@trade", "binance", true},
		{"binance-futures:btcusdt@markPrice:1s", "binance-futures", true},
		{"binance:", "", false},
		{":btcusdt@trade", "", false},
		{"binance", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			ex, ok := streamExchange(tc.key)
			if ex != tc.ex || ok != tc.ok {
				t.Errorf("streamExchange(%q) = %q, %v; want %q, %v", tc.key, ex, ok, tc.ex, tc.ok)
			}
		})
	}
}
