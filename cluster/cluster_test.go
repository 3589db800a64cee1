package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/redis/go-redis/v9"
)

// TestOwnershipAndUnion runs three nodes on a standalone Redis and on a
// 3-master Redis Cluster: one node owns each exchange and carries what
// any node wants, streams wanted only on non-owners included.
func TestOwnershipAndUnion(t *testing.T) {
	tests := []struct {
		name      string
		newClient func(t *testing.T) func() redis.UniversalClient
	}{
		{"standalone", func(t *testing.T) func() redis.UniversalClient {
			return standalone(redistest.Start(t).Addr())
		}},
		{"cluster", func(t *testing.T) func() redis.UniversalClient {
			addrs := redistest.StartCluster(t, 3).Addrs()
			return func() redis.UniversalClient {
				return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			newClient := tc.newClient(t)
			var nodes []*testNode
			for i := range 3 {
				nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i), newClient))
			}
			s := startSampler(nodes, testTTL)
			defer s.stop(t)

			nodes[0].want("binance:a@trade", "binance:shared@trade", "binance-futures:x@trade")
			nodes[1].want("binance:b@trade", "binance:shared@trade")
			nodes[2].want("binance-futures:y@trade")
			nodes[2].pin("binance:pinned@trade")
			owners := waitSteady(t, steadyBound, nodes)

			// Streams wanted only on a non-owner are carried.
			for _, ex := range testExchanges {
				for _, tn := range nodes {
					if tn == owners[ex] {
						continue
					}
					k := ex + ":only-" + tn.id + "@trade"
					tn.want(k)
					waitfor.Cond(t, 3*testPoll+2*testBeat, func() error {
						if !owners[ex].local.has(k) {
							return fmt.Errorf("owner %s does not carry %s wanted on %s", owners[ex].id, k, tn.id)
						}
						return nil
					})
				}
			}
			waitSteady(t, steadyBound, nodes)

			// A stream leaves the owner once no node wants it any more,
			// and not before.
			nodes[0].unwant("binance:shared@trade")
			time.Sleep(3 * testPoll)
			if !owners[testExchange].local.has("binance:shared@trade") {
				t.Fatal("binance:shared@trade left the owner while n1 still wants it")
			}
			nodes[1].unwant("binance:shared@trade")
			nodes[2].unpin("binance:pinned@trade")
			waitfor.Cond(t, 3*testPoll+2*testBeat, func() error {
				if got := owners[testExchange].local.carrying(testExchange); slices.Contains(got, "binance:shared@trade") || slices.Contains(got, "binance:pinned@trade") {
					return fmt.Errorf("owner still carries %v", got)
				}
				return nil
			})
			if got := waitSteady(t, steadyBound, nodes); got[testExchange] != owners[testExchange] || got[testFutures] != owners[testFutures] {
				t.Errorf("owners changed without cause: %v -> %v", owners, got)
			}

			for _, tn := range nodes {
				if err := tn.n.Ready(); err != nil {
					t.Errorf("node %s: Ready() = %v; want nil", tn.id, err)
				}
			}
			infos, err := nodes[0].n.Nodes(t.Context())
			if err != nil {
				t.Fatalf("Nodes() = %v", err)
			}
			if len(infos) != len(nodes) {
				t.Fatalf("Nodes() = %+v; want %d nodes", infos, len(nodes))
			}
			for i, info := range infos {
				tn := nodes[i]
				tn.mu.Lock()
				wantDemand := int64(len(tn.demand))
				tn.mu.Unlock()
				var wantOwns []string
				tokens := map[string]uint64{}
				for _, l := range tn.n.Owned() {
					wantOwns = append(wantOwns, l.Exchange)
					tokens[l.Exchange] = uint64(l.Token)
				}
				// Token is the owned lease's, and 0 where the node does
				// not carry.
				for _, ex := range testExchanges {
					if got := tn.n.Token(ex); got != tokens[ex] {
						t.Errorf("node %s: Token(%s) = %d; want %d", tn.id, ex, got, tokens[ex])
					}
				}
				if info.ID != tn.id || info.Demand != wantDemand || !slices.Equal(info.Owns, wantOwns) {
					t.Errorf("Nodes()[%d] = %+v; want ID %s, Demand %d, Owns %v", i, info, tn.id, wantDemand, wantOwns)
				}
			}
		})
	}
}

// TestFailover crashes the owner of an exchange without any cleanup:
// another node takes the lease when it expires and carries the union.
func TestFailover(t *testing.T) {
	newClient := standalone(redistest.Start(t).Addr())
	var nodes []*testNode
	for i := range 3 {
		nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i), newClient))
	}
	for i, tn := range nodes {
		tn.want(fmt.Sprintf("binance:s%d@trade", i), "binance:shared@trade", fmt.Sprintf("binance-futures:f%d@trade", i))
	}
	owners := waitSteady(t, steadyBound, nodes)
	old := owners[testExchange]
	oldTokens := map[string]int64{}
	for _, ex := range testExchanges {
		oldTokens[ex], _ = owners[ex].owns(ex)
	}
	s := startSampler(nodes, testTTL)
	defer s.stop(t)

	killed := time.Now()
	old.crash(t)
	t.Logf("crashed %s, the owner of %s", old.id, testExchange)

	bound := testTTL + 3*testPoll
	newOwners := waitSteady(t, bound, nodes)
	t.Logf("steady again %v after the crash", time.Since(killed))
	if len(old.local.carrying("")) == 0 {
		t.Error("the crashed node's Local was emptied: the crash ran cleanup")
	}
	for _, ex := range testExchanges {
		tok, _ := newOwners[ex].owns(ex)
		if owners[ex] == old && tok <= oldTokens[ex] {
			t.Errorf("token of %s after failover = %d; want > %d", ex, tok, oldTokens[ex])
		}
	}
}

// TestHandover hands the exchanges over make before break: the successor
// carries before the old owner stops, for about HandoverOverlap, and the
// drained node never takes a lease again.
func TestHandover(t *testing.T) {
	newClient := standalone(redistest.Start(t).Addr())
	a := startNode(t, "a", newClient)
	a.want("binance:a@trade")
	waitfor.Cond(t, steadyBound, func() error {
		if len(a.n.Owned()) != len(testExchanges) {
			return fmt.Errorf("a owns %v; want both exchanges", a.n.Owned())
		}
		return nil
	})
	b, c := startNode(t, "b", newClient), startNode(t, "c", newClient)
	nodes := []*testNode{a, b, c}
	const watched = "binance:watched@trade" // wanted on b only
	b.want(watched, "binance-futures:b@trade")
	c.want("binance:c@trade")
	owners := waitSteady(t, steadyBound, nodes)
	if owners[testExchange] != a || owners[testFutures] != a {
		t.Fatalf("owners = %v; want a for both", owners)
	}
	oldToken, _ := a.owns(testExchange)

	// Watch the handover of one stream every sampleEvery.
	type sample struct {
		at       time.Time
		old, new bool
		token    uint64 // the successor's, while it carries
		succ     bool   // b or c says it carries as the successor
	}
	samples := make(chan []sample, 1)
	stopWatch := make(chan struct{})
	go func() {
		var ss []sample
		for {
			ss = append(ss, sample{time.Now(), a.local.has(watched), b.local.has(watched) || c.local.has(watched),
				max(b.n.Token(testExchange), c.n.Token(testExchange)),
				b.n.tokens.Successor(testExchange) || c.n.tokens.Successor(testExchange)})
			select {
			case <-stopWatch:
				samples <- ss
				return
			case <-time.After(sampleEvery):
			}
		}
	}()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := a.n.Handover(ctx); err != nil {
		t.Fatalf("Handover() = %v", err)
	}
	took := time.Since(start)
	// Keep watching: the successor must keep carrying once the lease is
	// passed to it.
	time.Sleep(2 * testTTL)
	close(stopWatch)
	ss := <-samples
	t.Logf("Handover took %v", took)
	if bound := testOverlap + 3*testPoll + testTTL; took > bound {
		t.Errorf("Handover took %v; want at most %v", took, bound)
	}

	var newStart, oldStop time.Time
	var claimed uint64 // the token the successor claimed with
	for _, s := range ss {
		if !s.old && !s.new {
			t.Fatalf("at %v nobody carried %s: not make before break", s.at.Sub(start), watched)
		}
		if s.new && newStart.IsZero() {
			newStart = s.at
		}
		if claimed == 0 {
			claimed = s.token
		}
		if !s.old && oldStop.IsZero() {
			oldStop = s.at
		}
	}
	if newStart.IsZero() || oldStop.IsZero() {
		t.Fatalf("successor started at %v, old owner stopped at %v; want both", newStart, oldStop)
	}
	// During the overlap the new node says it is the successor (its
	// publisher holds messages back then); once it owns, it does not.
	if !slices.ContainsFunc(ss, func(s sample) bool { return s.old && s.new && s.succ }) {
		t.Error("no sample of the overlap had the new node's Tokens say Successor")
	}
	if last := ss[len(ss)-1]; last.succ || a.n.tokens.Successor(testExchange) {
		t.Errorf("after the handover: Successor is still set (b or c %v, a %v); want it cleared", last.succ, a.n.tokens.Successor(testExchange))
	}
	overlap := oldStop.Sub(newStart)
	t.Logf("sampled overlap %v", overlap)
	if overlap <= 0 || overlap < testOverlap/2 || overlap > testOverlap+testPoll+3*sampleEvery {
		t.Errorf("sampled overlap = %v; want about %v (more than 0, at most %v)", overlap, testOverlap, testOverlap+testPoll+3*sampleEvery)
	}

	// Afterwards exactly one node carries; a owns nothing and carries
	// nothing, yet its demand is still carried.
	if len(a.n.Owned()) != 0 || len(a.local.carrying("")) != 0 {
		t.Fatalf("after Handover a owns %v and carries %v; want nothing", a.n.Owned(), a.local.carrying(""))
	}
	s := startSampler(nodes, testTTL)
	defer s.stop(t)
	s.ban(a)
	owners = waitSteady(t, steadyBound, nodes)
	if !owners[testExchange].local.has("binance:a@trade") {
		t.Error("the drained node's demand is not carried any more")
	}
	// The successor kept the token of its claim, newer than the old
	// owner's: no node had to take the lease afresh.
	for _, ex := range testExchanges {
		if tok, _ := owners[ex].owns(ex); tok <= oldToken {
			t.Errorf("token of %s after handover = %d; want more than %d", ex, tok, oldToken)
		}
	}
	if tok, _ := owners[testExchange].owns(testExchange); uint64(tok) != claimed {
		t.Errorf("token of %s after handover = %d; want %d, the successor's claim", testExchange, tok, claimed)
	}

	// Crash whoever owns now: the leases go to the other node. Crash that
	// one too: with only the drained node left, nobody may own anything.
	for range 2 {
		for _, tn := range []*testNode{b, c} {
			if !tn.dead.Load() && len(tn.n.Owned()) > 0 {
				tn.crash(t)
			}
		}
		if len(live(nodes)) == 1 {
			break
		}
		owners = waitSteady(t, testTTL+3*testPoll+steadyBound, nodes)
		for ex, o := range owners {
			if o == a {
				t.Fatalf("drained node a took the lease of %s again", ex)
			}
		}
	}
	// The last leases expire after testTTL; give a many polls after that.
	time.Sleep(testTTL + 10*testPoll)
	if got := a.n.Owned(); len(got) != 0 {
		t.Errorf("drained node a, the last one alive, owns %v; want nothing", got)
	}
	if err := a.n.Handover(ctx); err != nil {
		t.Errorf("second Handover() = %v; want nil", err)
	}
}

// TestFencingTokens moves the lease of an exchange through every kind of
// change of owner and checks that the tokens, seen by sampling, strictly
// increase, and that a token names one owner only.
func TestFencingTokens(t *testing.T) {
	newClient := standalone(redistest.Start(t).Addr())
	var nodes []*testNode
	for i := range 3 {
		nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i), newClient))
		nodes[i].want("binance:x@trade")
	}
	type seen struct {
		token int64
		owner string
	}
	var order []seen
	byToken := map[int64]string{}
	record := func() error {
		for _, tn := range live(nodes) {
			tok, ok := tn.owns(testExchange)
			if !ok {
				continue
			}
			if o, dup := byToken[tok]; dup {
				if o != tn.id {
					return fmt.Errorf("token %d held by %s and %s", tok, o, tn.id)
				}
				continue
			}
			byToken[tok] = tn.id
			order = append(order, seen{tok, tn.id})
		}
		return nil
	}
	// waitChange records until the owner is not prev any more.
	waitChange := func(prev *testNode) *testNode {
		t.Helper()
		var owner *testNode
		waitfor.Cond(t, testTTL+steadyBound, func() error {
			if err := record(); err != nil {
				t.Fatal(err)
			}
			owners, err := steady(nodes)
			if err != nil {
				return err
			}
			if owners[testExchange] == prev {
				return fmt.Errorf("%s still owns %s", prev.id, testExchange)
			}
			owner = owners[testExchange]
			return nil
		})
		return owner
	}

	owner := waitChange(nil)
	// Handover.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	go func() { _ = owner.n.Handover(ctx) }()
	owner = waitChange(owner)
	// Crash.
	owner.crash(t)
	owner = waitChange(owner)
	// Graceful stop: the lease is released and taken by a new node.
	nodes = append(nodes, startNode(t, "n3", newClient))
	nodes[3].want("binance:x@trade")
	owner.stop(t)
	owner = waitChange(owner)
	if err := record(); err != nil {
		t.Fatal(err)
	}

	t.Logf("owners in order: %+v", order)
	if len(order) < 4 {
		t.Fatalf("saw %d owners; want at least 4", len(order))
	}
	for i := 1; i < len(order); i++ {
		if order[i].token <= order[i-1].token {
			t.Errorf("token %d of %s after %d of %s; want increasing", order[i].token, order[i].owner, order[i-1].token, order[i-1].owner)
		}
	}
}

// TestRedisRestart kills Redis: the nodes report it, the owners stop
// carrying within about LeaseTTL, and once Redis is back (empty) an owner
// carries the union again without help, with a higher token.
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	newClient := standalone(srv.Addr())
	var nodes []*testNode
	for i := range 3 {
		nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i), newClient))
		nodes[i].want(fmt.Sprintf("binance:s%d@trade", i), fmt.Sprintf("binance-futures:f%d@trade", i))
	}
	owners := waitSteady(t, steadyBound, nodes)
	oldToken, _ := owners[testExchange].owns(testExchange)
	s := startSampler(nodes, testTTL)
	defer s.stop(t)

	killed := time.Now()
	srv.Kill()
	waitfor.Cond(t, testTTL+testPoll, func() error {
		for _, tn := range nodes {
			if len(tn.local.carrying("")) > 0 {
				return fmt.Errorf("%s still carries %v", tn.id, tn.local.carrying(""))
			}
		}
		return nil
	})
	t.Logf("all stopped carrying %v after Redis died", time.Since(killed))
	waitfor.Cond(t, 2*time.Second, func() error {
		for _, tn := range nodes {
			if err := errContains(tn.n.Ready(), "cluster: redis: "); err != nil {
				return fmt.Errorf("node %s: Ready: %w", tn.id, err)
			}
		}
		return nil
	})
	// Demand changes while Redis is down only touch memory, and are not
	// lost.
	begin := time.Now()
	for i := range 1000 {
		nodes[1].want(fmt.Sprintf("binance:down%d@trade", i))
	}
	nodes[1].unwant("binance:s1@trade")
	if d := time.Since(begin); d > 100*time.Millisecond {
		t.Errorf("1001 Want/Unwant calls with Redis down took %v", d)
	}
	time.Sleep(testTTL)
	for _, tn := range nodes {
		if got := tn.local.carrying(""); len(got) > 0 || len(tn.n.Owned()) > 0 {
			t.Errorf("with Redis down %s carries %d streams, owns %v", tn.id, len(got), tn.n.Owned())
		}
	}

	srv.Restart(t)
	restarted := time.Now()
	owners = waitSteady(t, 5*time.Second, nodes)
	t.Logf("steady %v after Redis restarted", time.Since(restarted))
	if tok, _ := owners[testExchange].owns(testExchange); tok <= oldToken {
		t.Errorf("token after the Redis restart = %d; want > %d", tok, oldToken)
	}
	waitfor.Cond(t, 3*testBeat, func() error {
		for _, tn := range nodes {
			if err := tn.n.Ready(); err != nil {
				return fmt.Errorf("node %s: Ready() = %w", tn.id, err)
			}
		}
		return nil
	})
}

// TestLeaseLost overwrites the lease of an exchange in Redis, as if the
// owner had paused beyond its TTL and another node had taken it: the owner
// stops carrying at its next renewal, nobody carries while the intruder
// holds the lease, and the next owner's token exceeds the intruder's.
func TestLeaseLost(t *testing.T) {
	srv := redistest.Start(t)
	newClient := standalone(srv.Addr())
	var nodes []*testNode
	for i := range 3 {
		nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i), newClient))
		nodes[i].want(fmt.Sprintf("binance:s%d@trade", i))
	}
	owner := waitSteady(t, steadyBound, nodes)[testExchange]
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	lease := newKeyspace(defaultPrefix).exchange(testExchange).lease
	const intruderToken = 999
	if err := rc.Set(t.Context(), lease, leaseValue("intruder", intruderToken), 2*testTTL).Err(); err != nil {
		t.Fatal(err)
	}
	stolen := time.Now()
	waitfor.Cond(t, 2*testTTL/4+testPoll, func() error {
		if got := owner.local.carrying(testExchange); len(got) > 0 {
			return fmt.Errorf("%s still carries %v after losing the lease", owner.id, got)
		}
		return nil
	})
	t.Logf("%s stopped carrying %v after the lease was taken", owner.id, time.Since(stolen))
	for time.Since(stolen) < testTTL {
		for _, tn := range nodes {
			if _, ok := tn.owns(testExchange); ok || len(tn.local.carrying(testExchange)) > 0 {
				t.Fatalf("%s owns or carries %s while the intruder holds the lease", tn.id, testExchange)
			}
		}
		time.Sleep(sampleEvery)
	}
	if err := rc.Del(t.Context(), lease).Err(); err != nil {
		t.Fatal(err)
	}
	owners := waitSteady(t, steadyBound, nodes)
	if tok, _ := owners[testExchange].owns(testExchange); tok <= intruderToken {
		t.Errorf("token after the intruder = %d; want > %d", tok, intruderToken)
	}
}

// TestHandoverAlone checks Handover without a successor: the node waits
// until shortly before ctx's deadline, then stops carrying and releases;
// and a node drained before Run never takes a lease.
func TestHandoverAlone(t *testing.T) {
	srv := redistest.Start(t)
	newClient := standalone(srv.Addr())
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	leases := make([]string, len(testExchanges))
	for i, ex := range testExchanges {
		leases[i] = newKeyspace(defaultPrefix).exchange(ex).lease
	}

	a := startNode(t, "a", newClient)
	a.want("binance:a@trade")
	waitSteady(t, steadyBound, []*testNode{a})
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	if err := a.n.Handover(ctx); err != nil {
		t.Fatalf("Handover() = %v; want nil", err)
	}
	if d := time.Since(start); d < 500*time.Millisecond || d > time.Second {
		t.Errorf("Handover took %v; want about 750ms, 3/4 of ctx's timeout", d)
	}
	if got, carried := a.n.Owned(), a.local.carrying(""); len(got) > 0 || len(carried) > 0 {
		t.Errorf("after Handover a owns %v and carries %v; want nothing", got, carried)
	}
	if n, err := rc.Exists(t.Context(), leases...).Result(); err != nil || n != 0 {
		t.Errorf("EXISTS %v = %d, %v; want 0: the leases are released", leases, n, err)
	}

	// Drained before Run: it registers demand but contends for nothing.
	client := newClient()
	defer client.Close()
	b, err := New(testConfig(t, "b", client, newFakeLocal()))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Handover(t.Context()); err != nil {
		t.Fatalf("Handover() before Run = %v; want nil", err)
	}
	bctx, bcancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(bctx) }()
	b.Want([]string{"binance:b@trade"})
	time.Sleep(testTTL)
	if got := b.Owned(); len(got) > 0 {
		t.Errorf("node drained before Run owns %v", got)
	}
	if n, err := rc.Exists(t.Context(), leases...).Result(); err != nil || n != 0 {
		t.Errorf("EXISTS %v = %d, %v; want 0", leases, n, err)
	}
	if n, err := rc.SCard(t.Context(), newKeyspace(defaultPrefix).demand("b")).Result(); err != nil || n != 1 {
		t.Errorf("SCARD of b's demand = %d, %v; want 1", n, err)
	}
	bcancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// TestFencingAfterDataLoss empties Redis (FLUSHALL, as a restart without
// persistence or a failover to a lagging replica would) while an owner
// holds the lease under a token that receivers have seen, and lets a node
// that never saw a token take the lease. Receivers drop every message whose
// token is below the highest they have seen, so the new owner's token must
// exceed the old one: else every existing subscriber starves.
func TestFencingAfterDataLoss(t *testing.T) {
	srv := redistest.Start(t)
	newClient := standalone(srv.Addr())
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	// The lease has changed hands many times before.
	for _, ex := range testExchanges {
		if err := rc.Set(t.Context(), newKeyspace(defaultPrefix).exchange(ex).fence, 1000, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	a := startNode(t, "a", newClient)
	a.want("binance:a@trade")
	waitSteady(t, steadyBound, []*testNode{a})
	// b only receives: its clients' demand is registered, but it drains, so
	// it never contends (its floor would save the tokens otherwise).
	b := startNode(t, "b", newClient)
	b.want("binance:b@trade")
	if err := b.n.Handover(t.Context()); err != nil {
		t.Fatal(err)
	}
	owners := waitSteady(t, steadyBound, []*testNode{a, b})
	seen := map[string]int64{} // the origin receivers hold, by exchange
	for _, ex := range testExchanges {
		seen[ex], _ = owners[ex].owns(ex)
	}

	// Redis loses everything and the owner is gone with it; a node started
	// meanwhile, with an empty floor, takes the leases.
	a.crash(t)
	if err := rc.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	c := startNode(t, "c", newClient)
	c.want("binance:c@trade")
	owners = waitSteady(t, steadyBound, []*testNode{a, b, c})
	for _, ex := range testExchanges {
		tok, _ := owners[ex].owns(ex)
		t.Logf("%s: token %d before the data loss, %d after", ex, seen[ex], tok)
		if tok <= seen[ex] {
			t.Errorf("%s: new owner %s took token %d after receivers saw %d: they would drop all its messages", ex, owners[ex].id, tok, seen[ex])
		}
		// Redis holds the same token, digit for digit.
		keys := newKeyspace(defaultPrefix).exchange(ex)
		lease, _ := rc.Get(t.Context(), keys.lease).Result()
		fence, _ := rc.Get(t.Context(), keys.fence).Int64()
		if want := leaseValue(owners[ex].id, tok); lease != want || fence != tok {
			t.Errorf("%s: lease %q and fence %d in Redis; want %q and %d", ex, lease, fence, want, tok)
		}
	}
}

// TestClockSkew runs nodes whose wall clocks are 5s behind and 5s ahead
// of the others: membership must not depend on them, so the owner carries
// every node's demand, steadily.
func TestClockSkew(t *testing.T) {
	newClient := standalone(redistest.Start(t).Addr())
	// Heartbeats at the default pace: liveness then allows 1.5s of delay,
	// far less than the skew, and scheduling delays cannot flap it.
	const beat = defaultHeartbeatInterval
	slow := func(skew time.Duration) func(*Config) {
		return func(cfg *Config) {
			cfg.HeartbeatInterval = beat
			if skew != 0 {
				cfg.Now = func() time.Time { return time.Now().Add(skew) }
			}
		}
	}
	var nodes []*testNode
	for _, n := range []struct {
		id   string
		skew time.Duration
	}{{"on-time", 0}, {"behind", -5 * time.Second}, {"ahead", 5 * time.Second}} {
		tn := startNodeWith(t, n.id, newClient, slow(n.skew))
		tn.want("binance:" + n.id + "@trade")
		nodes = append(nodes, tn)
	}
	waitSteady(t, steadyBound+2*liveBeats*beat, nodes)
	// Stay steady for several liveness windows: no node is left out, nor
	// evicts the others.
	for end := time.Now().Add(2 * liveBeats * beat); time.Now().Before(end); time.Sleep(sampleEvery) {
		if _, err := steady(nodes); err != nil {
			t.Fatalf("not steady with skewed clocks: %v", err)
		}
	}
	infos, err := nodes[0].n.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(nodes) {
		t.Errorf("Nodes() = %+v; want all %d nodes", infos, len(nodes))
	}
}

// TestHeartbeatRemovedLogged removes a node from the registry behind its
// back, as a node whose heartbeats are late would be: the node logs it at
// its next heartbeat and is back in the registry.
func TestHeartbeatRemovedLogged(t *testing.T) {
	srv := redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	logs := &logRecorder{}
	a := startNodeWith(t, "a", standalone(srv.Addr()), func(cfg *Config) {
		cfg.Logger = slog.New(logs)
	})
	waitfor.Cond(t, steadyBound, func() error { return a.n.Ready() })
	nodes := newKeyspace(defaultPrefix).nodes()
	if err := rc.ZRem(t.Context(), nodes, "a").Err(); err != nil {
		t.Fatal(err)
	}
	waitfor.Cond(t, steadyBound, func() error {
		if !logs.has(slog.LevelWarn, "heartbeat had been removed") {
			return fmt.Errorf("no warning about the removed heartbeat; logged %v", logs.messages())
		}
		if err := rc.ZScore(t.Context(), nodes, "a").Err(); err != nil {
			return fmt.Errorf("a is not back in the registry: %w", err)
		}
		return nil
	})
	if n := logs.count("heartbeat had been removed"); n != 1 {
		t.Errorf("logged the removal %d times; want once", n)
	}
}

// panicLocal is a fakeLocal whose next Want or UnwantNow calls panic, as a
// bug in the upstream would.
type panicLocal struct {
	*fakeLocal
	wants, nows atomic.Int32 // calls left to panic
}

func (p *panicLocal) Want(keys []string) {
	if p.wants.Add(-1) >= 0 {
		panic("test: Want panics")
	}
	p.fakeLocal.Want(keys)
}

func (p *panicLocal) UnwantNow(keys []string) {
	if p.nows.Add(-1) >= 0 {
		panic("test: UnwantNow panics")
	}
	p.fakeLocal.UnwantNow(keys)
}

// TestPanicRecovered makes Local panic in the demand reader (Want) and in
// the lease loop (UnwantNow when the lease is lost): the node logs each
// panic with its stack, goes on, and carries (or stops carrying) as it
// should once Local works again. Without recovery the test binary dies.
func TestPanicRecovered(t *testing.T) {
	srv := redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	logs := &logRecorder{}
	var pl *panicLocal
	a := startNodeWith(t, "a", standalone(srv.Addr()), func(cfg *Config) {
		pl = &panicLocal{fakeLocal: cfg.Local.(*fakeLocal)}
		pl.wants.Store(1)
		cfg.Local, cfg.Logger = pl, slog.New(logs)
	})
	a.want("binance:a@trade")
	waitSteady(t, steadyBound+panicPause, []*testNode{a})
	if n := a.n.panics.Load(); n != 1 {
		t.Errorf("%d panics recovered; want 1 (in Want)", n)
	}

	pl.nows.Store(1)
	lease := newKeyspace(defaultPrefix).exchange(testExchange).lease
	if err := rc.Set(t.Context(), lease, leaseValue("intruder", 1<<50), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	waitfor.Cond(t, testTTL+panicPause+time.Second, func() error {
		if got := a.local.carrying(testExchange); len(got) > 0 {
			return fmt.Errorf("a still carries %v after losing the lease", got)
		}
		return nil
	})
	if n := a.n.panics.Load(); n != 2 {
		t.Errorf("%d panics recovered; want 2 (in Want, then UnwantNow)", n)
	}
	if n := logs.count("panic in the cluster loop"); n != 2 {
		t.Errorf("logged %d panics; want 2", n)
	}
	if stack := logs.attr("panic in the cluster loop", "stack"); !strings.Contains(stack, "panicLocal") {
		t.Errorf("the panic's log has stack %q; want the panicking call in it", stack)
	}
	if err := a.n.Ready(); err != nil {
		t.Errorf("Ready() = %v after the panics", err)
	}
}
