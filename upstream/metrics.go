package upstream

import (
	"sync/atomic"
	"time"

	"github.com/marketgate/marketgate/internal/latency"
)

// feedMetrics is what a [Feed] counts for its metrics: the messages read
// and the request round trips. Sessions keep a pointer to their feed's,
// so the read path reaches it in one load.
type feedMetrics struct {
	in         inCounts           // messages read, by stream type
	reqLatency *latency.Histogram // request to reply
	lastEvent  atomic.Int64       // the newest event time published (unix µs), for Status.Lag
	malformed  atomic.Int64       // messages that could not be parsed, dropped
	panics     atomic.Int64       // panics recovered in the feed's goroutines
}

// metrics returns f's metrics. Sessions keep the pointer, so the read
// path reaches it in one load.
func (f *Feed) metrics() *feedMetrics { return f.m }

// otherKind is the label of the messages not routed to a stream: replies,
// events of streams no longer subscribed, messages that could not be read.
const otherKind = "other"

// inCounts counts the text messages read from the exchange and their
// bytes, by the type of the stream each was routed to (the dialect's
// Kinds), the last slot counting those routed to none (otherKind). The
// labels are a fixed list, so the counters stay bounded whatever the
// exchange sends.
type inCounts struct {
	labels []string
	c      []struct{ msgs, bytes atomic.Int64 }
}

func newInCounts(kinds []string) inCounts {
	return inCounts{labels: kinds, c: make([]struct{ msgs, bytes atomic.Int64 }, len(kinds)+1)}
}

// add counts one message of n bytes of stream type k (-1: none).
func (c *inCounts) add(k int, n int) {
	if k < 0 || k >= len(c.labels) {
		k = len(c.labels)
	}
	c.c[k].msgs.Add(1)
	c.c[k].bytes.Add(int64(n))
}

// snapshot returns the counts by label, without the types never seen.
func (c *inCounts) snapshot() (msgs, bytes map[string]int64) {
	msgs, bytes = map[string]int64{}, map[string]int64{}
	for k := range c.c {
		n := c.c[k].msgs.Load()
		if n == 0 {
			continue
		}
		label := otherKind
		if k < len(c.labels) {
			label = c.labels[k]
		}
		msgs[label], bytes[label] = n, c.c[k].bytes.Load()
	}
	return msgs, bytes
}

// observeReply records the round trip of a request sent at sent.
func (m *feedMetrics) observeReply(sent time.Time) {
	if !sent.IsZero() {
		m.reqLatency.Observe(time.Since(sent))
	}
}
