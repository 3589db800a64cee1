package upstream

// This file exports internals to the tests of package upstream_test,
// which run the core with the exchanges' own dialects (upstream/binance
// imports upstream, so those tests cannot be in package upstream).

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/hub"
)

// Session is one upstream connection, for tests.
type Session = session

// StreamState is one stream of a feed, for tests.
type StreamState = streamState

// NewTestFeed returns a feed that is never run, with a session on its
// first shard carrying names as if confirmed.
func NewTestFeed(t testing.TB, d Dialect, pub hub.Publisher, names ...string) (*Feed, *Session) {
	t.Helper()
	f, err := New(Config{Dialect: d, URL: "ws://127.0.0.1:1", RESTURL: "http://127.0.0.1:1", Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	s := NewTestSession(f, 0, 1)
	for _, name := range names {
		AddTestStream(t, f, s, name)
	}
	return f, s
}

// NewTestSession returns a session of the first shard of f's endpoint ep
// that is not connected.
func NewTestSession(f *Feed, ep int, id uint64) *Session {
	return newSession(f.endpoints[ep].shards[0], id, nil, nil, nil)
}

// EndpointOf returns the index of the endpoint serving the stream name.
func EndpointOf(t testing.TB, f *Feed, name string) int {
	t.Helper()
	s, err := f.d.ParseStream(name)
	if err != nil {
		t.Fatal(err)
	}
	return f.d.EndpointOf(s)
}

// AddTestStream puts name in f's desired set and on s.
func AddTestStream(t testing.TB, f *Feed, s *Session, name string) *StreamState {
	t.Helper()
	parsed, err := f.d.ParseStream(name)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.streams[name]
	if st == nil {
		st = f.newStreamLocked(name, parsed)
		st.wanted = true
		f.tombstones--
		f.assignLocked(st)
	}
	s.subs[name] = &sessStream{st: st, state: stateSubscribed}
	return st
}

// Route handles one text message as the read loop does and returns the
// stream type counted for it (-1: none).
func (s *session) Route(ctx context.Context, p []byte) int { return s.route(ctx, p) }

// CountIn counts a message as the read loop does.
func (s *session) CountIn(kind, n int) { s.m.in.add(kind, n) }

// ReadOne reads and handles one frame from rd into buf.
func (s *session) ReadOne(ctx context.Context, rd *wsutil.Reader, buf *bytes.Buffer) error {
	return s.readOne(ctx, rd, buf)
}

// NewReader returns the session's message reader over src.
func (s *session) NewReader(src io.Reader) *wsutil.Reader { return s.newReader(src) }

// SharesMetrics reports whether s counts into f's metrics.
func (s *session) SharesMetrics(f *Feed) bool { return s.m == f.metrics() }

// Deliver hands one event of st read by s to st.
func (st *streamState) Deliver(ctx context.Context, s *Session, data []byte) {
	st.deliver(ctx, s, data)
}

// BeginHandover starts moving st to the connection to.
func (st *streamState) BeginHandover(to *Session, deadline time.Time) { st.beginHandover(to, deadline) }

// Detach unlinks the ended connection s from its streams, as its shard
// does (abrupt: it dropped rather than closed).
func (s *session) Detach(abrupt bool) { s.sh.detach(context.Background(), s, abrupt) }

// NotePublish records the outcome of a Publish as the feed does.
func (f *Feed) NotePublish(ctx context.Context, err error) { f.notePublish(ctx, err) }

// Flush ends a burst as the read loop does.
func (f *Feed) Flush(ctx context.Context) { f.flush(ctx) }

// LoadSymbols fetches f's symbol list once.
func (f *Feed) LoadSymbols(ctx context.Context) error { return f.symbols.load(ctx) }

// SymbolMiss yields when a lookup of an unknown symbol asks for an early
// refresh.
func (f *Feed) SymbolMiss() <-chan struct{} { return f.symbols.miss }

// FetchSymbols fetches and parses every page of the symbol lists at
// base+paths.
func FetchSymbols(ctx context.Context, base string, paths []string, parse func(string, io.Reader) (map[string]struct{}, string, error), client *http.Client, maxBytes int64) (map[string]struct{}, error) {
	s := &symbolSet{base: base, paths: paths, parse: parse, client: client, maxBytes: maxBytes}
	return s.fetch(ctx)
}

// MaxRetryAfter bounds a Retry-After the symbol list honours.
const MaxRetryAfter = maxRetryAfter

// RetryAfter returns the Retry-After a symbol list fetch error carries.
func RetryAfter(err error) (time.Duration, bool) {
	re, ok := errors.AsType[*restError](err)
	if !ok {
		return 0, false
	}
	return re.retryAfter, true
}

// InvalidStream returns the error of an invalid stream name.
func InvalidStream(name string) error { return invalidStream(name) }

// Unconfirm marks stream name on s as asked for but not confirmed by the
// exchange yet.
func (s *session) Unconfirm(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[name].state = stateSubPending
}

// Merger merges the lanes of a redundant feed, for tests.
type Merger = merger

// NewTestMerger returns the merger of a feed of d with lanes lanes that
// publishes to pub and holds at most hold events of a joining lane.
func NewTestMerger(t testing.TB, d Dialect, pub hub.Publisher, lanes, hold int) *Merger {
	t.Helper()
	cfg, err := Config{Dialect: d, Publisher: pub, Redundancy: lanes, HandoverBuffer: hold}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newMerger(cfg)
}

// Offer hands msg, published by lane k, to m.
func (m *merger) Offer(ctx context.Context, k int, msg hub.Message) error {
	return m.publish(ctx, k, msg)
}

// Stats returns what m counted.
func (m *merger) Stats() RedundancyStats { return m.stats() }
