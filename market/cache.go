package market

import (
	"container/list"
	"sync"
	"time"
)

// entryOverhead is what an entry costs besides its key and body, counted
// against the byte bound so that many tiny answers cannot grow the cache
// past it.
const entryOverhead = 256

// cache is a least-recently-used cache of exchange answers bounded in
// entries and bytes. Keys are built from client input, so both bounds
// matter. Safe for concurrent use.
type cache struct {
	maxEntries int
	maxBytes   int64
	maxStale   time.Duration

	// mu guards the following fields.
	mu    sync.Mutex
	bytes int64
	ll    *list.List // of *entry, most recently used first
	m     map[string]*list.Element
}

// entry is one cached answer. It is immutable once in the cache.
type entry struct {
	key     string
	status  int
	ctype   string
	body    []byte
	fetched time.Time
	ttl     time.Duration
	// symbols is the parsed symbol list of an exchangeInfo answer, set
	// before the entry is stored.
	symbols map[string]struct{}
	// native is the native /symbols body of an exchangeInfo answer.
	native []byte
}

func (e *entry) size() int64 { return int64(len(e.key)+len(e.body)) + entryOverhead }

func (e *entry) fresh(now time.Time) bool { return now.Sub(e.fetched) < e.ttl }

func newCache(maxEntries int, maxBytes int64, maxStale time.Duration) *cache {
	return &cache{maxEntries: maxEntries, maxBytes: maxBytes, maxStale: maxStale, ll: list.New(), m: make(map[string]*list.Element)}
}

// get returns key's entry, fresh or not, unless it is older than the
// stale bound (then it is dropped).
func (c *cache) get(key string, now time.Time) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return nil
	}
	e := el.Value.(*entry)
	if now.Sub(e.fetched) > e.ttl+c.maxStale {
		c.removeLocked(el)
		return nil
	}
	c.ll.MoveToFront(el)
	return e
}

// put stores e, replacing key's entry and evicting the least recently
// used ones past the bounds. An entry larger than the byte bound alone is
// not stored.
func (c *cache) put(e *entry) {
	if e.size() > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[e.key]; ok {
		c.removeLocked(el)
	}
	c.m[e.key] = c.ll.PushFront(e)
	c.bytes += e.size()
	for c.ll.Len() > c.maxEntries || c.bytes > c.maxBytes {
		c.removeLocked(c.ll.Back())
	}
}

func (c *cache) removeLocked(el *list.Element) {
	e := c.ll.Remove(el).(*entry)
	delete(c.m, e.key)
	c.bytes -= e.size()
}

// len returns the number of entries and their bytes.
func (c *cache) len() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len(), c.bytes
}
