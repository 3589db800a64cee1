package downstream

import (
	"sync"
	"sync/atomic"
	"time"
)

// iovMax is the most buffers one writev takes (IOV_MAX on Linux), and so
// the most frames one write carries (Config.MaxFramesPerWrite).
const iovMax = 1024

// maxWriteDelay bounds Config.WriteDelay: a longer window would be
// latency nobody wants from a market-data feed.
const maxWriteDelay = 100 * time.Millisecond

// A round is one hand-over of pending connections to the pool (see
// flushNow): the flush tasks of the connections that Receive queued frames
// on since the round before, and the events those frames carry. The round
// ends when its last task is done; its events' fan-out durations are
// observed when it and every round before it have ended, because a
// connection that was still being written when an event was queued on it
// is not in that event's round: the flush of an earlier round writes it.
//
// This costs one atomic decrement per flush task (flushChunk connections)
// and one slice append per event, nothing per frame.
type round struct {
	// starts are the receive times (unix nanos) of the round's events.
	starts []int64
	// left counts the round's tasks not yet done, plus one that flushNow
	// holds until it has submitted them all.
	left atomic.Int32
	done bool // guarded by roundLog.mu
}

// roundLog orders rounds and observes their events' durations.
type roundLog struct {
	mu   sync.Mutex
	fifo []*round // rounds handed over and not yet observed, oldest first
	free []*round // ended rounds, for reuse; bounded by maxFreeRounds
}

// maxFreeRounds bounds the rounds kept for reuse. The rounds in flight are
// bounded by the pool's queue: every unobserved round but the newest holds
// at least one task there.
const maxFreeRounds = 64

// get returns an empty round, reused when one is free.
func (l *roundLog) get() *round {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.free); n > 0 {
		r := l.free[n-1]
		l.free[n-1] = nil
		l.free = l.free[:n-1]
		return r
	}
	return new(round)
}

// begin appends r to the rounds in flight.
func (l *roundLog) begin(r *round) {
	l.mu.Lock()
	l.fifo = append(l.fifo, r)
	l.mu.Unlock()
}

// end marks r done and observes, at now, every round at the head of the
// fifo that is done: each of its events took from its start to now.
func (l *roundLog) end(r *round, observe func(time.Duration)) {
	now := time.Now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	r.done = true
	n := 0
	for _, h := range l.fifo {
		if !h.done {
			break
		}
		for _, st := range h.starts {
			observe(time.Duration(now - st))
		}
		h.starts = h.starts[:0]
		h.done = false
		if len(l.free) < maxFreeRounds {
			l.free = append(l.free, h)
		}
		n++
	}
	if n > 0 {
		m := copy(l.fifo, l.fifo[n:])
		clear(l.fifo[m:])
		l.fifo = l.fifo[:m]
	}
}

// taskDone counts one of r's tasks done, ending r after the last.
func (s *Server) taskDone(r *round) {
	if r.left.Add(-1) == 0 {
		s.rounds.end(r, s.metrics.fanout.Observe)
	}
}

// received records an event that Receive queued on frames subscribers at
// now (unix nanos): its fan-out duration is observed when the round that
// writes it ends. An event queued on nobody is not recorded.
func (s *Server) received(now int64) {
	s.pmu.Lock()
	s.starts = append(s.starts, now)
	if s.windowStart == 0 {
		s.windowStart = now
	}
	s.pmu.Unlock()
}

// Flush writes out the frames Receive queued since the last Flush. With no
// write delay (Config.WriteDelay) it hands them to the pool at once; with
// one, the frames of the bursts that arrive within the delay of the first
// go out together, one writev per connection, and none waits longer than
// the delay (a timer flushes at its end). It implements [hub.Receiver] and
// never blocks.
func (s *Server) Flush() {
	d := s.cfg.WriteDelay
	if d <= 0 {
		s.flushNow()
		return
	}
	s.pmu.Lock()
	// No window open: nothing queued, or only frames without an event of
	// their own (a stream failed, the latest value), which go now.
	start := s.windowStart
	wait := time.Duration(start + int64(d) - time.Now().UnixNano())
	if start == 0 || wait <= 0 {
		s.pmu.Unlock()
		s.flushNow() // returns at once when nothing is pending
		return
	}
	if s.delayOff { // stopping: every connection is finished
		s.pmu.Unlock()
		return
	}
	if !s.delayArmed {
		s.delayArmed = true
		if s.delayTimer == nil {
			s.delayTimer = time.AfterFunc(wait, s.flushNow)
		} else {
			s.delayTimer.Reset(wait)
		}
	}
	s.pmu.Unlock()
}

// flushNow hands the pending connections to the worker pool in chunks of
// flushChunk, each with one writev for all the frames they hold, as one
// round (see round).
func (s *Server) flushNow() {
	s.burst.Store(0)
	var list *flushTask
	s.pmu.Lock()
	s.windowStart = 0
	if s.delayArmed {
		s.delayArmed = false
		s.delayTimer.Stop() // a no-op when it is what runs this
	}
	p := s.pending
	if len(p) == 0 && len(s.starts) == 0 {
		s.pmu.Unlock()
		return
	}
	r := s.rounds.get() // under pmu, as begin is
	tasks := int32(0)
	s.cmu.Lock()
	for i := 0; i < len(p); i += flushChunk {
		var ft *flushTask
		if n := len(s.chunks); n > 0 {
			ft = s.chunks[n-1]
			s.chunks[n-1] = nil
			s.chunks = s.chunks[:n-1]
		} else {
			ft = &flushTask{srv: s}
			ft.run = ft.flush
		}
		ft.n = copy(ft.conns[:], p[i:])
		ft.round = r
		ft.next, list = list, ft
		tasks++
	}
	s.cmu.Unlock()
	clear(p)
	s.pending = p[:0]
	r.starts, s.starts = s.starts, r.starts[:0]
	r.left.Store(tasks + 1)
	s.rounds.begin(r) // under pmu, so rounds begin in the order they take frames
	s.pmu.Unlock()
	// Submitted without pmu: addPending takes it under a conn's mu, which
	// a flush takes.
	for ft := list; ft != nil; {
		next := ft.next
		ft.next = nil
		if !s.pool.submit(ft.run) {
			// Cannot happen (see pool); do not strand the frames.
			s.metrics.internalErrors.Add(1)
			ft.flush()
		}
		ft = next
	}
	s.taskDone(r)
}

// maxFreeChunks bounds the flush tasks kept for reuse: enough for one
// round that writes to every connection.
func (s *Server) maxFreeChunks() int { return s.cfg.MaxConns/flushChunk + 1 }
