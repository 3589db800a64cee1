package gateway

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// maxPins bounds the streams an operator may pin on one node.
const maxPins = 10000

var (
	errNotPinned   = errors.New("stream is not pinned")
	errTooManyPins = fmt.Errorf("no more than %d streams may be pinned", maxPins)
)

// pinner is where pinned streams are wanted: the single node's demand set
// (a [demand.Set], in front of the router), or the cluster node's, which
// registers them in Redis ([cluster.Node]). Both merge pins with what
// clients want in the same way.
type pinner interface {
	Pin(key string)
	Unpin(key string)
}

// pins keeps the operator's pinned streams: streams kept subscribed
// upstream with no client (PUT /api/v1/streams/{stream}). It validates
// and bounds them and remembers them for the control API; the pinner does
// the rest.
type pins struct {
	validate func(key string) error
	to       pinner

	mu  sync.Mutex
	set map[string]bool
}

func newPins(validate func(string) error, to pinner) *pins {
	return &pins{validate: validate, to: to, set: make(map[string]bool)}
}

// Pin keeps key subscribed until Unpin; pinning a pinned stream is a no-op.
func (p *pins) Pin(key string) error {
	if err := p.validate(key); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set[key] {
		return nil
	}
	if len(p.set) >= maxPins {
		return errTooManyPins
	}
	p.set[key] = true
	p.to.Pin(key)
	return nil
}

// Unpin releases a pinned stream; it stays subscribed while clients want it.
func (p *pins) Unpin(key string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.set[key] {
		return errNotPinned
	}
	delete(p.set, key)
	p.to.Unpin(key)
	return nil
}

// Pinned returns the pinned streams, sorted.
func (p *pins) Pinned() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.set))
	for k := range p.set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
