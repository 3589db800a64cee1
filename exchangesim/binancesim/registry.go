package binancesim

import "sync"

// registry maps symbols to their subscribed streams and those to the
// connections subscribed. The market generator reads it once per tick;
// connections change it on SUBSCRIBE, UNSUBSCRIBE and close.
type registry struct {
	mu    sync.RWMutex // guards the following
	bySym map[string]*symStreams
}

// symStreams is the set of subscribed streams of one symbol (or of
// marketWide).
type symStreams struct {
	streams map[string]*streamSubs
}

// streamSubs is one stream name and its subscribers.
type streamSubs struct {
	spec  streamSpec
	conns map[*conn]struct{}
}

func newRegistry() *registry {
	return &registry{bySym: map[string]*symStreams{}}
}

func (r *registry) add(c *conn, specs []streamSpec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addLocked(c, specs)
}

// addLocked is add with r.mu held.
func (r *registry) addLocked(c *conn, specs []streamSpec) {
	for _, sp := range specs {
		ss := r.bySym[sp.symbol]
		if ss == nil {
			ss = &symStreams{streams: map[string]*streamSubs{}}
			r.bySym[sp.symbol] = ss
		}
		sub := ss.streams[sp.name]
		if sub == nil {
			sub = &streamSubs{spec: sp, conns: map[*conn]struct{}{}}
			ss.streams[sp.name] = sub
		}
		sub.conns[c] = struct{}{}
	}
}

func (r *registry) remove(c *conn, specs []streamSpec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sp := range specs {
		ss := r.bySym[sp.symbol]
		if ss == nil {
			continue
		}
		sub := ss.streams[sp.name]
		if sub == nil {
			continue
		}
		delete(sub.conns, c)
		if len(sub.conns) == 0 {
			delete(ss.streams, sp.name)
		}
		if len(ss.streams) == 0 {
			delete(r.bySym, sp.symbol)
		}
	}
}

// counts returns stream name -> number of subscribed connections.
func (r *registry) counts() map[string]int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := map[string]int{}
	for _, ss := range r.bySym {
		for name, sub := range ss.streams {
			out[name] = len(sub.conns)
		}
	}
	return out
}
