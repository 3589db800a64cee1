package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marketgate/marketgate/downstream"
	"github.com/marketgate/marketgate/upstream"
	"github.com/redis/go-redis/v9"
)

var (
	_ downstream.Source = (*Node)(nil)
	_ Local             = (*upstream.Router)(nil)
)

// Test timings: short, so that the tests run fast, in the ratios of the
// defaults.
const (
	testTTL      = 600 * time.Millisecond
	testPoll     = 50 * time.Millisecond
	testBeat     = 100 * time.Millisecond
	testOverlap  = 300 * time.Millisecond
	sampleEvery  = 10 * time.Millisecond
	runEndBound  = 5 * time.Second
	steadyBound  = 3 * time.Second
	testExchange = "binance"
	testFutures  = "binance-futures"
)

var testExchanges = []string{testExchange, testFutures}

// fakeLocal is an in-memory Local that records what it carries and the
// misuse it sees: a key wanted twice or unwanted while not wanted, keys
// of several exchanges in one call, or overlapping calls.
type fakeLocal struct {
	busy atomic.Bool

	// mu guards the following fields.
	mu     sync.Mutex
	wanted map[string]struct{}
	now    int // keys removed by UnwantNow
	errs   []string
}

func newFakeLocal() *fakeLocal { return &fakeLocal{wanted: make(map[string]struct{})} }

func (f *fakeLocal) Validate(key string) error {
	if _, ok := streamExchange(key); !ok {
		return fmt.Errorf("invalid stream key %q", key)
	}
	return nil
}

func (f *fakeLocal) Want(keys []string)   { f.call("Want", keys, true) }
func (f *fakeLocal) Unwant(keys []string) { f.call("Unwant", keys, false) }
func (f *fakeLocal) UnwantNow(keys []string) {
	f.call("UnwantNow", keys, false)
	f.mu.Lock()
	f.now += len(keys)
	f.mu.Unlock()
}

func (f *fakeLocal) call(name string, keys []string, add bool) {
	if !f.busy.CompareAndSwap(false, true) {
		f.fail("%s(%v) overlaps another call", name, keys)
		return
	}
	defer f.busy.Store(false)
	f.mu.Lock()
	defer f.mu.Unlock()
	exchanges := map[string]bool{}
	for _, k := range keys {
		ex, _ := streamExchange(k)
		exchanges[ex] = true
		_, had := f.wanted[k]
		switch {
		case add && had:
			f.errs = append(f.errs, fmt.Sprintf("Want(%q) while carried", k))
		case !add && !had:
			f.errs = append(f.errs, fmt.Sprintf("Unwant(%q) while not carried", k))
		}
		if add {
			f.wanted[k] = struct{}{}
		} else {
			delete(f.wanted, k)
		}
	}
	if len(exchanges) != 1 {
		f.errs = append(f.errs, fmt.Sprintf("%s(%v): keys of %d exchanges", name, keys, len(exchanges)))
	}
}

func (f *fakeLocal) fail(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

// carrying returns the carried keys of exchange ex ("" for all), sorted.
func (f *fakeLocal) carrying(ex string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.wanted {
		if e, _ := streamExchange(k); ex == "" || e == ex {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (f *fakeLocal) has(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.wanted[key]
	return ok
}

func (f *fakeLocal) check(t *testing.T, name string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.errs {
		t.Errorf("node %s: Local misuse: %s", name, e)
	}
}

// testNode is one running Node with its fake Local.
type testNode struct {
	id     string
	n      *Node
	local  *fakeLocal
	cancel context.CancelFunc
	done   chan error
	// demand is what the test made the node want or pin, for the
	// expected union.
	mu     sync.Mutex
	demand map[string]struct{}
	dead   atomic.Bool // crashed or stopped
}

// testConfig returns the fast config of a test node.
func testConfig(t *testing.T, id string, client redis.UniversalClient, local Local) Config {
	return Config{
		Client:            client,
		NodeID:            id,
		Exchanges:         testExchanges,
		Local:             local,
		LeaseTTL:          testTTL,
		PollInterval:      testPoll,
		HeartbeatInterval: testBeat,
		HandoverOverlap:   testOverlap,
		Logger:            slog.New(slog.NewTextHandler(t.Output(), nil)).With("node", id),
	}
}

// startNode runs a node with its own client from newClient until the test
// ends, then checks that Run returned nil and the Local was used right.
func startNode(t *testing.T, id string, newClient func() redis.UniversalClient) *testNode {
	t.Helper()
	return startNodeWith(t, id, newClient, nil)
}

// startNodeWith is startNode with edit applied to the test config.
func startNodeWith(t *testing.T, id string, newClient func() redis.UniversalClient, edit func(*Config)) *testNode {
	t.Helper()
	client := newClient()
	local := newFakeLocal()
	cfg := testConfig(t, id, client, local)
	if edit != nil {
		edit(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s) = %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{id: id, n: n, local: local, cancel: cancel, done: make(chan error, 1), demand: map[string]struct{}{}}
	go func() { tn.done <- n.Run(ctx) }()
	t.Cleanup(func() {
		tn.stop(t)
		local.check(t, id)
		client.Close()
	})
	return tn
}

// stop ends Run normally (releasing) and checks that it returned nil.
func (tn *testNode) stop(t *testing.T) {
	t.Helper()
	if tn.dead.Swap(true) {
		return
	}
	tn.cancel()
	tn.waitRun(t)
}

// crash ends Run like a kill -9: nothing is released or unregistered and
// Local is not called any more.
func (tn *testNode) crash(t *testing.T) {
	t.Helper()
	tn.dead.Store(true)
	tn.n.crash.Store(true)
	tn.cancel()
	tn.waitRun(t)
}

func (tn *testNode) waitRun(t *testing.T) {
	t.Helper()
	select {
	case err := <-tn.done:
		if err != nil {
			t.Errorf("node %s: Run = %v; want nil", tn.id, err)
		}
	case <-time.After(runEndBound):
		t.Fatalf("node %s: Run did not return within %v of its end", tn.id, runEndBound)
	}
}

func (tn *testNode) want(keys ...string) {
	tn.mu.Lock()
	for _, k := range keys {
		tn.demand[k] = struct{}{}
	}
	tn.mu.Unlock()
	tn.n.Want(keys)
}

func (tn *testNode) unwant(keys ...string) {
	tn.mu.Lock()
	for _, k := range keys {
		delete(tn.demand, k)
	}
	tn.mu.Unlock()
	tn.n.Unwant(keys)
}

func (tn *testNode) pin(key string) {
	tn.mu.Lock()
	tn.demand[key] = struct{}{}
	tn.mu.Unlock()
	tn.n.Pin(key)
}

func (tn *testNode) unpin(key string) {
	tn.mu.Lock()
	delete(tn.demand, key)
	tn.mu.Unlock()
	tn.n.Unpin(key)
}

// owns reports whether the node holds a lease of ex, and its token.
func (tn *testNode) owns(ex string) (int64, bool) {
	for _, l := range tn.n.Owned() {
		if l.Exchange == ex {
			return l.Token, true
		}
	}
	return 0, false
}

// live returns the nodes that neither crashed nor stopped.
func live(nodes []*testNode) []*testNode {
	var out []*testNode
	for _, tn := range nodes {
		if !tn.dead.Load() {
			out = append(out, tn)
		}
	}
	return out
}

// expectedUnion is the union of the demand of nodes for exchange ex.
func expectedUnion(nodes []*testNode, ex string) []string {
	set := map[string]struct{}{}
	for _, tn := range nodes {
		tn.mu.Lock()
		for k := range tn.demand {
			if e, _ := streamExchange(k); e == ex {
				set[k] = struct{}{}
			}
		}
		tn.mu.Unlock()
	}
	return slices.Sorted(maps.Keys(set))
}

// steady returns nil once, among the live nodes, exactly one owns each
// exchange and carries the union of the live nodes' demand for it, and the
// others carry nothing of it. owners maps each exchange to its owner.
func steady(nodes []*testNode) (owners map[string]*testNode, err error) {
	alive := live(nodes)
	owners = map[string]*testNode{}
	for _, ex := range testExchanges {
		var own []string
		for _, tn := range alive {
			if _, ok := tn.owns(ex); ok {
				own = append(own, tn.id)
				owners[ex] = tn
			}
		}
		if len(own) != 1 {
			return nil, fmt.Errorf("owners of %s: %v; want exactly one", ex, own)
		}
		want := expectedUnion(alive, ex)
		for _, tn := range alive {
			got := tn.local.carrying(ex)
			if tn != owners[ex] {
				if len(got) > 0 {
					return nil, fmt.Errorf("non-owner %s carries %v of %s", tn.id, got, ex)
				}
				continue
			}
			if !slices.Equal(got, want) {
				return nil, fmt.Errorf("owner %s of %s carries %v; want %v", tn.id, ex, got, want)
			}
		}
	}
	return owners, nil
}

// waitSteady waits up to d for [steady] and returns the owners.
func waitSteady(t *testing.T, d time.Duration, nodes []*testNode) map[string]*testNode {
	t.Helper()
	var owners map[string]*testNode
	deadline := time.Now().Add(d)
	for {
		var err error
		if owners, err = steady(nodes); err == nil {
			return owners
		}
		if time.Now().After(deadline) {
			t.Fatalf("not steady within %v: %v", d, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sampler checks, every sampleEvery, that no stream is carried by two
// live nodes for longer than limit, and that nodes marked as banned
// never own a lease nor carry anything.
type sampler struct {
	limit  time.Duration
	nodes  []*testNode
	cancel context.CancelFunc
	done   chan struct{}

	// mu guards the following fields.
	mu        sync.Mutex
	banned    map[*testNode]bool
	dualSince map[string]time.Time
	maxDual   time.Duration
	worst     string
	errs      []string
	samples   int
}

// startSampler samples nodes until stopped.
func startSampler(nodes []*testNode, limit time.Duration) *sampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sampler{limit: limit, nodes: nodes, cancel: cancel, done: make(chan struct{}),
		banned: map[*testNode]bool{}, dualSince: map[string]time.Time{}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// ban makes carrying or owning anything an error for tn from now on.
func (s *sampler) ban(tn *testNode) {
	s.mu.Lock()
	s.banned[tn] = true
	s.mu.Unlock()
}

func (s *sampler) sample() {
	now := time.Now()
	count := map[string]int{}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	for _, tn := range live(s.nodes) {
		carried := tn.local.carrying("")
		for _, k := range carried {
			count[k]++
		}
		if s.banned[tn] {
			if len(carried) > 0 || len(tn.n.Owned()) > 0 {
				s.errs = append(s.errs, fmt.Sprintf("drained node %s carries %v, owns %v", tn.id, carried, tn.n.Owned()))
			}
		}
	}
	for k, c := range count {
		if c < 2 {
			delete(s.dualSince, k)
			continue
		}
		since, ok := s.dualSince[k]
		if !ok {
			s.dualSince[k] = now
			continue
		}
		if d := now.Sub(since); d > s.maxDual {
			s.maxDual, s.worst = d, k
		}
	}
	for k := range s.dualSince {
		if count[k] < 2 {
			delete(s.dualSince, k)
		}
	}
}

// stop stops sampling and fails t on what it saw.
func (s *sampler) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maxDual > s.limit {
		t.Errorf("%s was carried by two live nodes for %v; want at most %v", s.worst, s.maxDual, s.limit)
	}
	for i, e := range s.errs {
		if i == 5 {
			t.Errorf("... and %d more", len(s.errs)-5)
			break
		}
		t.Error(e)
	}
	t.Logf("sampler: %d samples, longest double carry %v", s.samples, s.maxDual)
}

// standalone returns a client maker for addr.
func standalone(addr string) func() redis.UniversalClient {
	return func() redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: addr}) }
}

// errContains is nil if err's text contains want.
func errContains(err error, want string) error {
	if err == nil || !strings.Contains(err.Error(), want) {
		return fmt.Errorf("error %v; want one containing %q", err, want)
	}
	return nil
}

// logRecorder is a slog.Handler that keeps every record's level and
// message.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

// has reports whether a record of level contains text.
func (l *logRecorder) has(level slog.Level, text string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.Level == level && strings.Contains(r.Message, text) {
			return true
		}
	}
	return false
}

// count returns how many records contain text.
func (l *logRecorder) count(text string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if strings.Contains(r.Message, text) {
			n++
		}
	}
	return n
}

// messages returns every record's message.
func (l *logRecorder) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.recs))
	for i, r := range l.recs {
		out[i] = r.Message
	}
	return out
}

// attr returns the value of attribute key of the first record that
// contains text, and "" if there is none.
func (l *logRecorder) attr(text, key string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if !strings.Contains(r.Message, text) {
			continue
		}
		var v string
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v = a.Value.String()
				return false
			}
			return true
		})
		return v
	}
	return ""
}
