package cluster

import (
	"fmt"
	"slices"
	"sync/atomic"
)

// Tokens holds, for each exchange, the fencing token under which this node
// carries it (as its owner, or as the successor of a handover in
// progress), or 0 while it does not. A [Node] writes them; whatever
// publishes the node's upstream messages reads them, per message, to stamp
// [hub.Message.Origin], so that receivers prefer the newest owner (see
// downstream's topic.admit).
//
// Make it before the feeds (they need a publisher before the node exists)
// and give the same value to [Config.Tokens]. Its methods are safe for
// concurrent use.
type Tokens struct {
	names []string
	vals  []atomic.Int64
	succ  []atomic.Bool // carrying as the successor of a handover
}

// NewTokens returns tokens for exchanges, all 0.
func NewTokens(exchanges []string) *Tokens {
	n := len(exchanges)
	return &Tokens{names: slices.Clone(exchanges), vals: make([]atomic.Int64, n), succ: make([]atomic.Bool, n)}
}

// Successor reports whether this node carries exchange as the successor
// of another node's handover, which still carries it too: what this node
// publishes repeats the owner's messages for a while. A publisher that
// holds its messages back meanwhile lets the owner's copies be numbered
// first, so that the hub can prove the switch of owners continuous from
// the repeats even where the exchange's event ids skip.
func (t *Tokens) Successor(exchange string) bool {
	if i := t.index(exchange); i >= 0 {
		return t.succ[i].Load()
	}
	return false
}

// index returns the position of exchange, or -1.
func (t *Tokens) index(exchange string) int {
	return slices.Index(t.names, exchange)
}

// Token returns the fencing token under which this node carries exchange,
// or 0 when it does not carry it (or the exchange is unknown). It is cheap
// enough to call per message.
func (t *Tokens) Token(exchange string) uint64 {
	if v := t.find(exchange); v != nil {
		return uint64(max(v.Load(), 0))
	}
	return 0
}

// find returns the token of exchange, or nil.
func (t *Tokens) find(exchange string) *atomic.Int64 {
	if i := t.index(exchange); i >= 0 {
		return &t.vals[i]
	}
	return nil
}

// findSuccessor returns the successor flag of exchange, or nil.
func (t *Tokens) findSuccessor(exchange string) *atomic.Bool {
	if i := t.index(exchange); i >= 0 {
		return &t.succ[i]
	}
	return nil
}

// covers returns an error unless t has every exchange of exchanges.
func (t *Tokens) covers(exchanges []string) error {
	for _, x := range exchanges {
		if t.find(x) == nil {
			return fmt.Errorf("Tokens lacks exchange %q", x)
		}
	}
	return nil
}
