package hub

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

var (
	_ Hub     = (*Memory)(nil)
	_ History = (*Memory)(nil)
)

// Memory is the in-process [Hub] of a single node: Publish numbers each
// message, keeps it in the stream's history and calls each subscribed
// receiver directly on the publisher's goroutine. It is the default when
// no Redis is configured. The zero value is ready to use.
//
// Positions and history live in the process: a restart starts every
// stream in a new epoch.
type Memory struct {
	// Logger receives the logs of panics recovered in receivers; nil
	// means slog.Default(). Set it before first use.
	Logger *slog.Logger
	// HistorySize is how many messages per stream the hub keeps for
	// [Memory.Recover]: 0 means [DefaultHistorySize], a negative value
	// none. Set it before first use.
	HistorySize int
	// HistoryTTL is how long a stream's history outlives its last
	// message: 0 means [DefaultHistoryTTL]. Set it before first use.
	HistoryTTL time.Duration

	// mu guards the following fields.
	mu   sync.RWMutex
	subs map[string][]Receiver

	// smu guards streams: the numbering and history of every stream
	// published. Run drops those idle for long (see sweep), so the map
	// holds the streams published lately, which the upstream bounds.
	smu     sync.RWMutex
	streams map[string]*memStream

	// dmu guards dirty: the receivers given a message since the last
	// Flush, each once. There are as many as subscribed receivers at most
	// (one per node's downstream server, in practice).
	dmu   sync.Mutex
	dirty []Receiver

	published atomic.Uint64 // Publish calls
	received  atomic.Uint64 // messages handed to at least one receiver
	panics    atomic.Uint64 // recovered in receivers
	dropped   atomic.Uint64 // by the numbering
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

// Publish numbers msg (see [Position]; a message of an older publisher, or
// one already numbered, is dropped), keeps it in the stream's history and
// calls Receive on every receiver of msg.Stream before it returns, which
// is what lets msg.Data be reused once it has. A stream's messages reach
// the receivers in the order of their positions. A receiver that panics
// is logged and counted (Stats.InternalErrors); the others still get msg.
// A message with Err is not numbered nor kept.
func (m *Memory) Publish(_ context.Context, msg Message) error {
	m.published.Add(1)
	msg.Epoch = ""
	if msg.State {
		if msg.Err != "" {
			return nil
		}
		st := m.stream(msg.Stream)
		st.mu.Lock()
		kept := st.keepState(msg)
		st.mu.Unlock()
		if !kept {
			m.dropped.Add(1)
		}
		return nil
	}
	if msg.Err == "" {
		st := m.stream(msg.Stream)
		st.mu.Lock()
		defer st.mu.Unlock() // numbering and delivery in one order
		if !st.seq.number(&msg) {
			m.dropped.Add(1)
			return nil
		}
		st.keep(msg, m.historySize(), time.Now().UnixNano())
	}
	m.mu.RLock()
	rs := m.subs[msg.Stream]
	m.mu.RUnlock()
	// rs is never modified in place (Subscribe and Unsubscribe copy), so it
	// is safe to range over without the lock.
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
	return Stats{Published: m.published.Load(), Received: m.received.Load(), InternalErrors: m.panics.Load(), Dropped: m.dropped.Load()}
}

// Ready always returns nil: an in-process hub cannot be unreachable.
func (m *Memory) Ready() error { return nil }

// Run drops, until ctx ends, the histories idle for longer than
// HistoryTTL and the positions idle for a day, and returns nil then.
func (m *Memory) Run(ctx context.Context) error {
	t := time.NewTicker(min(m.historyTTL()/4, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			m.sweep(now.UnixNano())
		}
	}
}
