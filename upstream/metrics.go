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
	in         inCounts           // messages read, by stream kind
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
// bytes, by the kind of the stream each was routed to; index KindInvalid
// counts those routed to none (otherKind). The labels are Kind names, a
// fixed set, so the counters stay bounded whatever the exchange sends.
type inCounts [len(kindNames)]struct {
	msgs, bytes atomic.Int64
}

// add counts one message of n bytes of kind k.
func (c *inCounts) add(k Kind, n int) {
	if int(k) >= len(c) {
		k = KindInvalid
	}
	c[k].msgs.Add(1)
	c[k].bytes.Add(int64(n))
}

// snapshot returns the counts by label, without the kinds never seen.
func (c *inCounts) snapshot() (msgs, bytes map[string]int64) {
	msgs, bytes = map[string]int64{}, map[string]int64{}
	for k := range c {
		n := c[k].msgs.Load()
		if n == 0 {
			continue
		}
		label := Kind(k).String()
		if Kind(k) == KindInvalid {
			label = otherKind
		}
		msgs[label], bytes[label] = n, c[k].bytes.Load()
	}
	return msgs, bytes
}

// eventTime returns the event time of an exchange event in Unix
// microseconds, read from its "E" field, or 0 when it has none (Binance
// spot's bookTicker and partial depth, the all-market arrays). The unit
// is told by magnitude rather than by Config.MicrosecondTimes, so a time
// in milliseconds is never taken for microseconds whatever an endpoint
// does with timeUnit: below 1e14 it is milliseconds (1e14 ms is the year
// 5138, 1e14 µs is 1973). It does not allocate.
func eventTime(data []byte) int64 {
	e, ok := jsonInt(data, "E")
	switch {
	case !ok || e <= 0:
		return 0
	case e < 1e14:
		return e * 1000
	}
	return e
}

// observeReply records the round trip of a request sent at sent.
func (m *feedMetrics) observeReply(sent time.Time) {
	if !sent.IsZero() {
		m.reqLatency.Observe(time.Since(sent))
	}
}
