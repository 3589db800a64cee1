package hub

import (
	"context"
	"sync"
	"time"
)

// memStream is one stream's numbering and history in a [Memory] hub.
type memStream struct {
	// mu is held while a message is numbered, kept and delivered, and
	// while the history is read.
	mu  sync.Mutex
	seq sequence
	// ring holds the last messages numbered, oldest at head; each slot's
	// Data is a copy in a buffer reused by the slot's next message.
	ring []Message
	head int
	n    int
	last int64 // unix nanos of the last message numbered
	// state is the stream's newest state (Message.State) with the
	// position it was kept at; nil when none.
	state *Message
}

// maxKeptData is the largest Data buffer a history slot keeps for its next
// message; a larger one, grown by a rare big message, is let go.
const maxKeptData = 64 << 10

func (m *Memory) historySize() int {
	switch {
	case m.HistorySize < 0:
		return 0
	case m.HistorySize == 0:
		return DefaultHistorySize
	}
	return m.HistorySize
}

func (m *Memory) historyTTL() time.Duration {
	if m.HistoryTTL <= 0 {
		return DefaultHistoryTTL
	}
	return m.HistoryTTL
}

// stream returns the state of key, made on first use.
func (m *Memory) stream(key string) *memStream {
	// Read-locked first: every Publish looks its stream up.
	m.smu.RLock()
	st := m.streams[key]
	m.smu.RUnlock()
	if st != nil {
		return st
	}
	m.smu.Lock()
	defer m.smu.Unlock()
	st = m.streams[key]
	if st == nil {
		if m.streams == nil {
			m.streams = make(map[string]*memStream)
		}
		st = &memStream{}
		m.streams[key] = st
	}
	return st
}

// keep records msg, just numbered, as the newest message of the history
// (of at most size messages); st.mu is held.
func (st *memStream) keep(msg Message, size int, now int64) {
	st.last = now
	if size == 0 {
		return
	}
	if len(st.ring) != size {
		st.ring, st.head, st.n = make([]Message, size), 0, 0
	}
	i := (st.head + st.n) % size
	if st.n == size {
		st.head = (st.head + 1) % size
	} else {
		st.n++
	}
	buf := st.ring[i].Data[:0]
	if cap(buf) > maxKeptData && len(msg.Data) <= maxKeptData {
		buf = nil
	}
	msg.Data = append(buf, msg.Data...)
	st.ring[i] = msg
}

// at returns the i-th message kept, oldest first; st.mu is held.
func (st *memStream) at(i int) *Message { return &st.ring[(st.head+i)%len(st.ring)] }

// Recover implements [History].
func (m *Memory) Recover(_ context.Context, stream string, since *Position) (Recovery, error) {
	// A stream nothing was published to yet gets its epoch now: a client
	// that subscribes before the first message still holds a position
	// it can recover from.
	st := m.stream(stream)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.seq.epoch == "" {
		st.seq = sequence{epoch: newEpoch()}
		st.last = time.Now().UnixNano()
	}
	if time.Now().UnixNano()-st.last > int64(m.historyTTL()) {
		st.ring, st.head, st.n = nil, 0, 0
	}
	if time.Now().UnixNano()-st.last > int64(m.historyTTL()) {
		st.state = nil
	}
	var r Recovery
	r.Position = Position{Epoch: st.seq.epoch, Seq: st.seq.seq}
	if since != nil && st.after(since.Epoch, since.Seq, &r) {
		r.Recovered = true
		return r, nil
	}
	if s := st.state; s != nil && st.after(s.Epoch, s.Seq, &r) {
		c := copyMessage(*s)
		r.State = &c
		return r, nil
	}
	if since == nil && st.n > 0 {
		r.Messages = []Message{copyMessage(*st.at(st.n - 1))}
	}
	return r, nil
}

// after sets r.Messages to copies of the messages after position
// (epoch, seq) up to r.Position and reports true when the history holds
// every one of them; st.mu is held.
func (st *memStream) after(epoch string, seq uint64, r *Recovery) bool {
	if epoch != r.Position.Epoch || seq > r.Position.Seq {
		return false
	}
	missed := int(r.Position.Seq - seq)
	if missed > st.n {
		return false // some are gone
	}
	r.Messages = make([]Message, 0, missed)
	for i := st.n - missed; i < st.n; i++ {
		r.Messages = append(r.Messages, copyMessage(*st.at(i)))
	}
	return true
}

// keepState records msg as the stream's state at its current position,
// or forgets the state when msg has no Data; st.mu is held. A state of
// another origin than the newest message's, or of a stream with no
// position yet, is dropped.
func (st *memStream) keepState(msg Message) bool {
	if st.seq.epoch == "" || msg.Origin != st.seq.origin {
		return false
	}
	if len(msg.Data) == 0 {
		st.state = nil
		return true
	}
	c := copyMessage(msg)
	c.Seq, c.Epoch, c.Gap = st.seq.seq, st.seq.epoch, false
	st.state = &c
	return true
}

// copyMessage returns msg with its own copy of Data.
func copyMessage(msg Message) Message {
	msg.Data = append([]byte(nil), msg.Data...)
	return msg
}

// sweep drops the histories idle for longer than HistoryTTL and the
// streams idle for longer than positionTTL (a later message starts a new
// epoch).
func (m *Memory) sweep(now int64) {
	ttl := int64(m.historyTTL())
	m.smu.Lock()
	defer m.smu.Unlock()
	for k, st := range m.streams {
		st.mu.Lock()
		idle := now - st.last
		if idle > ttl {
			st.ring, st.head, st.n, st.state = nil, 0, 0, nil
		}
		st.mu.Unlock()
		if idle > int64(positionTTL) {
			delete(m.streams, k)
		}
	}
}
