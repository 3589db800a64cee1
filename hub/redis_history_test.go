package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/redis/go-redis/v9"
)

// numberingStep is one message of TestRedisNumbering: published by hub
// (0 or 1, two nodes), with its position and gap as numbered, or dropped.
type numberingStep struct {
	name    string
	hub     int
	msg     Message
	wantSeq uint64 // 0: dropped (or, with Err, not numbered)
	wantGap bool
}

// numberingSteps go through every rule of sequence.number, with origins
// and IDs past 2^53 where a Lua double would lose them.
func numberingSteps(stream string) []numberingStep {
	m := func(origin, seq uint64, id EventID) Message {
		return Message{Stream: stream, Origin: origin, Seq: seq, ID: id, Data: fmt.Appendf(nil, `{"o":%d,"s":%d}`, origin, seq)}
	}
	const big = 1 << 60
	return []numberingStep{
		{"first", 0, m(1, 1, EventID{Hi: 10}), 1, false},
		{"next", 0, m(1, 2, EventID{Hi: 11}), 2, false},
		{"next again", 0, m(1, 3, EventID{Hi: 12}), 3, false},
		{"same origin repeats an id", 0, m(1, 3, EventID{Hi: 12}), 0, false},
		{"newer origin repeats", 1, m(2, 7, EventID{Hi: 12}), 0, false},
		{"newer origin continues its repeat", 1, m(2, 8, EventID{Hi: 13}), 4, false},
		{"older origin fenced", 0, m(1, 4, EventID{Hi: 14}), 0, false},
		{"publisher seq breaks", 1, m(2, 10, EventID{Hi: 14}), 5, true},
		{"newer origin proven by prev", 0, m(3, 1, EventID{Hi: 20, Prev: 14}), 6, false},
		{"newer origin unproven", 1, m(4, 1, EventID{Hi: 25, Prev: 24}), 7, true},
		{"no id, same origin", 1, m(4, 2, EventID{}), 8, false},
		{"newer origin without id", 0, m(5, 1, EventID{}), 9, true},
		{"error, not numbered", 0, Message{Stream: stream, Origin: 5, Err: "refused"}, 0, false},
		{"after the error, publisher seq broken", 0, m(5, 3, EventID{Hi: 30}), 10, true},
		{"origin past 2^53, proven", 1, m(big, 1, EventID{Hi: 1 << 62, Prev: 30}), 11, false},
		{"origin older by one past 2^53", 0, m(big-1, 1, EventID{Hi: 1<<62 + 5}), 0, false},
		{"id newer by one past 2^53", 1, m(big, 2, EventID{Hi: 1<<62 + 1}), 12, false},
		{"id same past 2^53, sub newer", 1, m(big, 3, EventID{Hi: 1<<62 + 1, Sub: 1}), 13, false},
		{"id older by one past 2^53", 1, m(big, 4, EventID{Hi: 1 << 62}), 0, false},
	}
}

// TestRedisNumbering publishes one stream from two Redis hubs (two
// nodes) with changing origins and checks the positions against the
// rules, against the Memory hub (the reference), and that both nodes see
// the same (Seq, Epoch, Gap).
func TestRedisNumbering(t *testing.T) {
	const stream = "binance:btcusdt@trade"
	steps := numberingSteps(stream)
	// What receivers must get: the numbered messages and the error.
	var want []Message
	for _, st := range steps {
		if st.wantSeq != 0 || st.msg.Err != "" {
			w := st.msg
			w.Seq, w.Gap = st.wantSeq, st.wantGap
			want = append(want, w)
		}
	}

	t.Run("memory", func(t *testing.T) {
		mem, l := NewMemory(), &msgLog{}
		mem.Subscribe(t.Context(), stream, l)
		for _, st := range steps {
			mem.Publish(t.Context(), st.msg)
		}
		checkMessages(t, "memory", l, stream, want)
	})

	hubs, logs := twoNodes(t, stream, "node-a", "node-b")
	for _, st := range steps {
		h := hubs[st.hub]
		if err := h.Publish(t.Context(), st.msg); err != nil {
			t.Fatalf("%s: Publish = %v", st.name, err)
		}
		if err := h.Flush(t.Context()); err != nil {
			t.Fatalf("%s: Flush = %v", st.name, err)
		}
	}
	for i, l := range logs {
		waitfor.Cond(t, 10*time.Second, func() error {
			if n := len(l.of(stream)); n < len(want) {
				return fmt.Errorf("node %d has %d of %d messages", i, n, len(want))
			}
			return nil
		})
		checkMessages(t, "node "+strconv.Itoa(i), l, stream, want)
	}
	a, b := logs[0].of(stream), logs[1].of(stream)
	epoch := a[0].Epoch
	for i := range a {
		if a[i].Seq != b[i].Seq || a[i].Epoch != b[i].Epoch || a[i].Gap != b[i].Gap {
			t.Errorf("message %d: node a (%d, %q, gap %v), node b (%d, %q, gap %v); want the same", i, a[i].Seq, a[i].Epoch, a[i].Gap, b[i].Seq, b[i].Epoch, b[i].Gap)
		}
		wantEpoch := epoch
		if a[i].Err != "" {
			wantEpoch = ""
		}
		if a[i].Epoch != wantEpoch || len(epoch) != 8 {
			t.Errorf("message %d has epoch %q; want %q, 8 characters (the error none)", i, a[i].Epoch, wantEpoch)
		}
	}
	dropped := 0
	for _, st := range steps {
		if st.wantSeq == 0 && st.msg.Err == "" {
			dropped++
		}
	}
	var published, gotDropped uint64
	for _, h := range hubs {
		published += h.Stats().Published
		gotDropped += h.dropped.Load()
	}
	if published != uint64(len(want)) || gotDropped != uint64(dropped) {
		t.Errorf("Published %d, dropped %d; want %d and %d", published, gotDropped, len(want), dropped)
	}
}

// publishN publishes n messages of stream from h, each with the next
// publisher Seq after from and an ID, in bursts of 10.
func publishN(t testing.TB, h *Redis, stream string, from uint64, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		s := from + uint64(i) + 1
		msg := Message{Stream: stream, Seq: s, ID: EventID{Hi: int64(1000 + s)}, Data: fmt.Appendf(nil, `{"n":%d}`, s)}
		if err := h.Publish(ctx, msg); err != nil {
			t.Fatalf("Publish = %v", err)
		}
		if i%10 == 9 || i == n-1 {
			if err := h.Flush(ctx); err != nil {
				t.Fatalf("Flush = %v", err)
			}
		}
	}
}

// subscribed subscribes a new msgLog to stream on h and waits until
// Recover would not wait.
func subscribed(t *testing.T, h *Redis, stream string) *msgLog {
	t.Helper()
	l := &msgLog{}
	if err := h.Subscribe(t.Context(), stream, l); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := h.waitSubscribed(ctx, stream); err != nil {
		t.Fatalf("subscription of %q not confirmed: %v", stream, err)
	}
	return l
}

// checkRecovered fails t unless rec's messages are the positions from,
// from+1, ... of epoch, in order, each with its own Data.
func checkRecovered(t *testing.T, name string, rec Recovery, epoch string, from uint64, n int) {
	t.Helper()
	if len(rec.Messages) != n {
		t.Errorf("%s: %d messages; want %d", name, len(rec.Messages), n)
		return
	}
	for i, m := range rec.Messages {
		want := from + uint64(i)
		if m.Seq != want || m.Epoch != epoch || !strings.Contains(string(m.Data), `"n":`) {
			t.Errorf("%s: message %d = seq %d epoch %q data %s; want seq %d epoch %q", name, i, m.Seq, m.Epoch, m.Data, want, epoch)
		}
	}
}

func TestRedisRecover(t *testing.T) {
	const size = 10
	srv := redistest.Start(t)
	h := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n", HistorySize: size})
	const stream, quiet = "x:trades", "x:quiet"
	subscribed(t, h, stream)
	subscribed(t, h, quiet)
	publishN(t, h, stream, 0, 25)

	rec, err := h.Recover(t.Context(), stream, nil)
	if err != nil {
		t.Fatalf("Recover(nil) = %v", err)
	}
	epoch := rec.Position.Epoch
	if rec.Position.Seq != 25 || len(epoch) != 8 || rec.Recovered {
		t.Fatalf("Recover(nil) = %+v; want position 25 of an 8-character epoch, not recovered", rec.Position)
	}
	checkRecovered(t, "latest", rec, epoch, 25, 1)

	tests := []struct {
		name      string
		since     Position
		recovered bool
		from      uint64
		n         int
	}{
		{"current", Position{epoch, 25}, true, 0, 0},
		{"some missed", Position{epoch, 20}, true, 21, 5},
		{"as old as the history size", Position{epoch, 25 - size}, true, 25 - size + 1, size},
		{"older than the history size", Position{epoch, 25 - size - 1}, false, 0, 0},
		{"the epoch's start", Position{epoch, 0}, false, 0, 0},
		{"past the position", Position{epoch, 26}, false, 0, 0},
		{"far past the position", Position{epoch, 1 << 62}, false, 0, 0},
		{"another epoch", Position{"zzzzzzzz", 20}, false, 0, 0},
		{"no epoch", Position{"", 20}, false, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := h.Recover(t.Context(), stream, &tc.since)
			if err != nil {
				t.Fatalf("Recover(%+v) = %v", tc.since, err)
			}
			if rec.Recovered != tc.recovered || rec.Position != (Position{epoch, 25}) {
				t.Errorf("Recover(%+v) = recovered %v at %+v; want %v at %v 25", tc.since, rec.Recovered, rec.Position, tc.recovered, epoch)
			}
			checkRecovered(t, tc.name, rec, epoch, tc.from, tc.n)
		})
	}

	// A subscribed stream never published: a new epoch at 0, which its
	// first message continues.
	rec, err = h.Recover(t.Context(), quiet, &Position{epoch, 3})
	if err != nil || rec.Recovered || rec.Position.Seq != 0 || rec.Position.Epoch == "" || rec.Position.Epoch == epoch || len(rec.Messages) != 0 {
		t.Errorf("Recover of a stream never published = %+v, %v; want a new epoch at 0", rec, err)
	}
	if again, err := h.Recover(t.Context(), quiet, &rec.Position); err != nil || !again.Recovered || again.Position != rec.Position {
		t.Errorf("Recover from a quiet stream's own position = %+v, %v; want recovered, nothing missed", again, err)
	}
	// No local receiver: nothing could make the history meet the live
	// messages.
	if _, err := h.Recover(t.Context(), "x:unsubscribed", nil); !errors.Is(err, ErrNotSubscribed) {
		t.Errorf("Recover without a receiver = %v; want ErrNotSubscribed", err)
	}

	// Redis trims about HistorySize: a long stream stays short.
	publishN(t, h, stream, 25, 500)
	rc := redis.NewClient(srv.Options())
	defer rc.Close()
	n, err := rc.XLen(t.Context(), h.histKey(stream)).Result()
	if err != nil || n < size || n > size+200 {
		t.Errorf("XLEN of the history after 525 messages = %d, %v; want about %d", n, err, size)
	}
	rec, err = h.Recover(t.Context(), stream, &Position{epoch, 520})
	if err != nil || !rec.Recovered || rec.Position.Seq != 525 {
		t.Fatalf("Recover after 525 = %+v, %v; want recovered at 525", rec.Position, err)
	}
	checkRecovered(t, "after 525", rec, epoch, 521, 5)
}

// TestRedisNoHistory: with HistorySize < 0 messages are still numbered,
// nothing is kept, and Recover says so.
func TestRedisNoHistory(t *testing.T) {
	srv := redistest.Start(t)
	h := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n", HistorySize: -1})
	const stream = "x:s"
	l := subscribed(t, h, stream)
	publishN(t, h, stream, 0, 3)
	waitfor.Cond(t, 10*time.Second, func() error {
		if n := len(l.of(stream)); n < 3 {
			return fmt.Errorf("%d of 3 delivered", n)
		}
		return nil
	})
	for i, m := range l.of(stream) {
		if m.Seq != uint64(i+1) || m.Epoch == "" {
			t.Errorf("message %d = seq %d epoch %q; want seq %d and an epoch", i, m.Seq, m.Epoch, i+1)
		}
	}
	// Positions still: a client that missed nothing recovers, any other
	// does not.
	rec, err := h.Recover(t.Context(), stream, nil)
	if err != nil || rec.Position.Seq != 3 || len(rec.Messages) != 0 {
		t.Errorf("Recover = %+v, %v; want position 3, no message", rec, err)
	}
	if r, err := h.Recover(t.Context(), stream, &rec.Position); err != nil || !r.Recovered {
		t.Errorf("Recover(current) = %+v, %v; want recovered", r, err)
	}
	if r, err := h.Recover(t.Context(), stream, &Position{rec.Position.Epoch, 2}); err != nil || r.Recovered {
		t.Errorf("Recover(one behind) = %+v, %v; want not recovered", r, err)
	}
	rc := redis.NewClient(srv.Options())
	defer rc.Close()
	if n, err := rc.Exists(t.Context(), h.histKey(stream)).Result(); err != nil || n != 0 {
		t.Errorf("history key exists = %d, %v; want 0", n, err)
	}
}

// TestRedisRecoverWaitsForSubscription: Recover returns only once the
// subscription is in place, so a message published by another node right
// after it returns arrives live, every time.
func TestRedisRecoverWaitsForSubscription(t *testing.T) {
	srv := redistest.Start(t)
	pub := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "publisher"})

	// Not running yet: nothing subscribes, so Recover waits until ctx ends.
	h := newHub(t, RedisConfig{URL: srv.URL(), NodeID: "n"})
	if err := h.Subscribe(t.Context(), "x:early", &msgLog{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	_, err := h.Recover(ctx, "x:early", nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recover before Run = %v; want the deadline", err)
	}
	startHub(t, h)

	for i := range 30 {
		stream := fmt.Sprintf("x:s%d", i)
		publishN(t, pub, stream, 0, 2) // a position to recover from
		l := &msgLog{}
		if err := h.Subscribe(t.Context(), stream, l); err != nil {
			t.Fatal(err)
		}
		rec, err := h.Recover(t.Context(), stream, nil)
		if err != nil {
			t.Fatalf("Recover(%q) = %v", stream, err)
		}
		if rec.Position.Seq != 2 {
			t.Fatalf("Recover(%q) at %+v; want seq 2", stream, rec.Position)
		}
		publishN(t, pub, stream, 2, 1)
		waitfor.Cond(t, 10*time.Second, func() error {
			got := l.of(stream)
			if len(got) == 0 {
				return errors.New("message after Recover not delivered")
			}
			if got[0].Seq != 3 {
				return fmt.Errorf("first live message has seq %d; want 3", got[0].Seq)
			}
			return nil
		})
	}
}

// TestRedisNewEpoch: when Redis loses its data (FLUSHALL, or a restart
// without persistence), the next message starts a new epoch at seq 1,
// and a position of the old epoch is not recovered.
func TestRedisNewEpoch(t *testing.T) {
	tests := []struct {
		name string
		lose func(t *testing.T, srv *redistest.Server)
	}{
		{"flushall", func(t *testing.T, srv *redistest.Server) {
			rc := redis.NewClient(srv.Options())
			defer rc.Close()
			if err := rc.FlushAll(t.Context()).Err(); err != nil {
				t.Fatal(err)
			}
		}},
		// The restarted server does not know the script either: the
		// publish goes through EVAL after EVALSHA's NOSCRIPT.
		{"restart empty", func(t *testing.T, srv *redistest.Server) { srv.Restart(t) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			h := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n"})
			const stream = "x:s"
			l := subscribed(t, h, stream)
			publishN(t, h, stream, 0, 3)
			old, err := h.Recover(t.Context(), stream, nil)
			if err != nil || old.Position.Seq != 3 {
				t.Fatalf("Recover = %+v, %v; want seq 3", old.Position, err)
			}
			tc.lose(t, srv)
			// After a restart the first sends may fail until go-redis
			// has reconnected; the publisher's numbering goes on.
			seq := uint64(3)
			waitfor.Cond(t, 10*time.Second, func() error {
				seq++
				msg := Message{Stream: stream, Seq: seq, ID: EventID{Hi: int64(1000 + seq)}, Data: []byte(`{"n":0}`)}
				if err := h.Publish(t.Context(), msg); err != nil {
					return err
				}
				return h.Flush(t.Context())
			})
			// The subscription is back and confirmed after a restart
			// once Recover returns.
			rec, err := h.Recover(t.Context(), stream, &old.Position)
			if err != nil {
				t.Fatalf("Recover(%+v) = %v", old.Position, err)
			}
			if rec.Recovered || rec.Position.Seq != 1 || rec.Position.Epoch == old.Position.Epoch || rec.Position.Epoch == "" {
				t.Errorf("Recover(%+v) after the loss = %+v; want not recovered, seq 1 of a new epoch", old.Position, rec)
			}
			publishN(t, h, stream, seq, 1)
			waitfor.Cond(t, 10*time.Second, func() error {
				got := l.of(stream)
				last := got[len(got)-1]
				if last.Seq != 2 || last.Epoch != rec.Position.Epoch {
					return fmt.Errorf("last message seq %d epoch %q; want 2 of %q", last.Seq, last.Epoch, rec.Position.Epoch)
				}
				return nil
			})
		})
	}
}

// TestRedisHistoryTTL: a quiet stream's history expires after
// HistoryTTL, its position does not: a client that missed nothing
// recovers, one that missed something does not, and numbering goes on.
func TestRedisHistoryTTL(t *testing.T) {
	const ttl = 300 * time.Millisecond
	srv := redistest.Start(t)
	h := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n", HistoryTTL: ttl})
	const stream = "x:s"
	subscribed(t, h, stream)
	publishN(t, h, stream, 0, 3)
	rec, err := h.Recover(t.Context(), stream, &Position{Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	epoch := rec.Position.Epoch
	if rec, err := h.Recover(t.Context(), stream, &Position{epoch, 1}); err != nil || !rec.Recovered {
		t.Fatalf("Recover before the TTL = %+v, %v; want recovered", rec, err)
	}
	rc := redis.NewClient(srv.Options())
	defer rc.Close()
	if d, err := rc.PTTL(t.Context(), h.posKey(stream)).Result(); err != nil || d < positionTTL-time.Minute {
		t.Errorf("PTTL of the position = %v, %v; want about %v", d, err, positionTTL)
	}
	waitfor.Cond(t, 5*time.Second, func() error {
		if n, err := rc.Exists(t.Context(), h.histKey(stream)).Result(); err != nil || n != 0 {
			return fmt.Errorf("history still there (%d, %v)", n, err)
		}
		return nil
	})
	tests := []struct {
		name      string
		since     *Position
		recovered bool
	}{
		{"missed nothing", &Position{epoch, 3}, true},
		{"missed some", &Position{epoch, 1}, false},
		{"latest", nil, false},
	}
	for _, tc := range tests {
		rec, err := h.Recover(t.Context(), stream, tc.since)
		if err != nil || rec.Recovered != tc.recovered || rec.Position != (Position{epoch, 3}) || len(rec.Messages) != 0 {
			t.Errorf("%s: Recover(%v) after the TTL = %+v, %v; want recovered %v at 3, no messages", tc.name, tc.since, rec, err, tc.recovered)
		}
	}
	publishN(t, h, stream, 3, 1)
	if rec, err := h.Recover(t.Context(), stream, &Position{epoch, 3}); err != nil || !rec.Recovered || rec.Position != (Position{epoch, 4}) {
		t.Errorf("Recover after the next message = %+v, %v; want recovered at 4 of the same epoch", rec, err)
	}
}

// TestRedisClusterHistory: in cluster mode each stream's position,
// history and channel share a slot (the script would fail otherwise),
// and streams of several groups number and recover independently.
func TestRedisClusterHistory(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	a := runHub(t, RedisConfig{ClusterAddrs: c.Addrs(), NodeID: "node-a"})
	b := runHub(t, RedisConfig{ClusterAddrs: c.Addrs(), NodeID: "node-b"})
	streams := []string{"binance:btcusdt@trade", "binance:ethusdt@trade", "binance:solusdt@trade", "binance:xrpusdt@trade"}
	groups := map[int]bool{}
	var logs []*msgLog
	for _, s := range streams {
		groups[groupOf(s, defaultRedisGroups)] = true
		logs = append(logs, subscribed(t, b, s))
	}
	if len(groups) < 2 {
		t.Fatalf("streams in %d groups; want several", len(groups))
	}
	for _, s := range streams {
		publishN(t, a, s, 0, 5)
	}
	for i, s := range streams {
		rec, err := b.Recover(t.Context(), s, &Position{})
		if err != nil {
			t.Fatalf("Recover(%q) = %v", s, err)
		}
		since := Position{rec.Position.Epoch, 2}
		rec, err = b.Recover(t.Context(), s, &since)
		if err != nil || !rec.Recovered || rec.Position.Seq != 5 {
			t.Fatalf("Recover(%q, %+v) = %+v, %v; want recovered at 5", s, since, rec, err)
		}
		checkRecovered(t, s, rec, since.Epoch, 3, 3)
		waitfor.Cond(t, 10*time.Second, func() error {
			got := logs[i].of(s)
			if len(got) < 5 {
				return fmt.Errorf("%q: %d of 5 delivered", s, len(got))
			}
			if seqs := seqsOf(got); !slices.Equal(seqs, []uint64{1, 2, 3, 4, 5}) {
				return fmt.Errorf("%q: seqs %v", s, seqs)
			}
			return nil
		})
	}
}

// commandCalls returns the calls of each command since the server
// started (INFO commandstats), scripts' commands included, and as
// "<command>.usec" the microseconds Redis spent in it.
func commandCalls(ctx context.Context, rc *redis.Client) (map[string]int64, error) {
	info, err := rc.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.SplitSeq(info, "\n") {
		// cmdstat_publish:calls=3,usec=...
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		calls, rest, _ := strings.Cut(rest, ",usec=")
		usec, _, _ := strings.Cut(rest, ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("commandstats line %q: %w", line, err)
		}
		us, err := strconv.ParseInt(usec, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("commandstats line %q: %w", line, err)
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		out[name], out[name+".usec"] = n, us
	}
	return out, nil
}

// BenchmarkRedisPublishHistory measures what numbering and history cost
// per burst of 100 messages of 10 streams: the Flush latency (ns/burst),
// the commands Redis runs per message (cmds/msg, script calls included,
// and split by command; the health probe's PUBLISH once a second is
// counted too, and is noise). A burst is one round trip. history=off is
// the same script without the XADD (HistorySize < 0); before=publish is
// the path before numbering, a pipeline of plain PUBLISH of the same
// frames, sent the way Flush sent them.
func BenchmarkRedisPublishHistory(b *testing.B) {
	const burst, streams = 100, 10
	for _, bc := range []struct {
		name  string
		size  int
		plain bool
	}{{"history=on", 0, false}, {"history=off", -1, false}, {"before=publish", 0, true}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := redistest.Start(b)
			h := benchHub(b, RedisConfig{URL: srv.URL(), NodeID: "bench", HistorySize: bc.size})
			ctx := b.Context()
			rc := redis.NewClient(srv.Options())
			defer rc.Close()
			data := depthData(256)
			var seq uint64
			var frames []byte
			var ends []int
			send := func() {
				if bc.plain {
					frames, ends = frames[:0], ends[:0]
					for i := range burst {
						if i%streams == 0 {
							seq++
						}
						msg := Message{Stream: "bench:" + strconv.Itoa(i%streams), Seq: seq, ID: EventID{Hi: int64(seq)}, Data: data}
						frames = appendFrame(frames, msg)
						ends = append(ends, len(frames))
					}
					pipe := rc.Pipeline()
					start := 0
					for i, end := range ends {
						pipe.Publish(ctx, h.channel("bench:"+strconv.Itoa(i%streams)), frames[start:end])
						start = end
					}
					if _, err := pipe.Exec(ctx); err != nil {
						b.Fatal(err)
					}
					return
				}
				for i := range burst {
					if i%streams == 0 {
						seq++
					}
					msg := Message{Stream: "bench:" + strconv.Itoa(i%streams), Seq: seq, ID: EventID{Hi: int64(seq)}, Data: data}
					if err := h.Publish(ctx, msg); err != nil {
						b.Fatal(err)
					}
				}
				if err := h.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			send() // loads the script
			before, err := commandCalls(ctx, rc)
			if err != nil {
				b.Fatal(err)
			}
			bursts := 0
			b.ReportAllocs()
			for b.Loop() {
				send()
				bursts++
			}
			b.StopTimer()
			after, err := commandCalls(ctx, rc)
			if err != nil {
				b.Fatal(err)
			}
			msgs := float64(bursts * burst)
			var total int64
			for name, n := range after {
				if name == "info" || name == "ping" || strings.HasSuffix(name, ".usec") {
					continue
				}
				total += n - before[name]
			}
			b.ReportMetric(float64(total)/msgs, "cmds/msg")
			for _, name := range []string{"evalsha", "xadd", "publish"} {
				b.ReportMetric(float64(after[name]-before[name])/msgs, name+"/msg")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(bursts), "ns/burst")
			// Redis's own time per message: the script's (the commands it
			// calls included), or PUBLISH's without one.
			top := "evalsha"
			if bc.plain {
				top = "publish"
			}
			b.ReportMetric(float64(after[top+".usec"]-before[top+".usec"])/msgs, "redis-µs/msg")
		})
	}
}

// TestRedisNumberingHandover publishes the same 300 events from two
// nodes at once, the second with a newer origin (an upstream handed over
// make-before-break), in bursts that interleave at random in Redis. Since
// the new owner publishes every event with its own continuous Seq, every
// interleaving must give each event exactly once, in order, at positions
// 1 to 300 without a gap, the same on both nodes.
func TestRedisNumberingHandover(t *testing.T) {
	const stream, events = "binance:btcusdt@trade", 300
	hubs, logs := twoNodes(t, stream, "old-owner", "new-owner")
	var wg sync.WaitGroup
	for i, h := range hubs {
		origin := uint64(i + 1)
		wg.Go(func() {
			for e := int64(1); e <= events; e++ {
				msg := Message{Stream: stream, Origin: origin, Seq: uint64(e), ID: EventID{Hi: e, Prev: e - 1}, Data: fmt.Appendf(nil, `{"t":%d}`, e)}
				if err := h.Publish(t.Context(), msg); err != nil {
					t.Error(err)
					return
				}
				if e%7 == int64(i) {
					if err := h.Flush(t.Context()); err != nil {
						t.Error(err)
						return
					}
				}
			}
			if err := h.Flush(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, l := range logs {
		waitfor.Cond(t, 10*time.Second, func() error {
			got := l.of(stream)
			if len(got) < events {
				return fmt.Errorf("node %d has %d of %d", i, len(got), events)
			}
			return nil
		})
		for k, m := range l.of(stream) {
			if m.Seq != uint64(k+1) || m.ID.Hi != int64(k+1) || m.Gap {
				t.Fatalf("node %d message %d = seq %d id %d gap %v (origin %d); want seq and id %d, no gap", i, k, m.Seq, m.ID.Hi, m.Gap, m.Origin, k+1)
			}
		}
	}
	if n := len(logs[0].of(stream)); n != events {
		t.Errorf("%d messages; want %d", n, events)
	}
}

// TestRedisRecoverAfterSubscriberLoss kills the hub's subscriber
// connection and calls Recover at once, before the hub may have noticed:
// Recover must return only once the connection is back and subscribed,
// so the message published right after it arrives live.
func TestRedisRecoverAfterSubscriberLoss(t *testing.T) {
	srv := redistest.Start(t)
	pub := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "publisher"})
	h := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n"})
	rc := redis.NewClient(srv.Options())
	defer rc.Close()
	const stream = "x:s"
	l := subscribed(t, h, stream)
	seq := uint64(0)
	for round := range 5 {
		publishN(t, pub, stream, seq, 1)
		seq++
		if err := rc.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		rec, err := h.Recover(ctx, stream, nil)
		cancel()
		if err != nil {
			t.Fatalf("round %d: Recover = %v", round, err)
		}
		if rec.Position.Seq != seq {
			t.Fatalf("round %d: Recover at %+v; want seq %d", round, rec.Position, seq)
		}
		publishN(t, pub, stream, seq, 1)
		seq++
		waitfor.Cond(t, 10*time.Second, func() error {
			got := l.of(stream)
			if len(got) == 0 || got[len(got)-1].Seq != seq {
				return fmt.Errorf("round %d: message %d after Recover not delivered (have %v)", round, seq, seqsOf(got))
			}
			return nil
		})
	}
}

// twoNodes starts a Redis server and two hubs on it, named a and b, each
// with a log subscribed to stream, and waits until Redis has both
// subscriptions.
func twoNodes(t *testing.T, stream, a, b string) ([]*Redis, []*msgLog) {
	t.Helper()
	srv := redistest.Start(t)
	count := standaloneCounter(t, srv)
	hubs := []*Redis{
		runHub(t, RedisConfig{URL: srv.URL(), NodeID: a}),
		runHub(t, RedisConfig{URL: srv.URL(), NodeID: b}),
	}
	logs := []*msgLog{{}, {}}
	for i, h := range hubs {
		if err := h.Subscribe(t.Context(), stream, logs[i]); err != nil {
			t.Fatal(err)
		}
	}
	waitSubscribers(t, hubs[0], count, 2, stream)
	return hubs, logs
}
