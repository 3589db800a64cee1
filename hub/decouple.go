package hub

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultDecoupledBytes is the queue bound of a [Decoupled] unless
// configured: at Binance's busiest streams, seconds of a slow Redis.
const DefaultDecoupledBytes = 32 << 20

// drainTimeout bounds the last send when a Decoupled stops.
const drainTimeout = 2 * time.Second

// DecoupledConfig configures a [Decoupled].
type DecoupledConfig struct {
	// Next is the publisher the messages go to (the Redis hub); required.
	Next Publisher
	// MaxBytes bounds the message data queued for Next; default
	// [DefaultDecoupledBytes].
	MaxBytes int
	// Logger receives the start and end of each run of dropped messages;
	// nil discards them.
	Logger *slog.Logger
	// Hold, when set, says how long each message waits in the queue
	// before Run sends it (0: it goes with the next Flush, as without
	// Hold). Order is kept whatever Hold returns. A cluster node holds
	// what it publishes as a handover's successor (see gateway), so
	// that the old owner's copies reach Redis first.
	Hold func() time.Duration
}

// Decoupled is a [Publisher] that never makes its caller wait for the one
// it wraps: Publish copies the message into a bounded queue and Flush only
// wakes Run, which publishes the queued messages to Next in order and
// flushes it. A feed that publishes through it keeps reading its exchange
// while Redis is slow. When the queue holds MaxBytes, further messages are
// dropped (counted by Dropped) until Run has taken the queue: the
// publisher's own Seq then skips, which the hub marks as a gap for
// receivers, so nothing is lost silently. Safe for concurrent use.
type Decoupled struct {
	cfg  DecoupledConfig
	wake chan struct{}

	// mu guards queue and dropping; the spare queue belongs to Run.
	mu       sync.Mutex
	queue    *decoupledQueue
	spare    *decoupledQueue
	dropping bool

	dropped atomic.Uint64
	// lastErr is the error of Next's last Flush, nil after a good one.
	lastErr atomic.Pointer[error]

	// held belongs to Run: messages taken from the queue that Hold keeps
	// back, oldest first; heldBytes (their data) counts against MaxBytes.
	held      decoupledQueue
	heldBytes atomic.Int64
}

// decoupledQueue holds messages whose Data lie in buf at [start, end).
type decoupledQueue struct {
	msgs []decoupledMsg
	buf  []byte
}

type decoupledMsg struct {
	msg        Message
	start, end int
	at         time.Time // when it was published; with Hold only
}

// NewDecoupled returns a Decoupled configured by cfg. It publishes
// nothing until Run runs.
func NewDecoupled(cfg DecoupledConfig) (*Decoupled, error) {
	if cfg.Next == nil {
		return nil, errors.New("hub: DecoupledConfig: Next is required")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultDecoupledBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Decoupled{cfg: cfg, wake: make(chan struct{}, 1), queue: &decoupledQueue{}, spare: &decoupledQueue{}}, nil
}

// Publish implements [Publisher]: it queues a copy of msg, or drops it
// when the queue is full. It never blocks on Next.
func (d *Decoupled) Publish(_ context.Context, msg Message) error {
	var at time.Time
	if d.cfg.Hold != nil {
		at = time.Now()
	}
	d.mu.Lock()
	q := d.queue
	if len(q.buf)+int(d.heldBytes.Load())+len(msg.Data) > d.cfg.MaxBytes && len(q.msgs) > 0 {
		first := !d.dropping
		d.dropping = true
		d.mu.Unlock()
		d.dropped.Add(1)
		if first {
			d.cfg.Logger.Warn("hub: publish queue full (Redis too slow); dropping messages until it drains, receivers are told of the gap",
				"max_bytes", d.cfg.MaxBytes)
		}
		return nil
	}
	start := len(q.buf)
	q.buf = append(q.buf, msg.Data...)
	msg.Data = nil
	q.msgs = append(q.msgs, decoupledMsg{msg: msg, start: start, end: len(q.buf), at: at})
	d.mu.Unlock()
	return nil
}

// Flush implements [Publisher]: it wakes Run and returns at once, with
// the error of Next's last Flush (nil, [ErrNotSent], or a send error).
func (d *Decoupled) Flush(context.Context) error {
	select {
	case d.wake <- struct{}{}:
	default:
	}
	if p := d.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Dropped returns how many messages were dropped because the queue was
// full.
func (d *Decoupled) Dropped() uint64 { return d.dropped.Load() }

// Run publishes what is queued to Next whenever Flush is called (and
// when held messages are due), until ctx ends; it then sends what is
// left, held or not, for at most 2 s.
func (d *Decoupled) Run(ctx context.Context) error {
	due := time.NewTimer(time.Hour)
	due.Stop()
	defer due.Stop()
	for {
		var next time.Duration
		select {
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
			d.sendHeld(last, 0)
			cancel()
			return nil
		case <-d.wake:
			next = d.sendHeld(ctx, d.hold())
		case <-due.C:
			next = d.sendHeld(ctx, d.hold())
		}
		due.Stop()
		if next > 0 {
			due.Reset(next)
		}
	}
}

// hold returns how long messages wait now (Config.Hold), 0 without it.
func (d *Decoupled) hold() time.Duration {
	if d.cfg.Hold == nil {
		return 0
	}
	return max(d.cfg.Hold(), 0)
}

// sendHeld sends the queue as send does when nothing is held and hold is
// 0; else it moves the queue behind the held messages and sends those
// published at least hold ago, in order. It returns how long until the
// oldest message still held is due, 0 when none is.
func (d *Decoupled) sendHeld(ctx context.Context, hold time.Duration) time.Duration {
	if hold == 0 && len(d.held.msgs) == 0 {
		d.send(ctx)
		return 0
	}
	q := d.take()
	h := &d.held
	for _, m := range q.msgs {
		start := len(h.buf)
		h.buf = append(h.buf, q.buf[m.start:m.end]...)
		h.msgs = append(h.msgs, decoupledMsg{msg: m.msg, start: start, end: len(h.buf), at: m.at})
	}
	d.heldBytes.Store(int64(len(h.buf)))
	d.reuse(q)
	cut := time.Now().Add(-hold)
	n := len(h.msgs)
	if hold > 0 {
		n = 0
		for n < len(h.msgs) && !h.msgs[n].at.After(cut) {
			n++
		}
	}
	if n > 0 {
		d.publish(ctx, h, h.msgs[:n])
		// Keep the rest at the front.
		rest := h.msgs[n:]
		if len(rest) == 0 {
			d.reuse(h)
		} else {
			off := rest[0].start
			copy(h.buf, h.buf[off:])
			h.buf = h.buf[:len(h.buf)-off]
			for i := range rest {
				rest[i].start -= off
				rest[i].end -= off
			}
			copy(h.msgs, rest)
			clear(h.msgs[len(rest):])
			h.msgs = h.msgs[:len(rest)]
		}
		d.heldBytes.Store(int64(len(h.buf)))
	}
	if len(h.msgs) == 0 {
		return 0
	}
	return max(time.Until(h.msgs[0].at.Add(hold)), time.Millisecond)
}

// take swaps the queue for the spare and returns it: Publish fills the
// spare meanwhile, and may publish again if it was dropping.
func (d *Decoupled) take() *decoupledQueue {
	d.mu.Lock()
	q := d.queue
	d.queue, d.spare = d.spare, q
	wasDropping := d.dropping
	d.dropping = false
	d.mu.Unlock()
	if wasDropping {
		d.cfg.Logger.Info("hub: publish queue drained; publishing again", "dropped_total", d.dropped.Load())
	}
	return q
}

// send takes the queue, publishes its messages to Next in order and
// flushes Next.
func (d *Decoupled) send(ctx context.Context) {
	q := d.take()
	if len(q.msgs) == 0 {
		return
	}
	d.publish(ctx, q, q.msgs)
	d.reuse(q)
}

// publish publishes msgs, whose data lie in q, to Next in order and
// flushes Next. Next is done with the data when it returns (Publisher's
// contract).
func (d *Decoupled) publish(ctx context.Context, q *decoupledQueue, msgs []decoupledMsg) {
	for i := range msgs {
		m := &msgs[i]
		msg := m.msg
		msg.Data = q.buf[m.start:m.end:m.end]
		// Next reports failures again at Flush; a message it could not
		// take is lost to the hub, which numbers around it as a gap.
		_ = d.cfg.Next.Publish(ctx, msg)
	}
	err := d.cfg.Next.Flush(ctx)
	if err != nil {
		d.lastErr.Store(&err)
	} else {
		d.lastErr.Store(nil)
	}
}

// reuse empties q for reuse, unless a stall made it larger than a usual
// batch.
func (d *Decoupled) reuse(q *decoupledQueue) {
	clear(q.msgs)
	q.msgs = q.msgs[:0]
	if cap(q.buf) > maxKeptBatch {
		q.buf = nil
	}
	q.buf = q.buf[:0]
}
