package demand

import "sync"

// Counted lets several users want keys of one Sink: it counts each key's
// wants and forwards a key's first Want and its last Unwant, so that one
// user's Unwant does not end another's want (the browsers' demand and the
// REST depth answers, for instance). An Unwant of a key not wanted is
// ignored. Safe for concurrent use.
type Counted struct {
	sink Sink

	mu sync.Mutex
	n  map[string]int
}

// NewCounted returns a Counted forwarding to sink.
func NewCounted(sink Sink) *Counted { return &Counted{sink: sink, n: make(map[string]int)} }

// Want counts one want of each key and forwards the keys not wanted
// before.
func (c *Counted) Want(keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var fresh []string
	for _, k := range keys {
		if c.n[k]++; c.n[k] == 1 {
			fresh = append(fresh, k)
		}
	}
	if len(fresh) > 0 {
		c.sink.Want(fresh)
	}
}

// Unwant ends one want of each key and forwards the keys no longer
// wanted.
func (c *Counted) Unwant(keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var gone []string
	for _, k := range keys {
		switch n := c.n[k]; n {
		case 0:
		case 1:
			delete(c.n, k)
			gone = append(gone, k)
		default:
			c.n[k] = n - 1
		}
	}
	if len(gone) > 0 {
		c.sink.Unwant(gone)
	}
}
