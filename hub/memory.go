package hub

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
)

var _ Hub = (*Memory)(nil)

// Memory is the in-process [Hub] of a single node: Publish calls each
// subscribed receiver directly on the publisher's goroutine. It is the
// default when no Redis is configured. The zero value is ready to use.
type Memory struct {
	// Logger receives the logs of panics recovered in receivers; nil
	// means slog.Default(). Set it before first use.
	Logger *slog.Logger

	// mu guards the following fields.
	mu   sync.RWMutex
	subs map[string][]Receiver

	// dmu guards dirty: the receivers given a message since the last
	// Flush, each once. There are as many as subscribed receivers at most
	// (one per node's downstream server, in practice).
	dmu   sync.Mutex
	dirty []Receiver

	published atomic.Uint64 // Publish calls
	received  atomic.Uint64 // messages handed to at least one receiver
	panics    atomic.Uint64 // recovered in receivers
}

// guard returns what recovers the receivers' panics.
func (m *Memory) guard() receiverGuard {
	log := m.Logger
	if log == nil {
		log = slog.Default()
	}
	return receiverGuard{log: log, panics: &m.panics}
}

// NewMemory returns an empty in-process hub.
func NewMemory() *Memory { return &Memory{} }

// Publish calls Receive on every receiver of msg.Stream before it returns,
// which is what lets msg.Data be reused once it has. A receiver that
// panics is logged and counted (Stats.InternalErrors); the others still
// get msg.
func (m *Memory) Publish(_ context.Context, msg Message) error {
	m.mu.RLock()
	rs := m.subs[msg.Stream]
	m.mu.RUnlock()
	// rs is never modified in place (Subscribe and Unsubscribe copy), so it
	// is safe to range over without the lock.
	m.published.Add(1)
	g := m.guard()
	for _, r := range rs {
		g.receive(r, msg)
	}
	if len(rs) > 0 {
		m.received.Add(1)
		m.dmu.Lock()
		for _, r := range rs {
			if !slices.Contains(m.dirty, r) {
				m.dirty = append(m.dirty, r)
			}
		}
		m.dmu.Unlock()
	}
	return nil
}

// Flush calls Flush on every receiver that was given a message since the
// last Flush.
func (m *Memory) Flush(context.Context) error {
	m.dmu.Lock()
	defer m.dmu.Unlock()
	g := m.guard()
	for _, r := range m.dirty {
		g.flush(r)
	}
	clear(m.dirty)
	m.dirty = m.dirty[:0]
	return nil
}

// Subscribe adds r to the receivers of stream.
func (m *Memory) Subscribe(_ context.Context, stream string, r Receiver) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.subs == nil {
		m.subs = make(map[string][]Receiver)
	}
	rs := m.subs[stream]
	if slices.Contains(rs, r) {
		return nil
	}
	m.subs[stream] = append(slices.Clip(rs), r)
	return nil
}

// Unsubscribe removes r from the receivers of stream.
func (m *Memory) Unsubscribe(_ context.Context, stream string, r Receiver) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.subs[stream]
	i := slices.Index(rs, r)
	if i < 0 {
		return nil
	}
	if len(rs) == 1 {
		delete(m.subs, stream)
		return nil
	}
	m.subs[stream] = slices.Delete(slices.Clone(rs), i, i+1)
	return nil
}

// Stats returns the hub's counters in the shape of [Redis.Stats], so
// that metrics read either hub alike: Published counts Publish calls,
// Received the messages handed to at least one receiver; the error
// counters stay zero, as nothing in process can fail.
func (m *Memory) Stats() Stats {
	return Stats{Published: m.published.Load(), Received: m.received.Load(), InternalErrors: m.panics.Load()}
}

// Ready always returns nil: an in-process hub cannot be unreachable.
func (m *Memory) Ready() error { return nil }

// Run blocks until ctx ends; the in-process hub has no background work.
func (m *Memory) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
