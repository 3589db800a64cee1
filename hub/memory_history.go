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
	var r Recovery
	r.Position = Position{Epoch: st.seq.epoch, Seq: st.seq.seq}
	if since == nil {
		if st.n > 0 {
			r.Messages = []Message{copyMessage(*st.at(st.n - 1))}
		}
		return r, nil
	}
	if since.Epoch != r.Position.Epoch || since.Seq > r.Position.Seq {
		return r, nil
	}
	missed := int(r.Position.Seq - since.Seq)
	if missed > st.n {
		return r, nil // some are gone
	}
	r.Recovered = true
	r.Messages = make([]Message, 0, missed)
	for i := st.n - missed; i < st.n; i++ {
		r.Messages = append(r.Messages, copyMessage(*st.at(i)))
	}
	return r, nil
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
			st.ring, st.head, st.n = nil, 0, 0
		}
		st.mu.Unlock()
		if idle > int64(positionTTL) {
			delete(m.streams, k)
		}
	}
}
