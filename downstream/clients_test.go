package downstream

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// waitClients waits until the server lists n open connections and returns
// them.
func (env *testEnv) waitClients(t *testing.T, n int) []ClientInfo {
	t.Helper()
	var all []ClientInfo
	waitfor.Cond(t, 2*time.Second, func() error {
		var total int
		all, total = env.srv.Clients(0, 0)
		if total != n || len(all) != n {
			return fmt.Errorf("Clients lists %d (total %d); want %d", len(all), total, n)
		}
		return nil
	})
	return all
}

// idOf returns the id of the connection whose remote address is c's.
func idOf(t *testing.T, all []ClientInfo, c *downstreamtest.Client) uint64 {
	t.Helper()
	local := c.Conn().LocalAddr().String()
	for _, ci := range all {
		if ci.Remote == local {
			return ci.ID
		}
	}
	t.Fatalf("no client listed from %s: %+v", local, all)
	return 0
}

func TestClientsListing(t *testing.T) {
	start := time.Now()
	env := startServer(t, Config{})
	native, err := downstreamtest.TryDial(env.url+"/ws", http.Header{"Origin": {"https://app.example"}})
	if err != nil {
		t.Fatal(err)
	}
	native.T = t
	t.Cleanup(func() { native.Close() })
	dialect := downstreamtest.Dial(t, env.url+"/binance/stream?streams=btcusdt@trade")
	for range 3 {
		downstreamtest.Dial(t, env.url+"/ws")
	}
	native.Send(`{"op":"subscribe","id":1,"streams":["binance:ethusdt@trade","binance:btcusdt@trade"]}`)
	native.Next() // the reply: the streams are joined
	env.waitSubscribers(t, "binance:btcusdt@trade", 2)

	all := env.waitClients(t, 5)
	ids := make([]uint64, len(all))
	for i, ci := range all {
		ids[i] = ci.ID
	}
	if !slices.IsSorted(ids) {
		t.Fatalf("Clients ids = %v; want sorted", ids)
	}

	id := idOf(t, all, native)
	got, ok := env.srv.Client(id)
	if !ok {
		t.Fatalf("Client(%d) not found", id)
	}
	if got.Protocol != ProtocolNative || got.Origin != "https://app.example" ||
		!slices.Equal(got.Streams, []string{"binance:btcusdt@trade", "binance:ethusdt@trade"}) ||
		got.QueueBytes < 0 || got.ConnectedSince.Before(start.Add(-time.Second)) || got.ConnectedSince.After(time.Now()) {
		t.Errorf("Client(%d) = %+v; want native, its Origin, both streams sorted, connected since the test began", id, got)
	}
	d, _ := env.srv.Client(idOf(t, all, dialect))
	if d.Protocol != ProtocolBinance || d.Origin != "" || !slices.Equal(d.Streams, []string{"binance:btcusdt@trade"}) {
		t.Errorf("dialect client = %+v; want binance, no Origin, its URL stream", d)
	}
	for _, ci := range all {
		if ci.Streams == nil {
			t.Errorf("client %d: Streams is nil; want [] (JSON null is not a list)", ci.ID)
		}
	}
	if _, ok := env.srv.Client(ids[len(ids)-1] + 100); ok {
		t.Error("Client(unknown id) found")
	}

	tests := []struct {
		offset, limit int
		want          []uint64
	}{
		{0, 2, ids[0:2]},
		{2, 2, ids[2:4]},
		{4, 2, ids[4:5]},
		{5, 2, ids[5:5]},
		{99, 2, nil},
		{-3, 1, ids[0:1]},
		{1, 0, ids[1:]},
		{0, 1000, ids},
	}
	for _, tc := range tests {
		page, total := env.srv.Clients(tc.offset, tc.limit)
		var gotIDs []uint64
		for _, ci := range page {
			gotIDs = append(gotIDs, ci.ID)
		}
		if total != 5 || !slices.Equal(gotIDs, tc.want) {
			t.Errorf("Clients(%d, %d) = %v, %d; want %v, 5", tc.offset, tc.limit, gotIDs, total, tc.want)
		}
		if page == nil {
			t.Errorf("Clients(%d, %d) page is nil; want empty", tc.offset, tc.limit)
		}
	}
}

func TestDisconnect(t *testing.T) {
	env := startServer(t, Config{})
	const key = "binance:btcusdt@trade"
	kicked := downstreamtest.Dial(t, env.url+"/ws")
	stays := downstreamtest.Dial(t, env.url+"/ws")
	for _, c := range []*downstreamtest.Client{kicked, stays} {
		c.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
		c.Next()
	}
	all := env.waitClients(t, 2)
	id, other := idOf(t, all, kicked), idOf(t, all, stays)

	if !env.srv.Disconnect(id, "") {
		t.Fatalf("Disconnect(%d) = false; want true", id)
	}
	_, err := kicked.Read(downstreamtest.Timeout)
	var ce wsutil.ClosedError
	if !errors.As(err, &ce) || ce.Code != ws.StatusPolicyViolation || ce.Reason != OperatorCloseReason {
		t.Fatalf("kicked client read %v; want close %d %q", err, ws.StatusPolicyViolation, OperatorCloseReason)
	}
	// Gone from the listing at once (closing), and its stream left.
	if _, ok := env.srv.Client(id); ok {
		t.Errorf("Client(%d) found after Disconnect", id)
	}
	if page, total := env.srv.Clients(0, 0); total != 1 || len(page) != 1 || page[0].ID != other {
		t.Errorf("Clients after Disconnect = %+v, %d; want only %d", page, total, other)
	}
	env.waitSubscribers(t, key, 1)
	if env.srv.Disconnect(id, "") {
		t.Errorf("second Disconnect(%d) = true; want false", id)
	}
	if env.srv.Disconnect(other+100, "") {
		t.Error("Disconnect(unknown id) = true; want false")
	}
	if n := env.srv.Stats().Closed["policy_violation"]; n != 1 {
		t.Errorf("policy_violation closes = %d; want 1", n)
	}
	// The other client still gets its stream.
	publish(t, env.hub, key, 1, `{"e":"trade"}`)
	expectJSON(t, stays, `{"stream":"`+key+`","seq":1,"data":{"e":"trade"}}`)
	// The kicked connection is released once it answers the close.
	kicked.Conn().Write(ws.MustCompileFrame(ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusPolicyViolation, "")))))
	waitfor.Cond(t, 2*time.Second, func() error {
		if n := env.srv.ConnCount(); n != 1 {
			return fmt.Errorf("%d connections held; want 1", n)
		}
		return nil
	})

	// A reason of its own, cut to fit a close frame on a rune boundary.
	long := strings.Repeat("é", 100) // 200 bytes
	if !env.srv.Disconnect(other, long) {
		t.Fatalf("Disconnect(%d) = false; want true", other)
	}
	_, err = stays.Read(downstreamtest.Timeout)
	if !errors.As(err, &ce) || ce.Code != ws.StatusPolicyViolation || !strings.HasPrefix(long, ce.Reason) || len(ce.Reason) != 122 {
		t.Fatalf("read %v; want close 1008 with the first 61 runes of the reason", err)
	}
}

func TestTruncateReason(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"bye", "bye"},
		{strings.Repeat("a", 123), strings.Repeat("a", 123)},
		{strings.Repeat("a", 124), strings.Repeat("a", 123)},
		{"a" + strings.Repeat("€", 50), "a" + strings.Repeat("€", 40)}, // 3-byte runes end at 121
		{"bad \xff utf-8", "bad \uFFFD utf-8"},
	}
	for _, tc := range tests {
		got := truncateReason(tc.in)
		if got != tc.want || !utf8.ValidString(got) || len(got) > maxCloseReason {
			t.Errorf("truncateReason(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
