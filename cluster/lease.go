package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// role is what a node holds of one exchange.
type role int

const (
	// roleIdle holds nothing; a node that is not draining contends.
	roleIdle role = iota
	// roleOwner holds the lease.
	roleOwner
	// roleSuccessor holds next during another node's handover, and
	// carries already.
	roleSuccessor
)

// exchange runs the lease of one exchange for a [Node]: contend while
// idle, renew while owner or successor, hand over on request. Its run
// goroutine owns every field but req and owned; it never calls Local
// itself but tells the carrier how long its claim is valid.
type exchange struct {
	n    *Node
	name string
	keys []string // the script keys, see exchangeKeys.script
	log  *slog.Logger
	// req takes [Node.Handover]'s request.
	req chan *handoverReq
	// owned is what [Node.Owned] reports: set while this node owns the
	// lease.
	owned atomic.Pointer[ownedLease]
	// carrying is the fencing token while this node carries the exchange
	// (as owner or successor), else 0: the exchange's entry of
	// Config.Tokens; see [Node.Token].
	carrying *atomic.Int64
	// succeeding is set while this node carries the exchange as the
	// successor of a handover (Config.Tokens' Successor).
	succeeding *atomic.Bool

	role  role
	value string // "<node>|<token>" while not idle
	token int64
	since time.Time
	// until is when the claim ends unless renewed: the start of the last
	// successful renewal plus LeaseTTL, on the monotonic clock. Redis
	// expires the key no sooner, since it got the command later.
	until time.Time
	// lastTry is the start of the last renewal attempt.
	lastTry time.Time
	// floor is the highest fencing token seen for the exchange.
	floor int64
	// failing is set while contending fails, to log once.
	failing bool
	// ho is the handover in progress, if any.
	ho *handoff
}

// ownedLease is a lease and the end of its validity.
type ownedLease struct {
	lease Lease
	until time.Time
}

// handoverReq asks an exchange's goroutine to hand its lease over.
type handoverReq struct {
	ctx  context.Context
	done chan error // buffered: one answer
}

// handoff is the state of a handover in progress.
type handoff struct {
	ctx      context.Context
	deadline time.Time // stop waiting for a successor
	waiters  []chan error
	// announced is set once handover is written in Redis.
	announced bool
	// nextSeen is when a successor was first seen.
	nextSeen time.Time
}

// newExchange returns the lease state of exchange name for n.
func newExchange(n *Node, name string) *exchange {
	return &exchange{
		n:    n,
		name: name,
		keys: n.keys.exchange(name).script(),
		log:  n.log.With("exchange", name),
		req:  make(chan *handoverReq),
		// New checked that Config.Tokens has every exchange.
		carrying:   n.tokens.find(name),
		succeeding: n.tokens.findSuccessor(name),
	}
}

// run drives the lease until ctx ends, then gives it up (see shutdown).
func (e *exchange) run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		var hoDone <-chan struct{}
		if e.ho != nil {
			hoDone = e.ho.ctx.Done()
		}
		select {
		case <-ctx.Done():
			e.shutdown(ctx)
			return
		case req := <-e.req:
			e.beginHandover(ctx, req)
		case <-hoDone:
		case <-t.C:
		}
		e.step(ctx)
		t.Reset(e.wait())
	}
}

// wait returns how long run sleeps before the next step.
func (e *exchange) wait() time.Duration {
	cfg := &e.n.cfg
	if e.role == roleIdle {
		if e.n.draining.Load() {
			return time.Hour // only a request or the end of Run
		}
		return cfg.PollInterval + rand.N(cfg.PollInterval/5+1)
	}
	d := time.Until(e.lastTry.Add(cfg.RenewInterval))
	if ho := e.ho; ho != nil {
		switch {
		case ho.nextSeen.IsZero():
			d = min(d, cfg.PollInterval, time.Until(ho.deadline))
		default:
			d = min(d, time.Until(ho.nextSeen.Add(cfg.HandoverOverlap)))
		}
	}
	return max(d, time.Millisecond)
}

// step does what is due for the current role.
func (e *exchange) step(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	renewDue := !time.Now().Before(e.lastTry.Add(e.n.cfg.RenewInterval))
	switch e.role {
	case roleIdle:
		if !e.n.draining.Load() {
			e.contest(ctx)
		}
	case roleSuccessor:
		if renewDue {
			e.renewNext(ctx)
		}
	case roleOwner:
		if renewDue {
			e.renewLease(ctx)
		}
		if e.role == roleOwner && e.ho != nil {
			e.advanceHandover(ctx)
		}
	}
}

// opCtx bounds one Redis call.
func (e *exchange) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.n.opTimeout)
}

// ttlMillis is LeaseTTL in milliseconds, the scripts' TTL argument.
func (e *exchange) ttlMillis() int64 { return e.n.cfg.LeaseTTL.Milliseconds() }

// contest tries to take the free lease, or to become the successor of a
// handover, in one script call.
func (e *exchange) contest(ctx context.Context) {
	start := time.Now()
	octx, cancel := e.opCtx(ctx)
	defer cancel()
	res, err := contestScript.Run(octx, e.n.cfg.Client, e.keys, e.n.cfg.NodeID, e.ttlMillis(), e.floor).Slice()
	if err != nil {
		if !e.failing && ctx.Err() == nil {
			e.log.Debug("contend for the lease", "err", err)
		}
		e.failing = true
		return
	}
	e.failing = false
	code, token, current, err := parseContest(res)
	if err != nil {
		e.log.Error("contend for the lease", "err", err)
		return
	}
	switch code {
	case 1:
		e.claim(roleOwner, token, start)
	case 2:
		e.claim(roleSuccessor, token, start)
	default:
		if _, t, ok := parseLeaseValue(current); ok {
			e.floor = max(e.floor, t)
		}
	}
}

// parseContest decodes contestScript's reply {code, token, value}.
func parseContest(res []any) (code, token int64, value string, err error) {
	if len(res) != 3 {
		return 0, 0, "", fmt.Errorf("contest script replied %v", res)
	}
	code, ok1 := res[0].(int64)
	token, ok2 := res[1].(int64)
	value, ok3 := res[2].(string)
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, "", fmt.Errorf("contest script replied %v", res)
	}
	return code, token, value, nil
}

// claim starts holding the exchange as owner or successor with token, the
// claim having been made at start, and starts carrying at once.
func (e *exchange) claim(r role, token int64, start time.Time) {
	e.role, e.token = r, token
	e.succeeding.Store(r == roleSuccessor)
	e.carrying.Store(token)
	e.value = leaseValue(e.n.cfg.NodeID, token)
	e.floor = max(e.floor, token)
	e.since = e.n.cfg.Now()
	e.lastTry = start
	e.setUntil(start.Add(e.n.cfg.LeaseTTL))
	if r == roleOwner {
		e.log.Info("took the exchange's lease", "token", token)
	} else {
		e.log.Info("claimed the exchange as handover successor", "token", token)
	}
	e.n.kickReader()
}

// setUntil moves the end of the claim and publishes it.
func (e *exchange) setUntil(until time.Time) {
	e.until = until
	e.n.carrier.setUntil(e.name, until)
	if e.role == roleOwner {
		e.owned.Store(&ownedLease{
			lease: Lease{Exchange: e.name, Token: e.token, Since: e.since},
			until: until,
		})
	}
}

// renewLease extends the lease, or steps down if it is no longer ours or
// could not be renewed before it expired.
func (e *exchange) renewLease(ctx context.Context) {
	start := time.Now()
	e.lastTry = start
	octx, cancel := e.opCtx(ctx)
	defer cancel()
	ok, err := renewScript.Run(octx, e.n.cfg.Client, e.keys, e.value, e.ttlMillis()).Bool()
	switch {
	case ctx.Err() != nil:
	case err != nil:
		if !time.Now().Before(e.until) {
			e.stepDown("could not renew the lease before it expired", err)
		}
	case !ok:
		e.stepDown("lease lost: it expired or another node holds it", nil)
	default:
		e.setUntil(start.Add(e.n.cfg.LeaseTTL))
	}
}

// renewNext extends this node's claim as handover successor, and takes
// over renewing the lease once it names this node.
func (e *exchange) renewNext(ctx context.Context) {
	start := time.Now()
	e.lastTry = start
	octx, cancel := e.opCtx(ctx)
	defer cancel()
	res, err := renewNextScript.Run(octx, e.n.cfg.Client, e.keys, e.value, e.ttlMillis()).Int64()
	switch {
	case ctx.Err() != nil:
	case err != nil:
		if !time.Now().Before(e.until) {
			e.stepDown("could not renew the successor claim before it expired", err)
		}
	case res == 0:
		e.stepDown("successor claim lost", nil)
	case res == 2:
		e.role = roleOwner
		e.succeeding.Store(false)
		e.since = e.n.cfg.Now()
		e.setUntil(start.Add(e.n.cfg.LeaseTTL))
		e.log.Info("handover complete: took the exchange's lease", "token", e.token)
	default:
		e.setUntil(start.Add(e.n.cfg.LeaseTTL))
	}
}

// stepDown stops carrying at once and holds nothing any more, for reason.
// A handover in progress ends: there is nothing left to hand over.
func (e *exchange) stepDown(reason string, err error) {
	e.becomeIdle()
	if err != nil {
		e.log.Warn("stopped carrying the exchange: "+reason, "err", err)
	} else {
		e.log.Warn("stopped carrying the exchange: " + reason)
	}
	e.answer(nil)
}

// becomeIdle forgets the claim and stops carrying (last, so that a panic
// in Local leaves the lease state consistent; the watchdog retries).
func (e *exchange) becomeIdle() {
	e.owned.Store(nil)
	e.carrying.Store(0)
	e.succeeding.Store(false)
	e.role, e.value, e.token, e.until = roleIdle, "", 0, time.Time{}
	e.n.carrier.setUntil(e.name, time.Time{})
}

// answer ends the handover in progress, if any, with err.
func (e *exchange) answer(err error) {
	if e.ho == nil {
		return
	}
	for _, w := range e.ho.waiters {
		w <- err
	}
	e.ho = nil
}

// beginHandover starts handing the lease over on req. Without a lease
// there is nothing to hand over; a successor claim is given up.
func (e *exchange) beginHandover(ctx context.Context, req *handoverReq) {
	switch e.role {
	case roleOwner:
		if e.ho != nil {
			e.ho.waiters = append(e.ho.waiters, req.done)
			return
		}
		deadline := time.Now().Add(max(minHandoverWait, 4*e.n.cfg.PollInterval))
		if d, ok := req.ctx.Deadline(); ok {
			// Give up waiting a quarter of the time left before ctx ends,
			// so that the release is done by then.
			if early := d.Add(-time.Until(d) / 4); early.Before(deadline) {
				deadline = early
			}
		}
		e.ho = &handoff{ctx: req.ctx, deadline: deadline, waiters: []chan error{req.done}}
	case roleSuccessor:
		req.done <- e.release(ctx, "draining: gave up the successor claim")
	default:
		req.done <- nil
	}
}

// advanceHandover moves the handover in progress on: announce it, wait
// for a successor, overlap, then pass the lease on.
func (e *exchange) advanceHandover(ctx context.Context) {
	ho := e.ho
	cfg := &e.n.cfg
	giveUp := ho.ctx.Err() != nil || !time.Now().Before(ho.deadline)
	if !ho.announced {
		if giveUp {
			e.answer(e.release(ctx, "handover: no successor"))
			return
		}
		octx, cancel := e.opCtx(ctx)
		ok, err := announceScript.Run(octx, cfg.Client, e.keys, e.value, (minHandoverWait + cfg.HandoverOverlap + cfg.LeaseTTL).Milliseconds()).Bool()
		cancel()
		switch {
		case err != nil:
			return // retried on the next step
		case !ok:
			e.stepDown("lease lost before the handover", nil)
			return
		}
		ho.announced = true
		e.log.Info("handing the exchange over")
	}
	if ho.nextSeen.IsZero() {
		if giveUp {
			e.answer(e.release(ctx, "handover: no successor"))
			return
		}
		octx, cancel := e.opCtx(ctx)
		n, err := cfg.Client.Exists(octx, e.keys[1]).Result()
		cancel()
		if err != nil || n == 0 {
			return
		}
		ho.nextSeen = time.Now()
	}
	if ho.ctx.Err() != nil || !time.Now().Before(ho.nextSeen.Add(cfg.HandoverOverlap)) {
		e.answer(e.release(ctx, "handover"))
	}
}

// release stops carrying at once, then gives up in Redis whatever this
// node holds of the exchange, passing the lease to a successor that
// claimed it. It returns an error only if Redis could not be told; the
// lease then expires by itself.
func (e *exchange) release(ctx context.Context, why string) error {
	value := e.value
	e.becomeIdle()
	octx, cancel := e.opCtx(ctx)
	defer cancel()
	res, err := releaseScript.Run(octx, e.n.cfg.Client, e.keys, value, e.ttlMillis()).Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("release script replied %v", res)
	}
	if err != nil {
		err = fmt.Errorf("cluster: release %s: %w", e.name, err)
		e.log.Warn(why+": stopped carrying; the lease expires by itself", "err", err)
		return err
	}
	code, _ := res[0].(int64)
	successor, _ := res[1].(string)
	switch code {
	case 1:
		e.log.Info(why+": stopped carrying, passed the lease on", "successor", successor)
	case 2:
		e.log.Info(why + ": stopped carrying, released the lease")
	case 3:
		e.log.Info(why + ": stopped carrying, gave up the successor claim")
	default:
		e.log.Info(why + ": stopped carrying; the lease was not ours any more")
	}
	return nil
}

// shutdown gives up what this node holds when Run ends, unless crashing.
func (e *exchange) shutdown(ctx context.Context) {
	if e.n.crash.Load() {
		return
	}
	if e.role == roleIdle {
		e.answer(nil)
		return
	}
	e.answer(e.release(context.WithoutCancel(ctx), "shutting down"))
}
