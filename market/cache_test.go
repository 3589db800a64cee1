package market

import (
	"strconv"
	"testing"
	"time"
)

// TestCacheBounds: keys are client input, so the cache keeps to its
// entry and byte bounds, evicting the least recently used.
func TestCacheBounds(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name       string
		entries    int
		bytes      int64
		bodyLen    int
		puts       int
		wantMaxLen int
	}{
		{"entries", 10, 1 << 20, 10, 100, 10},
		{"bytes", 1000, 10 * (entryOverhead + 100), 90, 100, 10},
		{"too large alone", 10, 1000, 2000, 5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(tc.entries, tc.bytes, time.Minute)
			for i := range tc.puts {
				c.put(&entry{key: "k" + strconv.Itoa(i), body: make([]byte, tc.bodyLen), fetched: now, ttl: time.Second})
				// Keep k0 in use: it must survive as the most recent.
				c.get("k0", now)
			}
			n, b := c.len()
			if n > tc.wantMaxLen || b > tc.bytes {
				t.Errorf("cache holds %d entries, %d bytes; want ≤ %d, ≤ %d", n, b, tc.wantMaxLen, tc.bytes)
			}
			if tc.wantMaxLen > 0 && c.get("k0", now) == nil {
				t.Errorf("the entry in use was evicted")
			}
		})
	}
	c := newCache(10, 1<<20, time.Second)
	c.put(&entry{key: "old", fetched: now.Add(-3 * time.Second), ttl: time.Second})
	if c.get("old", now) != nil {
		t.Errorf("an entry past its TTL and MaxStale was served")
	}
}
