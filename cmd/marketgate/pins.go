package main

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/marketgate/marketgate/cluster"
	"github.com/marketgate/marketgate/downstream"
)

// maxPins bounds the streams an operator may pin on one node.
const maxPins = 10000

var (
	errNotPinned   = errors.New("stream is not pinned")
	errTooManyPins = fmt.Errorf("no more than %d streams may be pinned", maxPins)
)

// demand is where pinned streams are wanted: the local router on one node
// (through pinSource), the cluster's demand registry in a cluster.
type demand interface {
	pin(key string)
	unpin(key string)
}

// pins keeps the operator's pinned streams: streams kept subscribed
// upstream with no client (PUT /api/v1/streams/{stream}).
type pins struct {
	validate func(key string) error
	to       demand

	mu  sync.Mutex
	set map[string]bool
}

func newPins(validate func(string) error, to demand) *pins {
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
	p.to.pin(key)
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
	p.to.unpin(key)
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

// localDemand is the downstream's Source on a single node: it passes
// validation and the clients' demand through to the router and adds the
// pins, so that a stream is wanted upstream while clients want it or it is
// pinned, and released only when neither holds. (In a cluster,
// cluster.Node merges pins into the node's demand itself.)
type localDemand struct {
	router downstream.Source

	mu      sync.Mutex
	clients map[string]bool // wanted by the downstream; bounded by its topics
	pinned  map[string]bool // bounded by maxPins
}

func newLocalDemand(router downstream.Source) *localDemand {
	return &localDemand{router: router, clients: make(map[string]bool), pinned: make(map[string]bool)}
}

// Validate implements downstream.Source.
func (d *localDemand) Validate(key string) error { return d.router.Validate(key) }

// Want implements downstream.Source.
func (d *localDemand) Want(keys []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var fwd []string
	for _, k := range keys {
		if !d.clients[k] {
			d.clients[k] = true
			if !d.pinned[k] {
				fwd = append(fwd, k)
			}
		}
	}
	if len(fwd) > 0 {
		d.router.Want(fwd)
	}
}

// Unwant implements downstream.Source.
func (d *localDemand) Unwant(keys []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var fwd []string
	for _, k := range keys {
		if d.clients[k] {
			delete(d.clients, k)
			if !d.pinned[k] {
				fwd = append(fwd, k)
			}
		}
	}
	if len(fwd) > 0 {
		d.router.Unwant(fwd)
	}
}

func (d *localDemand) pin(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pinned[key] = true
	if !d.clients[key] {
		d.router.Want([]string{key})
	}
}

func (d *localDemand) unpin(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.pinned, key)
	if !d.clients[key] {
		d.router.Unwant([]string{key})
	}
}

// clusterDemand pins streams in the cluster's demand registry.
type clusterDemand struct{ n *cluster.Node }

func (d clusterDemand) pin(key string)   { d.n.Pin(key) }
func (d clusterDemand) unpin(key string) { d.n.Unpin(key) }
