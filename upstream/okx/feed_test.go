package okx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/okxsim"
	"github.com/marketgate/marketgate/exchangesim/okxsim/simtest"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/marketgate/marketgate/upstream"
)

// These tests run the core with this dialect against the strict OKX
// simulator, which counts every request and behaviour OKX would refuse.

// recorder is a hub.Publisher that keeps every message, by stream.
type recorder struct {
	mu   sync.Mutex
	msgs map[string][]hub.Message
}

func (r *recorder) Publish(_ context.Context, m hub.Message) error {
	m.Data = bytes.Clone(m.Data)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs[m.Stream] = append(r.msgs[m.Stream], m)
	return nil
}

func (r *recorder) Flush(context.Context) error { return nil }

func (r *recorder) get(stream string) []hub.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs[stream])
}

// waitMore waits until every stream has n more messages than before.
func waitMore(t *testing.T, rec *recorder, names []string, n int) {
	t.Helper()
	before := map[string]int{}
	for _, s := range names {
		before[s] = len(rec.get("okx:" + s))
	}
	waitfor.Cond(t, 10*time.Second, func() error {
		for _, s := range names {
			if got := len(rec.get("okx:" + s)); got < before[s]+n {
				return fmt.Errorf("%s: %d messages", s, got)
			}
		}
		return nil
	})
}

// checkStreams checks what was published: Seq goes up by one, book
// updates chain prevSeqId to the last seqId except right after a Gap or
// at a snapshot, and no trade id is published twice. It returns the
// number of gaps per stream.
func checkStreams(t *testing.T, rec *recorder, names []string) map[string]int {
	t.Helper()
	gaps := map[string]int{}
	for _, name := range names {
		s, _ := ParseStream(name)
		msgs := rec.get("okx:" + name)
		var lastSeq, lastTrade int64 = -1, -1
		for i, m := range msgs {
			if m.Seq != uint64(i+1) {
				t.Errorf("%s: message %d has Seq %d", name, i, m.Seq)
				break
			}
			if m.Gap {
				gaps[name]++
			}
			switch s.Kind {
			case KindBooks:
				var b bookMsg
				if err := json.Unmarshal(m.Data, &b); err != nil || len(b.Data) != 1 {
					t.Fatalf("%s: %s: %v", name, m.Data, err)
				}
				d := b.Data[0]
				if b.Action == "update" && !m.Gap && lastSeq >= 0 && d.PrevSeqID != lastSeq {
					t.Errorf("%s: message %d: prevSeqId %d after seqId %d, no Gap", name, i, d.PrevSeqID, lastSeq)
				}
				lastSeq = d.SeqID
			case KindTrades:
				id, ok := V5.Identity(new(s.Neutral()), m.Data)
				if !ok || id.Lo <= lastTrade {
					t.Errorf("%s: message %d: trade ids %d…%d after %d", name, i, id.Lo, id.Hi, lastTrade)
				}
				lastTrade = id.Hi
			}
		}
	}
	return gaps
}

type bookMsg struct {
	Action string `json:"action"`
	Data   []struct {
		SeqID     int64 `json:"seqId"`
		PrevSeqID int64 `json:"prevSeqId"`
	} `json:"data"`
}

// runFeed runs a feed with cfg until the test ends, and waits until it is
// ready.
func runFeed(t *testing.T, cfg upstream.Config) *upstream.Feed {
	t.Helper()
	f, err := upstream.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	waitfor.Cond(t, 5*time.Second, f.Ready)
	return f
}

func TestFeedAgainstSimulator(t *testing.T) {
	sim, addr := simtest.Start(t, okxsim.Config{TickInterval: 20 * time.Millisecond, CandleInterval: 100 * time.Millisecond, BookLevels: 50,
		IdleTimeout: time.Second, NoticeGrace: 3 * time.Second}) // OKX: 60 s; 4 connections at 3 handshakes a 1.25 s take ~1.3 s
	rec := &recorder{msgs: map[string][]hub.Message{}}
	d := V5
	d.every = 300 * time.Millisecond // within the simulator's 1 s idle timeout
	f := runFeed(t, upstream.Config{
		Dialect: d, URL: "ws://" + addr, RESTURL: "http://" + addr, Publisher: rec,
		RequestInterval: 50 * time.Millisecond, // ≤ 72 000 an hour: the simulator holds each connection to 480
		MaxStreams:      8,
		ReplyTimeout:    2 * time.Second,
	})

	// Bad names and unlisted instruments are refused before anything goes
	// upstream; SWAP instruments are valid (their own list, read beside
	// SPOT's).
	if err := f.Validate("books5:BTC-USDT-SWAP"); err != nil {
		t.Errorf("Validate(books5:BTC-USDT-SWAP) = %v; want nil", err)
	}
	for name, want := range map[string]error{
		"trades:DOGE-USDT": upstream.ErrUnknownSymbol, "trades:DOGE-USDT-SWAP": upstream.ErrUnknownSymbol,
		"trades:btc-usdt": upstream.ErrInvalidStream, "candle7m:BTC-USDT": upstream.ErrInvalidStream,
		"books50-l2-tbt:BTC-USDT": upstream.ErrInvalidStream,
	} {
		if err := f.Validate(name); !errors.Is(err, want) {
			t.Errorf("Validate(%q) = %v; want %v", name, err, want)
		}
	}

	var names []string
	for _, inst := range []string{"BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT"} {
		for _, ch := range []string{"trades", "tickers", "books5", "books", "bbo-tbt", "candle1s"} {
			names = append(names, ch+":"+inst)
		}
	}
	for _, n := range names {
		if err := f.Validate(n); err != nil {
			t.Fatalf("Validate(%q) = %v", n, err)
		}
	}
	f.Subscribe(names)
	waitMore(t, rec, names, 3)
	if subs := sim.Subscriptions(); len(subs) != len(names) {
		t.Errorf("simulator holds %d streams; want %d", len(subs), len(names))
	}
	open := sim.OpenConnections()
	if open < 4 { // 20 public streams at 8 a connection, and /business
		t.Errorf("%d connections; want the public streams sharded over 3 and one for candles", open)
	}

	// The notice 64008: every connection is replaced before the
	// simulator closes it, and nothing is lost.
	if n := sim.SendShutdownNotice(); n != open {
		t.Errorf("noticed %d connections; want %d", n, open)
	}
	waitfor.Cond(t, 10*time.Second, func() error {
		if st := f.Status(); st.Rotations < open {
			return fmt.Errorf("%d rotations of %d connections: %+v", st.Rotations, open, st)
		}
		return nil
	})
	waitMore(t, rec, names, 3)
	for name, n := range checkStreams(t, rec, names) {
		t.Errorf("%s: %d gaps across the make-before-break rotations; want none", name, n)
	}

	// An abrupt drop: every stream comes back, with Gap.
	sim.DropAll()
	waitfor.Cond(t, 10*time.Second, func() error {
		for _, n := range names {
			if !slices.ContainsFunc(rec.get("okx:"+n), func(m hub.Message) bool { return m.Gap }) {
				return fmt.Errorf("%s: no message after the drop", n)
			}
		}
		return nil
	})
	checkStreams(t, rec, names)

	// Quiet for longer than the idle timeout: the heartbeat keeps even
	// the connections without data (none here) open.
	time.Sleep(1500 * time.Millisecond)
	waitMore(t, rec, names, 1)
	if n := sim.Violations(); n != 0 {
		t.Errorf("simulator violations = %d; want 0", n)
		for _, c := range sim.Clients() {
			if c.Violations() != 0 {
				t.Logf("%+v", c)
			}
		}
	}
	pings := 0
	for _, c := range sim.Clients() {
		pings += c.Pings
	}
	if pings == 0 {
		t.Error("no heartbeat reached the simulator")
	}
	t.Logf("%d connections in all, %d pings, status %+v", len(sim.Clients()), pings, f.Status())
}

// TestFeedRefusedStream: a stream the exchange refuses fails alone, with
// OKX's code, and the others of its request flow. The simulator is set to
// allow one book channel a connection, which the feed does not know.
func TestFeedRefusedStream(t *testing.T) {
	sim, addr := simtest.Start(t, okxsim.Config{TickInterval: 20 * time.Millisecond, BookLevels: 20, MaxBookChannels: 1})
	rec := &recorder{msgs: map[string][]hub.Message{}}
	f := runFeed(t, upstream.Config{Dialect: V5, URL: "ws://" + addr, RESTURL: "http://" + addr, Publisher: rec,
		RequestInterval: 50 * time.Millisecond})
	f.Subscribe([]string{"books:BTC-USDT", "trades:BTC-USDT", "books:ETH-USDT"})
	waitfor.Cond(t, 5*time.Second, func() error {
		if msgs := rec.get("okx:books:ETH-USDT"); len(msgs) == 0 || msgs[0].Err == "" {
			return fmt.Errorf("books:ETH-USDT: %d messages", len(msgs))
		}
		return nil
	})
	if got := rec.get("okx:books:ETH-USDT")[0].Err; !strings.Contains(got, "code 60012") {
		t.Errorf("failure %q; want OKX's code", got)
	}
	waitMore(t, rec, []string{"books:BTC-USDT", "trades:BTC-USDT"}, 3)
	for _, c := range sim.Clients() {
		if c.Path == PublicPath && (c.TooManyBooks != 1 || c.Violations() != 1 || c.Streams != 2) {
			t.Errorf("simulator saw %+v; want the one refusal and two streams", c)
		}
	}
}

// TestFeedRequestBudget: a connection that spent its hourly request
// budget sends no request until it refills, and stays connected
// meanwhile (its heartbeats do not draw on the budget): the strict
// simulator, holding each connection to the same budget, counts no
// request over it.
func TestFeedRequestBudget(t *testing.T) {
	const budget = 8 // 2 at once, then 6 an hour: the third waits 10 minutes
	sim, addr := simtest.Start(t, okxsim.Config{TickInterval: 20 * time.Millisecond, MaxRequestsPerHour: budget, IdleTimeout: time.Second})
	rec := &recorder{msgs: map[string][]hub.Message{}}
	d := V5
	d.every = 300 * time.Millisecond // within the simulator's 1 s idle timeout
	f := runFeed(t, upstream.Config{
		Dialect: d, URL: "ws://" + addr, RESTURL: "http://" + addr, Publisher: rec,
		RequestInterval: 50 * time.Millisecond, MaxRequests: budget, RequestWindow: time.Hour,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})

	// One stream per request: each waits for the previous one's data.
	for _, name := range []string{"trades:BTC-USDT", "tickers:BTC-USDT"} {
		f.Subscribe([]string{name})
		waitMore(t, rec, []string{name}, 1)
	}
	f.Subscribe([]string{"tickers:ETH-USDT"})
	waitfor.Cond(t, 5*time.Second, func() error {
		if st := f.Status(); st.Desired != 3 {
			return fmt.Errorf("%d streams desired", st.Desired)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // three idle timeouts of the simulator
	if n := len(rec.get("okx:tickers:ETH-USDT")); n != 0 {
		t.Errorf("tickers:ETH-USDT has %d messages; want none before the budget refills", n)
	}
	var requests int
	for _, c := range sim.Clients() {
		requests += c.Requests
		if c.Closed {
			t.Errorf("connection %d closed while waiting for the budget", c.ID)
		}
	}
	if requests != 2 || sim.Violations() != 0 {
		t.Errorf("%d requests, %d violations; want 2 and none", requests, sim.Violations())
	}
	waitMore(t, rec, []string{"trades:BTC-USDT"}, 5) // the connection carries on
}

// TestFeedResubscribeSendsSnapshot: Resubscribe of a book channel sends
// the unsubscribe and the subscribe on the connection, although both
// wait out the request spacing (where Unsubscribe and Subscribe would
// cancel out before either went), and OKX sends a fresh snapshot, the
// first message after the stream was off with Gap.
func TestFeedResubscribeSendsSnapshot(t *testing.T) {
	sim, addr := simtest.Start(t, okxsim.Config{TickInterval: 20 * time.Millisecond, BookLevels: 20})
	rec := &recorder{msgs: map[string][]hub.Message{}}
	f := runFeed(t, upstream.Config{
		Dialect: V5, URL: "ws://" + addr, RESTURL: "http://" + addr, Publisher: rec,
		RequestInterval: 300 * time.Millisecond, ReplyTimeout: 2 * time.Second,
	})
	const name = "books:BTC-USDT"
	f.Subscribe([]string{name})
	waitMore(t, rec, []string{name}, 5)
	snapshots := func() (n int, lastGap bool) {
		for _, m := range rec.get("okx:" + name) {
			var b bookMsg
			if json.Unmarshal(m.Data, &b) == nil && b.Action == "snapshot" {
				n++
				lastGap = m.Gap
			}
		}
		return n, lastGap
	}
	if n, _ := snapshots(); n != 1 {
		t.Fatalf("%d snapshots before Resubscribe; want 1", n)
	}
	f.Resubscribe([]string{name})
	waitfor.Cond(t, 10*time.Second, func() error {
		if n, _ := snapshots(); n != 2 {
			return fmt.Errorf("%d snapshots; want a second one", n)
		}
		return nil
	})
	if _, gap := snapshots(); !gap {
		t.Error("the snapshot after Resubscribe has no Gap; want one (updates were missed while the channel was off)")
	}
	waitMore(t, rec, []string{name}, 5)
	checkStreams(t, rec, []string{name})
	var requests, redundant int
	for _, c := range sim.Clients() {
		if c.Path == "/ws/v5/public" {
			requests += c.Requests
			redundant += c.Redundant
		}
	}
	if requests != 3 || redundant != 0 {
		t.Errorf("public connections: %d requests, %d redundant; want 3 (subscribe, unsubscribe, subscribe), 0", requests, redundant)
	}
	if v := sim.Violations(); v != 0 {
		t.Errorf("simulator violations = %d", v)
	}
}
