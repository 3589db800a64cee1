package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
)

// position is a stream position as the native protocol names it.
type position struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// subscribeReply is the result of a native subscribe.
type subscribeReply struct {
	Streams   []string            `json:"streams"`
	Positions map[string]position `json:"positions"`
	Recovered map[string]bool     `json:"recovered"`
}

// tape is what one client got of one trade stream: each message's
// position, trade id and gap flag.
type tape struct {
	reply subscribeReply
	seqs  []uint64
	ids   []uint64
	gaps  []bool
	epoch string
}

// last returns the position of the last message on the tape.
func (tp *tape) last() position { return position{tp.epoch, tp.seqs[len(tp.seqs)-1]} }

// readTape subscribes cl to stream (from since, when given) and reads
// until it has n trades.
func readTape(t *testing.T, cl *downstreamtest.Client, stream string, since *position, n int) *tape {
	t.Helper()
	cmd := map[string]any{"op": "subscribe", "id": 1, "streams": []string{stream}}
	if since != nil {
		cmd["since"] = map[string]position{stream: *since}
	}
	b, _ := json.Marshal(cmd)
	cl.Send(string(b))
	tp := &tape{}
	deadline := time.Now().Add(20 * time.Second)
	for len(tp.ids) < n {
		p, err := cl.Read(time.Until(deadline))
		if err != nil {
			t.Fatalf("reading %s: %v (after %d trades)", stream, err, len(tp.ids))
		}
		var m struct {
			nativeMsg
			Epoch string `json:"epoch"`
		}
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if m.Result != nil {
			if err := json.Unmarshal(m.Result, &tp.reply); err != nil {
				t.Fatalf("reply %s: %v", p, err)
			}
			tp.epoch = tp.reply.Positions[stream].Epoch
			continue
		}
		if m.Error != nil {
			t.Fatalf("error %s", p)
		}
		id, ok := m.trade()
		if m.Stream != stream || !ok {
			continue
		}
		if m.Epoch != "" {
			tp.epoch = m.Epoch
		}
		tp.seqs, tp.ids, tp.gaps = append(tp.seqs, m.Seq), append(tp.ids, id), append(tp.gaps, m.Gap)
	}
	return tp
}

// checkContinues fails t unless tp goes on exactly where from ended:
// positions one apart from from's last, trade ids growing, each once.
// With gapsAllowed, a trade id may jump where, and only where, the message
// says gap (events the exchange sent while no node read them); without
// it, trade ids are consecutive too.
func checkContinues(t *testing.T, from, tp *tape, gapsAllowed bool) {
	t.Helper()
	seq, id := from.last().Seq, from.ids[len(from.ids)-1]
	for i := range tp.seqs {
		if tp.seqs[i] != seq+1 {
			t.Fatalf("message %d: seq %d after %d; want %d (seqs %v)", i, tp.seqs[i], seq, seq+1, tp.seqs[:min(i+3, len(tp.seqs))])
		}
		switch d := int64(tp.ids[i]) - int64(id); {
		case d <= 0:
			t.Fatalf("message %d: trade %d after %d: repeated", i, tp.ids[i], id)
		case d > 1 && !(gapsAllowed && tp.gaps[i]):
			t.Fatalf("message %d: trade %d after %d (gap flag %v): %d lost silently", i, tp.ids[i], id, tp.gaps[i], d-1)
		case d == 1 && tp.gaps[i] && !gapsAllowed:
			t.Fatalf("message %d: gap flag on a continuous trade", i)
		}
		seq, id = tp.seqs[i], tp.ids[i]
	}
}

// TestClusterRecoverOnAnotherNode: a client reads trades on one node,
// goes away for 2 s and comes back to another node with since: it
// recovers, and its tape goes on with consecutive trade ids, none
// repeated, no gap.
func TestClusterRecoverOnAnotherNode(t *testing.T) {
	c := startCluster(t)
	stream := clusterStreams[0]
	cl := downstreamtest.Dial(t, "ws://"+c.nodes[0].addr+"/ws")
	before := readTape(t, cl, stream, nil, 20)
	if before.epoch == "" {
		t.Fatalf("no epoch in the reply %+v", before.reply)
	}
	cl.Close()
	time.Sleep(2 * time.Second)

	since := before.last()
	again := downstreamtest.Dial(t, "ws://"+c.nodes[1].addr+"/ws")
	after := readTape(t, again, stream, &since, 150) // 2 s of trades at 20 ms, and live ones
	if !after.reply.Recovered[stream] {
		t.Fatalf("reply %+v; want recovered", after.reply)
	}
	checkContinues(t, before, after, false)
	t.Logf("recovered %d trades on %s after 2 s away from %s", len(after.ids), c.nodes[1].id, c.nodes[0].id)
}

// TestClusterRecoverAcrossOwnerKill: the client reads trades on the node
// that owns the upstream, which is killed with SIGKILL; it comes back to a
// survivor with since and recovers: positions consecutive, trade ids never
// repeated, and the trades no node read while the stream had no owner are
// told by a gap flag, never lost silently.
func TestClusterRecoverAcrossOwnerKill(t *testing.T) {
	c := startCluster(t)
	stream := clusterStreams[0]
	owner := c.owner(t)
	cl := downstreamtest.Dial(t, "ws://"+owner.addr+"/ws")
	before := readTape(t, cl, stream, nil, 20)
	owner.cmd.Process.Kill()
	<-owner.exited
	time.Sleep(2 * time.Second)

	since := before.last()
	survivor := c.survivors(owner)[0]
	again := downstreamtest.Dial(t, "ws://"+survivor.addr+"/ws")
	after := readTape(t, again, stream, &since, 200)
	if !after.reply.Recovered[stream] {
		t.Fatalf("reply %+v; want recovered", after.reply)
	}
	checkContinues(t, before, after, true)
	gaps := 0
	for _, g := range after.gaps {
		if g {
			gaps++
		}
	}
	t.Logf("recovered across the owner's kill: %d trades, %d gap flags (trades no node read)", len(after.ids), gaps)
}

// TestClusterRecoverAfterRedisLoss: Redis restarts empty while the client
// is away. Its position's epoch is gone: recovered false, and the first
// message says gap, never silence.
func TestClusterRecoverAfterRedisLoss(t *testing.T) {
	c := startCluster(t)
	stream := clusterStreams[1]
	cl := downstreamtest.Dial(t, "ws://"+c.nodes[0].addr+"/ws")
	before := readTape(t, cl, stream, nil, 10)
	cl.Close()
	c.redis.Kill()
	c.redis.Restart(t)
	// Data flows again in a new epoch.
	probe := downstreamtest.Dial(t, "ws://"+c.nodes[2].addr+"/ws")
	fresh := readTape(t, probe, stream, nil, 5)
	if fresh.epoch == "" || fresh.epoch == before.epoch {
		t.Fatalf("epoch after Redis lost its data: %q (before %q); want a new one", fresh.epoch, before.epoch)
	}

	since := before.last()
	again := downstreamtest.Dial(t, "ws://"+c.nodes[1].addr+"/ws")
	after := readTape(t, again, stream, &since, 5)
	if rec, ok := after.reply.Recovered[stream]; !ok || rec {
		t.Fatalf("reply %+v; want recovered false", after.reply)
	}
	if !after.gaps[0] {
		t.Fatalf("first message after a failed recovery has no gap flag (seqs %v)", after.seqs)
	}
}

// TestClusterLatestValue: a client subscribing to a book ticker gets its
// latest value right behind the reply (within 50 ms), from the history
// when its node does not carry the stream yet.
func TestClusterLatestValue(t *testing.T) {
	c := startCluster(t)
	const stream = "binance:btcusdt@bookTicker"
	warm := downstreamtest.Dial(t, "ws://"+c.nodes[0].addr+"/ws")
	warm.Send(fmt.Sprintf(`{"op":"subscribe","id":1,"streams":[%q]}`, stream))
	for range 3 {
		warm.Next()
	}
	for _, g := range c.nodes[1:] {
		cl := downstreamtest.Dial(t, "ws://"+g.addr+"/ws")
		cl.Send(fmt.Sprintf(`{"op":"subscribe","id":1,"streams":[%q]}`, stream))
		reply := cl.Next()
		at := time.Now()
		var r struct {
			Result subscribeReply `json:"result"`
		}
		if err := json.Unmarshal(reply, &r); err != nil || r.Result.Positions[stream].Seq == 0 {
			t.Fatalf("%s: reply %s; want a position", g.id, reply)
		}
		var m struct {
			Seq    uint64 `json:"seq"`
			Latest bool   `json:"latest"`
		}
		first := cl.Next()
		d := time.Since(at)
		if err := json.Unmarshal(first, &m); err != nil || !m.Latest || m.Seq != r.Result.Positions[stream].Seq {
			t.Fatalf("%s: first message %s; want the latest value at the reply's position", g.id, first)
		}
		t.Logf("%s: latest value %v after the reply", g.id, d)
		if d > 50*time.Millisecond {
			t.Errorf("%s: latest value came %v after the reply; want within 50 ms", g.id, d)
		}
	}
}
