package book

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/marketgate/marketgate/hub"
)

// A keeper keeps one symbol's book: it buffers the diffs while it fetches
// a snapshot, applies the buffered diffs that follow the snapshot, then
// every diff as it comes, each checked for continuity (spot: U is the
// last applied id + 1; USD-M: pu is the last applied u). A diff that does
// not continue the book, a crossed book, a reconnect upstream or an
// unreadable diff starts over with a new snapshot, replacing the book
// (never merging into it). Each view of the book (its top N levels, one
// stream each) is published as a snapshot after every sync and as
// updates that turn one top N into the next.

const (
	// maxBuffered bounds the diffs held while a snapshot is fetched; past
	// it the sync starts over.
	maxBuffered = 4096
	// snapshotTries is how many snapshots one sync fetches before it
	// backs off: each was older than the first buffered diff.
	snapshotTries = 3
	// stateEvery is how often a view's state is kept in the hub while it
	// changes, and stateRefresh how often while it does not (so that its
	// age tells a live book from an abandoned one).
	stateEvery   = time.Second
	stateRefresh = 10 * time.Second
	// staleAfter is how long a sync may take before subscribers are
	// told the book is stale.
	staleAfter = 2 * time.Second
)

// view is one published top-N view of a keeper's book.
type view struct {
	key string // the stream key
	n   int
	seq uint64 // the publisher's numbering of key
	// bids and asks are the top N last published, lastU their update id;
	// synced whether a snapshot of the current sync went out.
	bids, asks []Level
	lastU      int64
	synced     bool
	stateAt    time.Time
	stateDirty bool
	stale      bool
}

// keeper keeps one symbol's book and publishes its views.
type keeper struct {
	x      *Books
	symbol string // as in stream names
	diff   string // the diff stream's key
	// inband: the diff stream sends the snapshots itself (the
	// procedure asks for no REST snapshot).
	inband bool
	log    *slog.Logger

	kick   chan struct{} // a sync is wanted
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	views   map[string]*view // by stream key
	book    *Book
	synced  bool
	first   bool // synced, and the next diff is the first after the snapshot
	syncing bool // a sync is wanted or running
	since   time.Time
	buf     []Diff
	syncs   int  // completed syncs
	resub   bool // an in-band book needs the diff stream subscribed again
	// askedAt: when an in-band book asked for its diff stream again
	// (resub) and began to wait for the snapshot that brings; zero when it
	// waits for none. Diffs meanwhile ask no more, until askAgain has
	// passed without one.
	askedAt  time.Time
	lastTime int64
	scratch  []Level
	out      []byte
}

// askAgain is how long an in-band book waits for the snapshot it asked
// for before diffs with no snapshot ask again: a safety net for a
// snapshot the exchange did not send or that was lost with a connection
// (the feed's Resubscribe does send both requests).
const askAgain = 20 * time.Second

// newKeeper returns the keeper of symbol; run starts it.
func newKeeper(x *Books, symbol string) *keeper {
	path, _ := x.cfg.Procedure.SnapshotRequest(symbol, x.cfg.Depth)
	return &keeper{
		x: x, symbol: symbol, diff: x.name + ":" + x.cfg.Procedure.DiffStream(symbol), inband: path == "",
		log:   x.log.With("book", symbol),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		views: make(map[string]*view),
		book:  NewBook(x.cfg.MaxLevels),
	}
}

// adoptInbandLocked replaces the book with a snapshot the diff stream
// sent, and publishes every view's snapshot. k.mu is held.
func (k *keeper) adoptInbandLocked(ctx context.Context, d Diff) {
	k.book.Reset()
	for _, l := range d.Bids {
		k.book.Set(true, l[0], l[1])
	}
	for _, l := range d.Asks {
		k.book.Set(false, l[0], l[1])
	}
	k.book.LastUpdateID = d.Last
	if d.Time > 0 {
		k.lastTime = d.Time
	}
	k.synced, k.first, k.syncing, k.resub, k.askedAt = true, false, false, false, time.Time{}
	k.buf = k.buf[:0]
	k.syncs++
	k.x.metrics.syncs.Add(1)
	for _, v := range k.views {
		k.publishSnapshotLocked(ctx, v)
	}
}

// resyncLocked discards the book and asks for a new snapshot; k.mu is
// held.
func (k *keeper) resyncLocked(reason string) {
	if k.synced {
		k.x.metrics.resyncs.Add(1)
		k.log.Info("book resync", "reason", reason)
		k.resub, k.askedAt = true, time.Now() // an in-band snapshot comes by subscribing again
	}
	k.synced, k.first = false, false
	k.book.Reset()
	k.buf = k.buf[:0]
	if !k.syncing {
		k.syncing, k.since = true, time.Now()
	}
	k.kickLocked()
}

// kickLocked asks the keeper's goroutine to sync.
func (k *keeper) kickLocked() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// onDiff takes one message of the diff stream, read upstream: it is
// called on the feed's reader, must not block, and publishes the views'
// updates (the feed flushes).
func (k *keeper) onDiff(ctx context.Context, msg hub.Message) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if msg.Err != "" {
		k.resyncLocked("stream failed")
		for _, v := range k.views {
			k.publishLocked(ctx, hub.Message{Stream: v.key, Err: msg.Err})
			v.synced = false
		}
		return
	}
	d, err := k.x.cfg.Procedure.ParseDiff(msg.Data)
	if err != nil {
		k.x.metrics.badDiffs.Add(1)
		k.log.Warn("book diff unreadable", "err", err)
		k.resyncLocked("unreadable diff")
		return
	}
	if d.Snapshot {
		k.adoptInbandLocked(ctx, d)
		return
	}
	if msg.Gap {
		k.resyncLocked("events lost upstream")
	}
	if !k.synced && k.inband {
		// The stream's next snapshot makes the book. Diffs with no
		// snapshot before them mean none is coming: the diff stream was
		// still subscribed upstream when this keeper started (it lingers
		// after the last view of an earlier keeper left), so subscribing
		// it did not make the exchange send one. Ask for it once.
		if k.askedAt.IsZero() || time.Since(k.askedAt) > askAgain {
			k.resub, k.askedAt = true, time.Now()
			k.kickLocked()
		}
		return
	}
	if !k.synced {
		if !k.syncing {
			k.resyncLocked("not synced")
		}
		if len(k.buf) >= maxBuffered {
			k.resyncLocked("buffer full")
		}
		k.buf = append(k.buf, d)
		if len(k.buf) == 1 {
			k.kickLocked() // the stream flows: the snapshot may be fetched
		}
		return
	}
	if !k.applyLocked(d) {
		return
	}
	k.publishUpdatesLocked(ctx)
}

// applyLocked applies d to the synced book when it continues it; on a gap
// or a crossed book it starts a resync with d buffered and reports false.
// k.mu is held.
func (k *keeper) applyLocked(d Diff) bool {
	id := k.book.LastUpdateID
	chained := k.x.cfg.Procedure.Chained()
	switch {
	case chained && k.first:
		// USD-M: the first diff applied must hold the snapshot's id, or
		// name it as its previous diff's.
		if d.Last < id {
			return false
		}
		if d.First > id && d.Prev != id {
			k.resyncLocked("gap")
			k.buf = append(k.buf, d)
			return false
		}
	case chained:
		if d.Prev != id {
			k.resyncLocked("gap")
			k.buf = append(k.buf, d)
			return false
		}
	default:
		if d.Last <= id {
			return false // already in the book
		}
		if d.First > id+1 {
			k.resyncLocked("gap")
			k.buf = append(k.buf, d)
			return false
		}
	}
	for _, l := range d.Bids {
		k.book.Set(true, l[0], l[1])
	}
	for _, l := range d.Asks {
		k.book.Set(false, l[0], l[1])
	}
	k.book.LastUpdateID, k.first = d.Last, false
	if d.Time > 0 {
		k.lastTime = d.Time
	}
	if k.book.Crossed() {
		k.x.metrics.crossed.Add(1)
		k.resyncLocked("crossed book")
		return false
	}
	k.x.metrics.applied.Add(1)
	return true
}

// publishUpdatesLocked publishes, for each view, the change of its top
// N since its last message, when there is one. k.mu is held.
func (k *keeper) publishUpdatesLocked(ctx context.Context) {
	u := k.book.LastUpdateID
	for _, v := range k.views {
		if !v.synced {
			k.publishSnapshotLocked(ctx, v)
			continue
		}
		bids, asks := k.book.Bids.Top(v.n), k.book.Asks.Top(v.n)
		db := delta(k.scratch[:0], v.bids, bids, k.book.Bids.better)
		nb := len(db)
		db = delta(db, v.asks, asks, k.book.Asks.better)
		k.scratch = db[:0]
		if len(db) == 0 {
			continue // nothing changed within the top N
		}
		k.out = AppendUpdate(k.out[:0], v.lastU+1, u, db[:nb], db[nb:])
		v.bids, v.asks, v.lastU = append(v.bids[:0], bids...), append(v.asks[:0], asks...), u
		v.stateDirty = true
		k.publishLocked(ctx, hub.Message{Stream: v.key, Data: k.out, EventTime: k.lastTime * 1000})
		k.stateLocked(ctx, v, false)
	}
}

// publishSnapshotLocked publishes v's snapshot of the synced book. k.mu
// is held.
func (k *keeper) publishSnapshotLocked(ctx context.Context, v *view) {
	bids, asks := k.book.Bids.Top(v.n), k.book.Asks.Top(v.n)
	v.bids, v.asks, v.lastU = append(v.bids[:0], bids...), append(v.asks[:0], asks...), k.book.LastUpdateID
	gap := v.seq > 0 // the view was published before: a resync
	k.out = AppendSnapshot(k.out[:0], v.lastU, v.bids, v.asks, gap)
	v.synced, v.stale = true, false
	k.publishLocked(ctx, hub.Message{Stream: v.key, Data: k.out, EventTime: k.lastTime * 1000})
	k.stateLocked(ctx, v, true)
}

// staleLocked tells v's subscribers that the book is not valid now.
func (k *keeper) staleLocked(ctx context.Context, v *view, reason string) {
	if v.stale || v.seq == 0 {
		return
	}
	v.stale = true
	k.out = append(append(append(k.out[:0], `{"type":"stale","reason":`...), strconv.Quote(reason)...), '}')
	k.publishLocked(ctx, hub.Message{Stream: v.key, Data: k.out})
}

// stateLocked keeps v's top N as its stream's state in the hub when it is
// due (or now). k.mu is held.
func (k *keeper) stateLocked(ctx context.Context, v *view, now bool) {
	t := time.Now()
	if !now && t.Sub(v.stateAt) < stateEvery && k.x.cfg.StateEvery != 1 {
		return
	}
	if !v.synced {
		return
	}
	k.out = AppendSnapshot(k.out[:0], v.lastU, v.bids, v.asks, false)
	k.publishLocked(ctx, hub.Message{Stream: v.key, State: true, Data: k.out, EventTime: t.UnixMicro()})
	v.stateAt, v.stateDirty = t, false
}

// publishLocked publishes msg with the view's next number (a state or an
// error takes none).
func (k *keeper) publishLocked(ctx context.Context, msg hub.Message) {
	if v := k.views[msg.Stream]; v != nil && !msg.State && msg.Err == "" {
		v.seq++
		msg.Seq = v.seq
	}
	if err := k.x.cfg.Publisher.Publish(ctx, msg); err != nil {
		k.log.Debug("book publish", "err", err)
	}
}

// run syncs the book whenever it is asked to, until ctx ends.
func (k *keeper) run(ctx context.Context) {
	defer close(k.done)
	k.mu.Lock()
	if !k.synced && !k.syncing { // a stream's own snapshot may have come first
		k.resyncLocked("start")
	}
	k.mu.Unlock()
	tick := time.NewTicker(stateEvery)
	defer tick.Stop()
	failures := 0
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			k.tick(ctx)
			continue
		case <-k.kick:
		case <-retry:
		}
		retry = nil
		err := k.sync(ctx)
		if err == nil || ctx.Err() != nil {
			failures = 0
			continue
		}
		failures++
		wait := min(time.Second<<min(failures-1, 5), 30*time.Second)
		var until interface{ RetryAt() time.Time }
		if errors.As(err, &until) {
			wait = max(wait, time.Until(until.RetryAt()))
		}
		k.log.Warn("book snapshot", "err", err, "retry_in", wait.Round(time.Millisecond))
		k.mu.Lock()
		for _, v := range k.views {
			k.staleLocked(ctx, v, "snapshot unavailable")
		}
		k.mu.Unlock()
		k.flush(ctx)
		retry = time.After(wait)
	}
}

// tick keeps the views' states fresh and marks a slow sync stale.
func (k *keeper) tick(ctx context.Context) {
	k.mu.Lock()
	now := time.Now()
	for _, v := range k.views {
		if v.synced && (v.stateDirty || now.Sub(v.stateAt) >= stateRefresh) {
			k.stateLocked(ctx, v, true)
		}
		if k.syncing && now.Sub(k.since) > staleAfter {
			k.staleLocked(ctx, v, "resyncing")
		}
	}
	k.mu.Unlock()
	k.flush(ctx)
}

func (k *keeper) flush(ctx context.Context) {
	if err := k.x.cfg.Publisher.Flush(ctx); err != nil && !errors.Is(err, hub.ErrNotSent) {
		k.log.Debug("book flush", "err", err)
	}
}

// sync fetches a snapshot and makes the book from it and the diffs
// buffered meanwhile.
func (k *keeper) sync(ctx context.Context) error {
	k.mu.Lock()
	if k.inband {
		// No REST: the stream sends a snapshot when subscribed (again).
		resub := k.syncing && k.resub
		k.resub = false
		k.mu.Unlock()
		if resub {
			k.x.resubscribe(k.symbol)
		}
		return nil
	}
	// Binance's procedure: the diffs are buffered before the snapshot is
	// asked for, so the snapshot waits for the first of them.
	need := k.syncing && len(k.buf) > 0
	k.mu.Unlock()
	if !need {
		return nil
	}
	p := k.x.cfg.Procedure
	for range snapshotTries {
		path, q := p.SnapshotRequest(k.symbol, k.x.cfg.Depth)
		body, err := k.x.cfg.Fetch(ctx, path, q)
		k.x.metrics.snapshots.Add(1)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		s, err := p.ParseSnapshot(body)
		if err != nil {
			return err
		}
		done, err := k.adopt(ctx, s)
		if err != nil || done {
			k.flush(ctx)
			return err
		}
	}
	return fmt.Errorf("%d snapshots older than the diffs buffered", snapshotTries)
}

// adopt makes the book from snapshot s and the buffered diffs that follow
// it. It reports false, to fetch again, when s is older than the first
// buffered diff (or no diff came yet: the stream is not flowing).
func (k *keeper) adopt(ctx context.Context, s Snapshot) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.syncing {
		return true, nil
	}
	chained := k.x.cfg.Procedure.Chained()
	l := s.LastUpdateID
	// Drop what the snapshot holds already.
	i := 0
	for i < len(k.buf) && (k.buf[i].Last <= l && !chained || k.buf[i].Last < l && chained) {
		i++
	}
	rest := k.buf[i:]
	if len(rest) > 0 {
		f := rest[0]
		if !chained && f.First > l+1 || chained && f.First > l && f.Prev != l {
			k.buf = k.buf[:0] // the snapshot is older than the diffs: fetch again
			return false, nil
		}
	}
	k.book.Reset()
	for _, lv := range s.Bids {
		k.book.Set(true, lv[0], lv[1])
	}
	for _, lv := range s.Asks {
		k.book.Set(false, lv[0], lv[1])
	}
	k.book.LastUpdateID = l
	k.synced, k.first, k.syncing = true, true, false
	buffered := append([]Diff(nil), rest...)
	k.buf = k.buf[:0]
	for _, d := range buffered {
		if !k.applyLocked(d) && !k.synced {
			return true, nil // a gap in the buffer: resyncing
		}
	}
	k.syncs++
	k.x.metrics.syncs.Add(1)
	for _, v := range k.views {
		k.publishSnapshotLocked(ctx, v)
	}
	return true, nil
}

// addView starts publishing the top n as stream key.
func (k *keeper) addView(ctx context.Context, key string, n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.views[key]; ok {
		return
	}
	v := &view{key: key, n: n}
	k.views[key] = v
	if k.synced {
		k.publishSnapshotLocked(ctx, v)
	}
}

// removeView stops publishing the view of stream key and forgets its
// state; it reports whether views are left.
func (k *keeper) removeView(ctx context.Context, key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if v, ok := k.views[key]; ok {
		delete(k.views, key)
		if err := k.x.cfg.Publisher.Publish(ctx, hub.Message{Stream: v.key, State: true}); err != nil {
			k.log.Debug("book publish", "err", err)
		}
	}
	return len(k.views) > 0
}
